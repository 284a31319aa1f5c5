//! VMDK reader: every layout VMware and qemu write.
//!
//! Spec: VMware "Virtual Disk Format 5.0" (hosted sparse extents, the descriptor, stream
//! optimized files); qemu `block/vmdk.c` for how readers behave (ESX `COWD` and seSparse
//! extents are described nowhere else).
//!
//! An image is either one sparse file carrying its own descriptor (monolithicSparse,
//! streamOptimized, or a lone sparse extent), or a text descriptor listing extents in other
//! files (monolithicFlat, twoGbMaxExtent*, vmfs, vmfsSparse, seSparse, hand-written mixes of
//! FLAT / SPARSE / ZERO / VMFS / VMFSSPARSE / SESPARSE extents). Extent and parent names
//! resolve by base name among the supplied files only ([`ImageSet::find`]); a name that is a
//! path is reported by the detector (`external-extent`) and never opens anything.
//!
//! The guest disk is the extents one after another: its size is the sum of their sizes.
//! qemu differs in two places, both deliberately not followed (see the tests):
//! it skips extent lines whose access is not `RW` and `ZERO` extents (so RDONLY, NOACCESS and
//! ZERO extents shrink its disk), and it sizes a sparse extent by its header's capacity rather
//! than its descriptor line.

mod descriptor;
pub(crate) mod sesparse_header;
mod sparse;
pub(crate) mod sparse_header;

pub use descriptor::{Descriptor, DescriptorExtent, parse_descriptor};

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::descriptors::{
    extent_file, extent_size, files_with_extents, pieces_reached, read_descriptor, shown,
};
use crate::formats::common::{extents, intact};
use crate::image::{Backing, Basics, Image, open_file};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, base_name, is_plain_name, read_vec};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use sparse::{Kind, Sparse};

/// A text descriptor larger than this is refused (qemu reads at most 1 MiB).
const MAX_DESCRIPTOR: u64 = 1 << 20;
/// How many extents `details` lists.
const LISTED_EXTENTS: usize = 64;
/// Grain directory bytes all sparse extents of one image may hold in memory.
const MAX_GD_BYTES_TOTAL: u64 = 256 << 20;

enum PartKind {
    /// Guest bytes stored verbatim from `offset` of `file`, which is `file_len` bytes long (a
    /// short flat file is a cut: qemu reads zeros past its end, vmdisk reports the loss).
    Flat {
        file: FileId,
        offset: u64,
        file_len: u64,
    },
    Zero,
    Sparse(Box<Sparse>),
    /// Cannot be read: the message says why (missing file, raw device, unknown type).
    Blocked(Error),
}

/// One extent of the guest disk.
struct Part {
    start: u64,
    len: u64,
    line: DescriptorExtent,
    kind: PartKind,
}

struct Parent {
    name: String,
    image: Option<Box<dyn Image>>,
}

pub struct Vmdk {
    main: FileId,
    /// The main file is a text descriptor (its data lives in other files).
    descriptor_file: bool,
    create_type: String,
    desc: Descriptor,
    parts: Vec<Part>,
    size: u64,
    parent: Option<Parent>,
    findings: Vec<Finding>,
    /// Why the data cannot be read, found by the integrity walk.
    cut: Option<Error>,
}

impl Vmdk {
    pub async fn open(set: &ImageSet, id: FileId, depth: usize) -> Result<Vmdk> {
        let src = set.file(id).clone();
        let magic = read_vec(&*src, 0, src.len().min(8), "VMDK header").await?;
        let is_sparse = magic.starts_with(sparse::KDMV)
            || magic.starts_with(sparse::COWD)
            || (magic.len() == 8
                && u64::from_le_bytes(magic[..8].try_into().expect("8 bytes"))
                    == sparse::SESPARSE_MAGIC);
        let mut findings = vec![];
        let (descriptor_file, create_type, desc, parts) = if is_sparse {
            let sp = Sparse::open(id, src.clone()).await?;
            let desc = sp
                .descriptor
                .as_deref()
                .map(parse_descriptor)
                .unwrap_or_default();
            if sp.capacity == 0 && sp.kind == Kind::Hosted && !desc.extents.is_empty() {
                // qemu reads a sparse header of capacity 0 with a descriptor as a descriptor
                // file: its extents are the disk.
                let parts = Self::open_extents(set, id, &desc, &mut findings).await?;
                let ct = desc.create_type.clone().unwrap_or_default();
                (true, ct, desc, parts)
            } else {
                let inferred = match sp.kind {
                    Kind::Cowd => "vmfsSparse",
                    Kind::SeSparse => "seSparse",
                    Kind::Hosted if sp.compressed => "streamOptimized",
                    Kind::Hosted => "monolithicSparse",
                };
                let ct = desc
                    .create_type
                    .clone()
                    .unwrap_or_else(|| inferred.to_string());
                let line = DescriptorExtent {
                    access: "RW".into(),
                    sectors: sp.capacity / 512,
                    kind: match sp.kind {
                        Kind::Hosted => "SPARSE",
                        Kind::Cowd => "VMFSSPARSE",
                        Kind::SeSparse => "SESPARSE",
                    }
                    .into(),
                    file: Some(src.name().to_string()),
                    offset: 0,
                };
                let part = Part {
                    start: 0,
                    len: sp.capacity,
                    line,
                    kind: PartKind::Sparse(Box::new(sp)),
                };
                (false, ct, desc, vec![part])
            }
        } else {
            let buf = read_descriptor(&*src, MAX_DESCRIPTOR, "VMDK descriptor", |name, len| {
                format!(
                    "{name} is not a VMDK sparse file and too large ({len} bytes) for a descriptor"
                )
            })
            .await?;
            // qemu pads a descriptor it rewrites with NULs: the text ends at the first one.
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let desc = parse_descriptor(&String::from_utf8_lossy(&buf[..end]));
            if desc.extents.is_empty() {
                return Err(Error::corrupt(format!(
                    "the VMDK descriptor {} lists no extents",
                    src.name()
                )));
            }
            if desc.dropped_extents > 0 {
                return Err(Error::unsupported(format!(
                    "the VMDK descriptor lists more than {} extents",
                    desc.extents.len()
                )));
            }
            let parts = Self::open_extents(set, id, &desc, &mut findings).await?;
            let ct = desc.create_type.clone().unwrap_or_default();
            (true, ct, desc, parts)
        };
        let size = parts.last().map_or(0, |p| p.start + p.len);

        // Parent (delta disk): `parentFileNameHint`, read by qemu whatever parentCID says.
        let parent = match desc.parent_hint.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(hint) => {
                let mut notes = vec![];
                if !is_plain_name(hint) {
                    notes.push(format!(
                        "the name is a path, which would make a host read that file ({} is matched by its base name only)",
                        shown(base_name(hint))
                    ));
                }
                let own: Vec<FileId> = std::iter::once(id)
                    .chain(parts.iter().filter_map(|p| part_file(&p.kind)))
                    .collect();
                let image = match set.find(hint) {
                    None => {
                        notes.push("it was not supplied".into());
                        None
                    }
                    Some(pid) if own.contains(&pid) => {
                        return Err(Error::corrupt(format!(
                            "the VMDK names one of its own files ({}) as its parent",
                            shown(hint)
                        )));
                    }
                    Some(pid) => {
                        let (_, image) = Box::pin(open_file(set, pid, depth + 1))
                            .await
                            .map_err(|e| in_parent(e, hint))?;
                        let Some(image) = image else {
                            return Err(Error::unsupported(format!(
                                "the VMDK parent {} is not a disk image vmdisk reads",
                                shown(hint)
                            )));
                        };
                        Some(image)
                    }
                };
                if let (Some(p), Some(want)) = (&image, &desc.parent_cid) {
                    let got = p.details().get("cid").and_then(|c| c.as_str()).map(hex32);
                    if got.is_some() && got != Some(hex32(want)) {
                        findings.push(Finding::new(
                            FindingCode::ParentMismatch,
                            Severity::Warning,
                            format!(
                                "the parent {} has content ID {} but this delta disk expects {} (it was changed after the delta was made; qemu refuses to read through it)",
                                shown(hint),
                                p.details()["cid"],
                                shown(want)
                            ),
                        ));
                    }
                }
                // The detector already reports a parent whose parentCID is set.
                if !notes.is_empty() || desc.parent_cid.as_deref() == Some("ffffffff") {
                    findings.push(Finding::new(
                        FindingCode::BackingFile,
                        Severity::Critical,
                        format!(
                            "this VMDK is a delta disk of parent {}{}",
                            shown(hint),
                            notes.iter().map(|n| format!("; {n}")).collect::<String>()
                        ),
                    ));
                }
                Some(Parent {
                    name: hint.to_string(),
                    image,
                })
            }
        };

        let mut me = Vmdk {
            main: id,
            descriptor_file,
            create_type,
            desc,
            parts,
            size,
            parent,
            findings,
            cut: None,
        };
        let found = intact::walk(&me, &me.layout()).await;
        me.cut = found
            .apply(&mut me.findings)
            .map(|(truncated, m)| match truncated {
                true => Error::truncated(m),
                false => Error::corrupt(m),
            });
        Ok(me)
    }

    /// Every extent file with its headers and tables, for the integrity walk: sparse extents
    /// declare theirs ([`Sparse::declare`]), flat extents are plain data.
    fn layout(&self) -> intact::Layout {
        let unit = self
            .parts
            .iter()
            .find_map(|p| match &p.kind {
                PartKind::Sparse(sp) => Some(sp.grain),
                _ => None,
            })
            .unwrap_or(64 << 10);
        let mut layout = intact::Layout::new(self.main, 0, unit);
        layout.files.clear();
        for p in &self.parts {
            match &p.kind {
                PartKind::Sparse(sp) => {
                    layout.files.push((sp.file, sp.file_len()));
                    sp.declare(&mut layout, p.start);
                }
                PartKind::Flat { file, file_len, .. } => {
                    layout.files.push((*file, *file_len));
                }
                _ => {}
            }
        }
        layout
    }

    /// Resolve and open every extent line of a descriptor.
    async fn open_extents(
        set: &ImageSet,
        id: FileId,
        desc: &Descriptor,
        findings: &mut Vec<Finding>,
    ) -> Result<Vec<Part>> {
        let mut parts = Vec::with_capacity(desc.extents.len());
        let mut start = 0u64;
        let mut gd_bytes = 0u64;
        for (i, line) in desc.extents.iter().enumerate() {
            let len = line
                .sectors
                .checked_mul(512)
                .filter(|l| start.checked_add(*l).is_some())
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "VMDK extent {i} of {} sectors overflows the disk size",
                        line.sectors
                    ))
                })?;
            let kind = Self::open_extent(set, id, i, line, len, findings, &mut gd_bytes).await?;
            parts.push(Part {
                start,
                len,
                line: line.clone(),
                kind,
            });
            start += len;
        }
        // Zero-length extents add nothing; keep the list in guest order without them.
        parts.retain(|p| p.len > 0);
        Ok(parts)
    }

    async fn open_extent(
        set: &ImageSet,
        id: FileId,
        i: usize,
        line: &DescriptorExtent,
        len: u64,
        findings: &mut Vec<Finding>,
        gd_bytes: &mut u64,
    ) -> Result<PartKind> {
        if line.access == "NOACCESS" {
            findings.push(Finding::new(
                FindingCode::NoaccessExtent,
                Severity::Warning,
                format!("VMDK extent {i} is marked NOACCESS: it reads as zeros"),
            ));
            return Ok(PartKind::Zero);
        }
        let kind = line.kind.as_str();
        if kind == "ZERO" {
            return Ok(PartKind::Zero);
        }
        let blocked = |m: String| Ok(PartKind::Blocked(Error::unsupported(m)));
        if matches!(kind, "VMFSRDM" | "VMFSRAW") {
            return blocked(format!(
                "VMDK extent {i} maps a host device ({kind}): its data is not in any file"
            ));
        }
        if !matches!(kind, "FLAT" | "VMFS" | "SPARSE" | "VMFSSPARSE" | "SESPARSE") {
            return blocked(format!("VMDK extent {i} has unknown type {}", shown(kind)));
        }
        let Some(name) = line.file.as_deref() else {
            return Err(Error::corrupt(format!(
                "VMDK {kind} extent {i} names no file"
            )));
        };
        let fid = match extent_file(set, name, None, "VMDK extent", "the descriptor", findings) {
            Ok(fid) => fid,
            Err(missing) => return Ok(PartKind::Blocked(missing)),
        };
        if fid == id {
            return Err(Error::corrupt(format!(
                "VMDK extent {i} names the descriptor itself"
            )));
        }
        let src = set.file(fid).clone();
        if matches!(kind, "FLAT" | "VMFS") {
            let offset = line
                .offset
                .checked_mul(512)
                .ok_or_else(|| Error::corrupt(format!("VMDK extent {i} offset overflows")))?;
            let avail = src.len().saturating_sub(offset).min(len);
            if avail < len {
                findings.push(Finding::new(
                    FindingCode::Truncated,
                    Severity::Warning,
                    format!(
                        "VMDK extent file {} holds {} of the extent's {len} bytes: the rest reads as zeros",
                        shown(src.name()),
                        avail
                    ),
                ));
            }
            return Ok(PartKind::Flat {
                file: fid,
                offset,
                file_len: src.len(),
            });
        }
        let sp = Sparse::open(fid, src.clone())
            .await
            .map_err(|e| in_extent(e, src.name()))?;
        *gd_bytes += sp.gd_bytes();
        if *gd_bytes > MAX_GD_BYTES_TOTAL {
            return Err(Error::unsupported(format!(
                "the VMDK extents' grain directories exceed {MAX_GD_BYTES_TOTAL} bytes"
            )));
        }
        if sp.capacity != len {
            findings.push(extent_size("VMDK extent", src.name(), sp.capacity, len));
        }
        Ok(PartKind::Sparse(Box::new(sp)))
    }

    fn first_sparse(&self) -> Option<&Sparse> {
        self.parts.iter().find_map(|p| match &p.kind {
            PartKind::Sparse(s) => Some(&**s),
            _ => None,
        })
    }
}

fn part_file(k: &PartKind) -> Option<FileId> {
    match k {
        PartKind::Flat { file, .. } => Some(*file),
        PartKind::Sparse(s) => Some(s.file),
        _ => None,
    }
}

/// A content ID as a number (hex, as the descriptor writes it), for comparison.
fn hex32(s: &str) -> String {
    u32::from_str_radix(s.trim(), 16)
        .map(|v| format!("{v:08x}"))
        .unwrap_or_else(|_| s.trim().to_ascii_lowercase())
}

fn in_parent(e: Error, name: &str) -> Error {
    prefix(e, &format!("VMDK parent {}: ", shown(name)))
}

fn in_extent(e: Error, name: &str) -> Error {
    prefix(e, &format!("VMDK extent {}: ", shown(name)))
}

fn prefix(e: Error, p: &str) -> Error {
    e.map_message(|m| format!("{p}{m}"))
}

#[async_trait(?Send)]
impl Image for Vmdk {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Vmdk, self.size, self.main, &self.findings)
    }

    /// A blocked extent fails only the ranges that reach it, so no up-front `readable` check.
    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| Error::invalid(format!("range {start}+{len} is past the disk end")))?;
        self.map_inside(start, end).await
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        for (p, rs, re) in pieces_reached(&self.parts, |p| (p.start, p.len), start, end) {
            let push = |out: &mut Vec<Extent>, from: u64, to: u64, mapping: Mapping| {
                extents::push(out, p.start + from, to - from, mapping)
            };
            match &p.kind {
                PartKind::Zero => push(&mut out, rs, re, Mapping::Zero),
                PartKind::Blocked(err) => return Err(err.clone()),
                PartKind::Flat { file, offset, .. } => {
                    // Past `file_len` the file is short: mapped all the same, for the
                    // integrity walk to count (reading is refused then).
                    push(
                        &mut out,
                        rs,
                        re,
                        Mapping::Data {
                            file: *file,
                            offset: offset + rs,
                        },
                    );
                }
                PartKind::Sparse(sp) => {
                    let mid = re.min(sp.capacity).max(rs);
                    if mid > rs {
                        sp.map(rs, mid - rs, p.start, &mut out).await?;
                    }
                    push(&mut out, mid, re, Mapping::Zero);
                }
            }
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        match &self.parent {
            None => Backing::None,
            Some(Parent { image: Some(i), .. }) => Backing::Present(&**i),
            Some(Parent { name, .. }) => Backing::Missing(name.clone()),
        }
    }

    fn details(&self) -> Value {
        let d = &self.desc;
        let mut v = Map::new();
        v.insert("create-type".into(), json!(self.create_type));
        v.insert("descriptor-file".into(), json!(self.descriptor_file));
        if let Some(x) = &d.version {
            v.insert("descriptor-version".into(), json!(x));
        }
        if let Some(x) = &d.cid {
            v.insert("cid".into(), json!(x));
        }
        if let Some(x) = &d.parent_cid {
            v.insert("parent-cid".into(), json!(x));
        }
        if let Some(p) = &self.parent {
            v.insert("parent".into(), json!(p.name));
        }
        let extents: Vec<Value> = self
            .parts
            .iter()
            .take(LISTED_EXTENTS)
            .map(|p| {
                let l = &p.line;
                let mut e = json!({
                    "access": l.access, "sectors": l.sectors, "type": l.kind,
                    "file": l.file, "offset": l.offset,
                });
                if let PartKind::Sparse(s) = &p.kind {
                    e["sparse"] = s.details();
                }
                e
            })
            .collect();
        v.insert("extent-count".into(), json!(self.parts.len()));
        v.insert("extents".into(), Value::Array(extents));
        if let Some(s) = self.first_sparse() {
            v.insert("version".into(), json!(s.version));
            v.insert("grain-size".into(), json!(s.grain));
            v.insert("compressed".into(), json!(s.compressed));
        } else {
            v.insert("compressed".into(), json!(false));
        }
        if !d.ddb.is_empty() {
            let ddb: Map<String, Value> =
                d.ddb.iter().map(|(k, x)| (k.clone(), json!(x))).collect();
            let get = |k: &str| {
                d.ddb
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(k))
                    .map(|(_, x)| x.clone())
            };
            let num = |k: &str| get(k).and_then(|x| x.trim().parse::<u64>().ok());
            if let (Some(c), Some(h), Some(s)) = (
                num("ddb.geometry.cylinders"),
                num("ddb.geometry.heads"),
                num("ddb.geometry.sectors"),
            ) {
                v.insert(
                    "geometry".into(),
                    json!({"cylinders": c, "heads": h, "sectors": s}),
                );
            }
            for (key, name) in [
                ("ddb.adapterType", "adapter-type"),
                ("ddb.virtualHWVersion", "virtual-hw-version"),
                ("ddb.uuid.image", "uuid"),
                ("ddb.longContentID", "long-content-id"),
                ("ddb.toolsVersion", "tools-version"),
            ] {
                if let Some(x) = get(key) {
                    v.insert(name.into(), json!(x));
                }
            }
            v.insert("ddb".into(), Value::Object(ddb));
        }
        Value::Object(v)
    }

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn files(&self) -> Vec<(FileId, &'static str)> {
        files_with_extents(
            self.main,
            self.parts.iter().filter_map(|p| part_file(&p.kind)),
        )
    }

    fn readable(&self) -> Result<()> {
        if let Some(e) = &self.cut {
            return Err(e.clone());
        }
        for p in &self.parts {
            if let PartKind::Blocked(e) = &p.kind {
                return Err(e.clone());
            }
        }
        Ok(())
    }
}
