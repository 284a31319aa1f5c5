//! A Parallels Desktop `.hdd` bundle opened from its `DiskDescriptor.xml`
//! ([`super::descriptor`]): the guest disk is the storages one after another, each a `.hds`
//! file among the supplied ones, found by base name like VMDK extents ([`ImageSet::find`]).
//! `Compressed` storages are read with the Parallels driver, `Plain` ones as raw bytes.
//! Snapshot chains (several images in a storage) are refused.

use super::Parallels;
use super::descriptor::{BundleDescriptor, MAX_DESCRIPTOR, Storage, StorageKind, parse_descriptor};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::extents::map_plain;
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, read_vec};
use async_trait::async_trait;
use serde_json::json;
use std::rc::Rc;

enum Data {
    /// Raw guest bytes from offset 0 of `file`; `avail` of them exist (the rest reads as zeros).
    Plain {
        file: FileId,
        src: Rc<dyn Source>,
        avail: u64,
    },
    Expanding(Box<Parallels>),
    /// Cannot be read: the error says why (a missing file, an unknown storage type).
    Blocked(Error),
}

/// One storage: guest bytes `[start, start + len)`.
struct Part {
    start: u64,
    len: u64,
    data: Data,
}

pub struct Bundle {
    file: FileId,
    desc: BundleDescriptor,
    parts: Vec<Part>,
    size: u64,
    findings: Vec<Finding>,
}

/// A name as written in the descriptor, safe to print.
fn shown(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    format!("{clean:?}")
}

impl Bundle {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Bundle> {
        let src = set.file(file).clone();
        if src.len() > MAX_DESCRIPTOR {
            return Err(Error::unsupported(format!(
                "{} is {} bytes: too large for a Parallels DiskDescriptor.xml",
                src.name(),
                src.len()
            )));
        }
        let bytes = read_vec(&*src, 0, src.len(), "Parallels disk descriptor").await?;
        let desc = parse_descriptor(&bytes).map_err(|e| {
            Error::corrupt(format!("the Parallels disk descriptor {}: {e}", src.name()))
        })?;
        let mut findings = vec![Finding::new(
            FindingCode::ConvertBeforeUpload,
            Severity::Warning,
            "Parallels is a legacy format that clouds do not accept: convert it (to qcow2 or raw)",
        )];
        let mut parts = Vec::with_capacity(desc.storages.len());
        for (i, s) in desc.storages.iter().enumerate() {
            let (start, len) = (s.start * 512, (s.end - s.start) * 512);
            let data = Self::open_storage(set, file, i, s, len, &mut findings).await?;
            parts.push(Part { start, len, data });
        }
        Ok(Bundle {
            file,
            size: desc.disk_sectors * 512,
            desc,
            parts,
            findings,
        })
    }

    async fn open_storage(
        set: &ImageSet,
        main: FileId,
        i: usize,
        s: &Storage,
        len: u64,
        findings: &mut Vec<Finding>,
    ) -> Result<Data> {
        if s.images > 1 {
            return Ok(Data::Blocked(Error::unsupported(format!(
                "Parallels storage {i} holds a snapshot chain of {} images, which vmdisk does not read yet",
                s.images
            ))));
        }
        let Some(fid) = set.find(&s.file).filter(|&f| f != main) else {
            findings.push(Finding::new(
                FindingCode::MissingExtent,
                Severity::Warning,
                format!(
                    "Parallels storage file {} was not supplied: the disk cannot be read without it",
                    shown(base_name(&s.file))
                ),
            ));
            return Ok(Data::Blocked(Error::missing(format!(
                "Parallels storage file {} was not supplied with DiskDescriptor.xml",
                shown(base_name(&s.file))
            ))));
        };
        let src = set.file(fid).clone();
        let held = match &s.kind {
            StorageKind::Plain => src.len(),
            StorageKind::Compressed => {
                let image = Parallels::open(set, fid)
                    .await
                    .map_err(|e| e.context(format!("Parallels storage {}", src.name())))?;
                let held = image.size;
                findings.extend(
                    image
                        .findings
                        .iter()
                        .filter(|f| f.code != FindingCode::ConvertBeforeUpload)
                        .cloned(),
                );
                if held != len {
                    findings.push(extent_size(src.name(), held, len));
                }
                // prl-xml.txt: a Compressed image's cluster size equals its storage's Blocksize.
                if let Some(b) = s.block_sectors
                    && b.checked_mul(512) != Some(image.cluster_size())
                {
                    findings.push(Finding::new(
                        FindingCode::Corrupt,
                        Severity::Warning,
                        format!(
                            "Parallels storage {} has {}-byte clusters but the descriptor's Blocksize is {b} sectors",
                            shown(src.name()),
                            image.cluster_size()
                        ),
                    ));
                }
                return Ok(Data::Expanding(Box::new(image)));
            }
            StorageKind::Other(t) => {
                return Ok(Data::Blocked(Error::unsupported(format!(
                    "Parallels storage {i} has type {}: only Plain and Compressed are known",
                    shown(t)
                ))));
            }
        };
        if held != len {
            findings.push(extent_size(src.name(), held, len));
        }
        Ok(Data::Plain {
            file: fid,
            src,
            avail: held.min(len),
        })
    }
}

fn extent_size(name: &str, held: u64, len: u64) -> Finding {
    let rest = if held < len {
        "the rest reads as zeros"
    } else {
        "the excess is ignored"
    };
    Finding::new(
        FindingCode::ExtentSize,
        Severity::Warning,
        format!(
            "Parallels storage {} holds {held} bytes but the descriptor gives it {len}: {rest}",
            shown(name)
        ),
    )
}

/// Append `[from, to)` of a storage that starts at guest offset `base`.
fn push(out: &mut Vec<Extent>, base: u64, from: u64, to: u64, mapping: Mapping) {
    Extent::push_merged(
        out,
        Extent {
            start: base + from,
            len: to - from,
            mapping,
        },
    );
}

#[async_trait(?Send)]
impl Image for Bundle {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Parallels, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        let first = self.parts.partition_point(|p| p.start + p.len <= start);
        for p in &self.parts[first..] {
            if p.start >= end {
                break;
            }
            let (rs, re) = (
                start.max(p.start) - p.start,
                end.min(p.start + p.len) - p.start,
            );
            let (held, inner) = match &p.data {
                Data::Blocked(e) => return Err(e.clone()),
                Data::Plain { file, src, avail } => {
                    let mid = re.min(*avail).max(rs);
                    (mid, map_plain(*file, &**src, rs, mid - rs).await)
                }
                Data::Expanding(image) => {
                    let mid = re.min(image.size).max(rs);
                    let inner = if mid > rs {
                        image.map_inside(rs, mid).await?
                    } else {
                        vec![]
                    };
                    (mid, inner)
                }
            };
            for e in inner {
                push(&mut out, p.start, e.start, e.end(), e.mapping);
            }
            push(&mut out, p.start, held, re, Mapping::Zero);
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        let storages: Vec<_> = self
            .desc
            .storages
            .iter()
            .take(64)
            .map(|s| {
                let kind = match &s.kind {
                    StorageKind::Plain => "Plain",
                    StorageKind::Compressed => "Compressed",
                    StorageKind::Other(t) => t.as_str(),
                };
                json!({"start": s.start, "end": s.end, "type": kind, "file": s.file})
            })
            .collect();
        let mut m = json!({
            "descriptor-file": true,
            "disk-size-sectors": self.desc.disk_sectors,
            "storage-count": self.desc.storages.len(),
            "storages": storages,
        });
        if let Some(n) = &self.desc.name {
            m["name"] = json!(n);
        }
        if let Some(u) = &self.desc.uid {
            m["uid"] = json!(u);
        }
        m
    }

    fn files(&self) -> Vec<(FileId, &'static str)> {
        let mut files = vec![(self.file, "image")];
        for p in &self.parts {
            let f = match &p.data {
                Data::Plain { file, .. } => *file,
                Data::Expanding(image) => image.file,
                Data::Blocked(_) => continue,
            };
            if !files.iter().any(|(x, _)| *x == f) {
                files.push((f, "extent"));
            }
        }
        files
    }

    fn readable(&self) -> Result<()> {
        for p in &self.parts {
            match &p.data {
                Data::Blocked(e) => return Err(e.clone()),
                Data::Expanding(image) => image.readable()?,
                Data::Plain { .. } => {}
            }
        }
        Ok(())
    }
}
