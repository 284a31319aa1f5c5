//! Parallels (expanding) disk image reader: qemu `docs/interop/parallels.txt` and
//! `block/parallels.c`.
//!
//! ## On-disk layout (all fields little-endian)
//! ```text
//!  0 magic[16] "WithoutFreeSpace" (original) or "WithouFreSpacExt" (extended)
//! 16 version u32 (2)   20 heads u32   24 cylinders u32   28 tracks u32 (sectors per cluster)
//! 32 bat_entries u32   36 nb_sectors u64 (only the low 32 bits in the original format)
//! 44 inuse u32 (0x746F6E59 = the image was not closed)  48 data_off u32 (sectors)
//! 52 flags u32         56 ext_off u64 (sectors; the format extension cluster)
//! 64 BAT: bat_entries u32 entries
//! ```
//! A BAT entry is the start of a guest cluster (`tracks * 512` bytes) in the file: in sectors for
//! "WithoutFreeSpace" images, in clusters for "WithouFreSpacExt" ones; 0 is unallocated (reads as
//! zeros, Parallels images have no backing file here). Guest clusters past the BAT read as zeros,
//! as in qemu.
//!
//! The format extension (parallels.txt "Format Extension") is one cluster: a magic
//! 0xAB234CEF23DCEA87, an MD5 checksum, then features (magic u64, flags u64, data_size u32,
//! reserved u32, data); dirty bitmaps (magic 0x20385FAE252CB34A) are only reported.
//!
//! Parallels is legacy for clouds: every image gets a `convert-before-upload` Warning advising
//! conversion. The BAT is read lazily in bounded chunks.

pub(crate) mod bundle;
pub(crate) mod descriptor;
pub(crate) mod header;

use super::common::extents::{extent, push_data};
use super::common::intact;
use super::common::scan::{problem, scan_finding};
use super::common::table::{TableCache, Word};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::scan::readable;
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, check_range, read_vec};
use async_trait::async_trait;
use header::{HEADER_LEN, ParallelsHeader};
use std::rc::Rc;

const EXT_MAGIC: u64 = 0xab23_4cef_23dc_ea87;
const DIRTY_BITMAP_MAGIC: u64 = 0x2038_5fae_252c_b34a;
/// BAT entries read at a time.
const BAT_CHUNK: u64 = 16384;
/// The format extension cluster is read up to this many bytes.
const MAX_EXT_BYTES: u64 = 1 << 20;

/// Open file `id` as a Parallels image: an expanding image (its header) or a bundle's
/// `DiskDescriptor.xml` ([`bundle::Bundle`]). Parallels images have no backing file.
pub fn open(set: &ImageSet, id: FileId) -> super::Opening<'_> {
    Box::pin(async move {
        let src = set.file(id).clone();
        // Enough for the XML declaration and the root element of a descriptor.
        let head = read_vec(&*src, 0, src.len().min(4096), "Parallels header").await?;
        if ParallelsHeader::parse(&head).is_none() && descriptor::looks_like_descriptor(&head) {
            Ok(Box::new(bundle::Bundle::open(set, id).await?) as Box<dyn Image>)
        } else {
            Ok(Box::new(Parallels::open(set, id).await?) as Box<dyn Image>)
        }
    })
}

pub struct Parallels {
    file: FileId,
    src: Rc<dyn Source>,
    extended: bool,
    heads: u32,
    cylinders: u32,
    tracks: u32,
    bat_entries: u64,
    size: u64,
    dirty: bool,
    data_off: u32,
    flags: u32,
    ext_off: u64,
    /// Features named in the format extension (magics), and how many are dirty bitmaps.
    ext_features: Vec<u64>,
    findings: Vec<Finding>,
    blocked: Option<(bool, String)>,
    bat_cache: TableCache,
}

impl Parallels {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Self> {
        let src = set.file(file).clone();
        let h = read_vec(&*src, 0, HEADER_LEN, "Parallels header").await?;
        let Some(h) = ParallelsHeader::parse(&h) else {
            return Err(Error::corrupt("not a Parallels image (bad magic)"));
        };
        let extended = h.extended();
        let version = h.version.get();
        if version != 2 {
            return Err(Error::unsupported(format!(
                "Parallels header version {version} (qemu knows version 2)"
            )));
        }
        let tracks = h.tracks.get();
        if tracks == 0 {
            return Err(Error::corrupt(
                "Parallels image has zero sectors per cluster",
            ));
        }
        // qemu's limit: the cluster size in bytes must fit a signed 32-bit value.
        if tracks > i32::MAX as u32 / 513 {
            return Err(Error::corrupt(format!(
                "Parallels cluster of {tracks} sectors is too big"
            )));
        }
        let bat_entries = u64::from(h.bat_entries.get());
        let sectors = h.sectors();
        let size = sectors.checked_mul(512).ok_or_else(|| {
            Error::corrupt(format!("Parallels sector count {sectors} is too large"))
        })?;
        check_range(
            &*src,
            HEADER_LEN,
            bat_entries * 4,
            "Parallels allocation table",
        )?;

        let mut findings = vec![Finding::new(
            FindingCode::ConvertBeforeUpload,
            Severity::Warning,
            "Parallels is a legacy format that clouds do not accept: convert it (to qcow2 or raw)",
        )];
        let dirty = h.is_dirty();
        if dirty {
            findings.push(Finding::new(
                FindingCode::Dirty,
                Severity::Warning,
                "the Parallels image was not closed cleanly (in-use flag set); its data may be inconsistent",
            ));
        }
        let mut me = Parallels {
            file,
            src,
            extended,
            heads: h.heads.get(),
            cylinders: h.cylinders.get(),
            tracks,
            bat_entries,
            size,
            dirty,
            data_off: h.data_off.get(),
            flags: h.flags.get(),
            ext_off: h.ext_off.get(),
            ext_features: vec![],
            findings,
            blocked: None,
            bat_cache: TableCache::new(Word::Le32, 4),
        };
        if me.ext_off != 0 {
            me.read_extension().await;
        }
        me.scan_bat().await?;
        let found = intact::walk(&me, &me.layout()).await;
        found.settle(&mut me.findings, &mut me.blocked);
        Ok(me)
    }

    /// Header and BAT (qemu `docs/interop/parallels.txt`), for the integrity walk.
    fn layout(&self) -> intact::Layout {
        let mut layout = intact::Layout::new(self.file, self.src.len(), self.cluster_size());
        layout.meta(0, self.bat_end(), "header and BAT");
        layout
    }

    fn cluster_size(&self) -> u64 {
        u64::from(self.tracks) * 512
    }

    /// Where the BAT ends: no data cluster may start before.
    fn bat_end(&self) -> u64 {
        HEADER_LEN + self.bat_entries * 4
    }

    /// The file offset of guest cluster `index`'s BAT entry value `entry` (non-zero).
    fn host(&self, entry: u64) -> u64 {
        let unit = if self.extended {
            self.cluster_size()
        } else {
            512
        };
        entry * unit
    }

    fn check_host(&self, host: u64, guest: u64) -> Result<()> {
        if host < self.bat_end() {
            return Err(Error::corrupt(format!(
                "Parallels cluster for guest offset {guest} points into the header or allocation table (offset {host})"
            )));
        }
        Ok(())
    }

    /// The BAT entries that cover guest clusters (the rest of a longer BAT is unused).
    fn used_entries(&self) -> u64 {
        self.size
            .div_ceil(self.cluster_size())
            .min(self.bat_entries)
    }

    /// Check every used BAT entry once, so a damaged image fails before a conversion starts.
    async fn scan_bat(&mut self) -> Result<()> {
        let used = self.used_entries();
        let mut i = 0;
        while i < used {
            let n = BAT_CHUNK.min(used - i);
            let chunk = read_vec(
                &*self.src,
                HEADER_LEN + i * 4,
                n * 4,
                "Parallels allocation table",
            )
            .await?;
            for (k, c) in chunk.chunks_exact(4).enumerate() {
                let entry = u64::from(u32::from_le_bytes(c.try_into().expect("4 bytes")));
                if entry == 0 {
                    continue;
                }
                let guest = (i + k as u64) * self.cluster_size();
                if let Err(e) = self.check_host(self.host(entry), guest) {
                    let found = problem(e);
                    self.findings.push(scan_finding(&found));
                    self.blocked = Some(found);
                    return Ok(());
                }
            }
            i += n;
        }
        Ok(())
    }

    /// Parse the format extension cluster; problems are findings (the data stays readable).
    async fn read_extension(&mut self) {
        let at = self.ext_off.checked_mul(512);
        let len = self.cluster_size().min(MAX_EXT_BYTES);
        let buf = match at {
            Some(at) if check_range(&*self.src, at, len, "").is_ok() => {
                read_vec(&*self.src, at, len, "Parallels format extension")
                    .await
                    .ok()
            }
            _ => None,
        };
        let Some(buf) = buf else {
            self.findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the Parallels format extension at sector {} lies past the end of the file",
                    self.ext_off
                ),
            ));
            return;
        };
        let le64 = |o: usize| {
            buf.get(o..o + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let le32 = |o: usize| {
            buf.get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        if le64(0) != Some(EXT_MAGIC) {
            self.findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                "the Parallels format extension has a bad magic (ignored)",
            ));
            return;
        }
        // Features follow the magic and the 16-byte checksum.
        let mut pos = 24usize;
        while let (Some(magic), Some(size)) = (le64(pos), le32(pos + 16)) {
            if magic == 0 {
                break;
            }
            self.ext_features.push(magic);
            let next = (size as usize).div_ceil(8) * 8;
            match pos.checked_add(24 + next) {
                Some(p) if p <= buf.len() => pos = p,
                _ => {
                    self.findings.push(Finding::new(
                        FindingCode::Corrupt,
                        Severity::Warning,
                        "a Parallels format extension feature runs past its cluster",
                    ));
                    break;
                }
            }
        }
        let bitmaps = self.dirty_bitmaps();
        if bitmaps > 0 {
            self.findings.push(Finding::new(
                FindingCode::DirtyBitmap,
                Severity::Info,
                format!("the Parallels image carries {bitmaps} dirty bitmap(s) (not converted)"),
            ));
        }
    }

    fn dirty_bitmaps(&self) -> usize {
        self.ext_features
            .iter()
            .filter(|&&m| m == DIRTY_BITMAP_MAGIC)
            .count()
    }
}

#[async_trait(?Send)]
impl Image for Parallels {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Parallels, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let cs = self.cluster_size();
        let mut out = vec![];
        let mut pos = start;
        while pos < end {
            let index = pos / cs;
            if index >= self.bat_entries {
                // Past the BAT: zeros, as qemu reads them.
                Extent::push_merged(&mut out, extent(pos, end - pos, Mapping::Unallocated));
                break;
            }
            let chunk_start = index - index % BAT_CHUNK;
            let n = BAT_CHUNK.min(self.bat_entries - chunk_start);
            let bat = self
                .bat_cache
                .get(
                    &*self.src,
                    HEADER_LEN + chunk_start * 4,
                    n as usize,
                    "Parallels allocation table",
                )
                .await?;
            let chunk_end = ((chunk_start + n) * cs).min(end);
            while pos < chunk_end {
                let index = pos / cs;
                let cluster_start = index * cs;
                let cluster_end = (cluster_start + cs).min(chunk_end);
                let entry = bat[(index - chunk_start) as usize];
                if entry == 0 {
                    Extent::push_merged(
                        &mut out,
                        extent(pos, cluster_end - pos, Mapping::Unallocated),
                    );
                } else {
                    let host = self.host(entry);
                    self.check_host(host, cluster_start)?;
                    if host >= self.src.len() {
                        let at = host + (pos - cluster_start);
                        intact::push_past_end(&mut out, self.file, pos, cluster_end, at);
                        pos = cluster_end;
                        continue;
                    }
                    push_data(
                        &mut out,
                        self.file,
                        self.src.len(),
                        pos,
                        cluster_end,
                        host + (pos - cluster_start),
                    );
                }
                pos = cluster_end;
            }
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        let data_offset = if self.data_off == 0 {
            self.bat_end().div_ceil(512) * 512
        } else {
            u64::from(self.data_off) * 512
        };
        let mut m = serde_json::json!({
            "magic": if self.extended { "WithouFreSpacExt" } else { "WithoutFreeSpace" },
            "version": 2,
            "cluster-size": self.cluster_size(),
            "bat-entries": self.bat_entries,
            "bat-unit": if self.extended { "cluster" } else { "sector" },
            "geometry": { "cylinders": self.cylinders, "heads": self.heads, "sectors": self.tracks },
            "data-offset": data_offset,
            "flags": self.flags,
            "dirty": self.dirty,
        });
        if self.ext_off != 0 {
            m["format-extension"] = serde_json::json!({
                "offset": self.ext_off.saturating_mul(512),
                "features": self.ext_features.len(),
                "dirty-bitmaps": self.dirty_bitmaps(),
            });
        }
        m
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
