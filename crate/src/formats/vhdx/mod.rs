//! VHDX reader ([MS-VHDX] v6): dynamic, fixed and differencing disks.
//!
//! Opening reads both headers (2.2.2; the valid one with the higher sequence number is current),
//! replays a dirty log in memory (2.3, see [`log`]), checks both region tables (2.2.3), parses the
//! metadata region (2.6: file parameters, virtual disk size, sector sizes, page 83 data, parent
//! locator) and validates the BAT (2.5). `map` reads BAT entries lazily; payload blocks become
//! [`Mapping::Data`], and for differencing disks a PARTIALLY_PRESENT block's sector bitmap decides
//! sector by sector between this file and the parent. Every structure is read through the log
//! overlay, so replayed writes are seen wherever they land.
//!
//! Limitation: a replayed log write into a payload block is mapped without copying: its middle
//! 4084 bytes point into the log's data sector, its 8 leading and 4 trailing bytes (kept in the
//! descriptor, 2.3.1.3) map to zeros when they are zero or to the block itself when it already
//! holds them; anything else cannot be expressed as an extent and the data is refused (Hyper-V
//! and qemu only log metadata, so this does not happen with their images).

mod bat;
mod checksum;
pub(crate) mod header;
mod layout;
mod log;
pub(crate) mod metadata;
pub(crate) mod region;

use super::common::bytes::{guid, is_zero};
use super::common::extents::extent;
use super::common::intact;
use super::common::parent::{self, Parent};
use super::common::scan::readable;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Backing, Basics, Image, open_file};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, read_exact};
use async_trait::async_trait;
use bat::{
    BAT_WINDOW, PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT, SB_PRESENT,
};
use header::{Header, read_headers};
use log::{Overlay, Piece};
use region::Region;
use std::rc::Rc;

const MIB: u64 = 1 << 20;

pub struct Vhdx {
    file: FileId,
    src: Rc<dyn Source>,
    header: Header,
    overlay: Overlay,
    log: Option<log::LogState>,
    bat: Region,
    /// The metadata region (kept for the integrity walk).
    meta: Region,
    block_size: u64,
    logical_sector: u64,
    physical_sector: u64,
    virtual_size: u64,
    leave_allocated: bool,
    has_parent: bool,
    chunk_ratio: u64,
    page83: Option<[u8; 16]>,
    locator: Vec<(String, String)>,
    parent: Option<Parent>,
    findings: Vec<Finding>,
    /// Why the data cannot be read: (truncated, message).
    blocked: Option<(bool, String)>,
}

impl Vhdx {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let mut findings = vec![];
        let (header, valid) = read_headers(&*src).await?;
        if valid != [true, true] {
            let bad = if valid[0] { 2 } else { 1 };
            findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "VHDX header {bad} is damaged (bad signature or checksum); the other one is used"
                ),
            ));
        }

        // The log ([MS-VHDX] 2.3): replayed in memory when the header names a log GUID.
        let (overlay, log) = if is_zero(&header.log_guid) {
            (Overlay::empty(src.len()), None)
        } else {
            let (off, len) = (header.log_offset, u64::from(header.log_length));
            if header.log_version != 0 {
                return Err(Error::unsupported(format!(
                    "VHDX log version {}",
                    header.log_version
                )));
            }
            if off < MIB || !off.is_multiple_of(MIB) || !len.is_multiple_of(MIB) || len == 0 {
                return Err(Error::corrupt(format!(
                    "the VHDX log at offset {off} (+{len} bytes) is not aligned to 1 MiB"
                )));
            }
            crate::source::check_range(&*src, off, len, "VHDX log")?;
            let (overlay, state) = log::replay(&*src, off, len, header.log_guid).await?;
            findings.push(Finding::new(
                FindingCode::LogReplayed,
                Severity::Info,
                format!(
                    "vmdisk replayed {} VHDX log entries in memory (the file itself is unchanged)",
                    state.entries
                ),
            ));
            (overlay, Some(state))
        };

        let (bat, meta) = region::read(&overlay, &*src, &mut findings).await?;

        let mut vhdx = Vhdx {
            file,
            src,
            header,
            overlay,
            log,
            bat,
            meta,
            block_size: 0,
            logical_sector: 0,
            physical_sector: 0,
            virtual_size: 0,
            leave_allocated: false,
            has_parent: false,
            chunk_ratio: 0,
            page83: None,
            locator: vec![],
            parent: None,
            findings,
            blocked: None,
        };
        vhdx.metadata(&vhdx.meta.clone()).await?;

        // Geometry ([MS-VHDX] 2.5): chunk ratio and BAT size.
        vhdx.chunk_ratio = (1u64 << 23) * vhdx.logical_sector / vhdx.block_size;
        let needed = vhdx.bat_entries();
        if needed.checked_mul(8).is_none_or(|b| b > vhdx.bat.length) {
            return Err(Error::corrupt(format!(
                "the VHDX BAT region ({} bytes) cannot hold the {needed} entries the disk needs",
                vhdx.bat.length
            )));
        }

        if vhdx.has_parent {
            vhdx.open_parent(set, depth).await?;
        }
        vhdx.scan_bat().await?;
        let found = intact::walk(&vhdx, &vhdx.layout().await).await;
        found.settle(&mut vhdx.findings, &mut vhdx.blocked);
        Ok(vhdx)
    }

    /// Read `len` bytes of the file as replayed.
    async fn read(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.overlay.read(&*self.src, offset, &mut b, what).await?;
        Ok(b)
    }
    /// Find the parent among the supplied files by the base name of a locator path, open it and
    /// check its DataWriteGuid against parent_linkage ([MS-VHDX] 2.6.2.6.1).
    async fn open_parent(&mut self, set: &ImageSet, depth: usize) -> Result<()> {
        let paths: Vec<String> = ["relative_path", "volume_path", "absolute_win32_path"]
            .iter()
            .filter_map(|k| self.locator(k).map(str::to_string))
            .collect();
        let Some(first) = paths.first().cloned() else {
            return Err(Error::corrupt(
                "this differencing VHDX's parent locator has no path to its parent",
            ));
        };
        let found = paths.iter().find_map(|p| set.find(p).map(|id| (p, id)));
        let Some((name, id)) = found else {
            self.findings.push(Finding::new(
                FindingCode::BackingFile,
                Severity::Critical,
                format!(
                    "the parent {:?} of this differencing VHDX was not supplied",
                    base_name(&first)
                ),
            ));
            self.parent = Some(Parent {
                name: first,
                image: None,
            });
            return Ok(());
        };
        let name = name.clone();
        if id == self.file {
            return Err(Error::corrupt(format!(
                "{} names itself as its parent",
                self.src.name()
            )));
        }
        let parent_src = set.file(id).clone();
        let opening = Box::pin(open_file(set, id, depth + 1));
        let (probe, image) = opening
            .await
            .map_err(|e| Error::corrupt(format!("parent {:?}: {e}", parent_src.name())))?;
        let Some(image) = image else {
            return Err(Error::unsupported(format!(
                "the parent {:?} is {}, which vmdisk cannot read",
                parent_src.name(),
                probe.primary().format
            )));
        };
        if image.format() != Format::Vhdx {
            self.findings.push(Finding::new(
                FindingCode::BackingFormat,
                Severity::Critical,
                format!(
                    "the parent {:?} of this differencing VHDX is {}, not VHDX",
                    parent_src.name(),
                    image.format()
                ),
            ));
        } else {
            let (ph, _) = read_headers(&*parent_src).await?;
            let theirs = guid(ph.data_write);
            let norm = |s: &str| s.trim_matches(['{', '}']).to_uppercase();
            let linkage = self.locator("parent_linkage").map(norm);
            let linkage2 = self.locator("parent_linkage2").map(norm);
            if linkage.as_deref() != Some(theirs.as_str())
                && linkage2.as_deref() != Some(theirs.as_str())
            {
                self.findings.push(Finding::new(
                    FindingCode::ParentMismatch,
                    Severity::Critical,
                    format!(
                        "the parent {:?} has DataWriteGuid {{{theirs}}} but this disk was made from {}: the parent changed since, and the disk reads as garbage",
                        parent_src.name(),
                        self.locator("parent_linkage").unwrap_or("no parent_linkage")
                    ),
                ));
            }
        }
        if image.virtual_size() != self.virtual_size {
            self.findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the parent's virtual size {} differs from this disk's {}",
                    image.virtual_size(),
                    self.virtual_size
                ),
            ));
        }
        self.parent = Some(Parent {
            name,
            image: Some(image),
        });
        Ok(())
    }
    /// Guest `[pos, end)` stored at file offset `host`: data, with replayed log writes and the
    /// part past the real end of the file (zeros after replay) split out.
    async fn push_stored(
        &self,
        out: &mut Vec<Extent>,
        pos: u64,
        end: u64,
        host: u64,
    ) -> Result<()> {
        let host_end = host + (end - pos);
        let mut at = host;
        let data = |o: u64| Mapping::Data {
            file: self.file,
            offset: o,
        };
        // Bytes the replayed log added past the real end read as zeros; bytes past that are
        // missing, mapped all the same for the integrity walk to count.
        let grown = self.overlay.len.max(self.src.len());
        let push_plain = |out: &mut Vec<Extent>, from: u64, to: u64| {
            let real = self.src.len().clamp(from, to);
            let zeros = grown.clamp(real, to);
            Extent::push_merged(out, extent(pos + (from - host), real - from, data(from)));
            Extent::push_merged(
                out,
                extent(pos + (real - host), zeros - real, Mapping::Zero),
            );
            Extent::push_merged(out, extent(pos + (zeros - host), to - zeros, data(zeros)));
        };
        if self.overlay.is_empty() {
            push_plain(out, host, host_end);
            return Ok(());
        }
        for (s, e, piece) in self.overlay.pieces(host, host_end) {
            if s > at {
                push_plain(out, at, s);
            }
            match piece {
                Piece::Zero => {
                    Extent::push_merged(out, extent(pos + (s - host), e - s, Mapping::Zero))
                }
                Piece::Sector {
                    data: log_data,
                    leading,
                    trailing,
                } => {
                    let sector = s - s % log::SECTOR;
                    // The sector's three parts: [0, 8) leading, [8, 4092) in the log, [4092, 4096) trailing.
                    let parts: [(u64, u64); 3] = [(0, 8), (8, 4092), (4092, 4096)];
                    for (i, (a, b)) in parts.into_iter().enumerate() {
                        let (a, b) = ((sector + a).max(s), (sector + b).min(e));
                        if a >= b {
                            continue;
                        }
                        let g = pos + (a - host);
                        let m = match i {
                            1 => data(log_data + (a - sector)),
                            _ => {
                                let want: &[u8] = if i == 0 { &leading } else { &trailing };
                                let rel = (a - sector - if i == 0 { 0 } else { 4092 }) as usize;
                                let want = &want[rel..rel + (b - a) as usize];
                                self.literal(want, a).await?
                            }
                        };
                        Extent::push_merged(out, extent(g, b - a, m));
                    }
                }
            }
            at = e;
        }
        if at < host_end {
            push_plain(out, at, host_end);
        }
        Ok(())
    }

    /// A mapping for replayed bytes `want` destined for file offset `at`: zeros, or the bytes
    /// already at the destination when they are the same.
    async fn literal(&self, want: &[u8], at: u64) -> Result<Mapping> {
        if is_zero(want) {
            return Ok(Mapping::Zero);
        }
        if at + want.len() as u64 <= self.src.len() {
            let mut have = vec![0u8; want.len()];
            read_exact(&*self.src, at, &mut have, "VHDX payload").await?;
            if have == want {
                return Ok(Mapping::Data {
                    file: self.file,
                    offset: at,
                });
            }
        }
        Err(Error::unsupported(format!(
            "the VHDX log rewrites guest data at file offset {at} in a way vmdisk cannot map without copying; replay the log in Hyper-V first"
        )))
    }

    /// Extents of `[pos, end)` inside the block at guest `block_start` with BAT entry `e`.
    async fn map_block(
        &self,
        out: &mut Vec<Extent>,
        block: u64,
        pos: u64,
        end: u64,
        e: u64,
        index: u64,
    ) -> Result<()> {
        self.check_entry(index, e)?;
        let block_start = block * self.block_size;
        let host = ((e >> 20) << 20) + (pos - block_start);
        match e & 7 {
            PAYLOAD_FULLY_PRESENT => self.push_stored(out, pos, end, host).await,
            PAYLOAD_PARTIALLY_PRESENT => {
                self.map_partial(out, block, pos, end, (e >> 20) << 20)
                    .await
            }
            PAYLOAD_NOT_PRESENT => {
                Extent::push_merged(out, extent(pos, end - pos, Mapping::Unallocated));
                Ok(())
            }
            // ZERO, UNMAPPED and UNDEFINED read as zeros, never from a parent.
            _ => {
                Extent::push_merged(out, extent(pos, end - pos, Mapping::Zero));
                Ok(())
            }
        }
    }

    /// A PARTIALLY_PRESENT block of a differencing disk: the chunk's sector bitmap
    /// ([MS-VHDX] 2.5.1.2) has one bit per logical sector, set when this file holds it.
    async fn map_partial(
        &self,
        out: &mut Vec<Extent>,
        block: u64,
        pos: u64,
        end: u64,
        block_host: u64,
    ) -> Result<()> {
        let chunk = block / self.chunk_ratio;
        let sb_index = chunk * (self.chunk_ratio + 1) + self.chunk_ratio;
        let sb = self.bat_read(sb_index, 1).await?[0];
        self.check_entry(sb_index, sb)?;
        if sb & 7 != SB_PRESENT {
            return Err(Error::corrupt(format!(
                "VHDX block {block} is partially present but its sector bitmap is not"
            )));
        }
        let sb_host = (sb >> 20) << 20;
        let ls = self.logical_sector;
        let chunk_start = chunk * self.chunk_ratio * self.block_size;
        let (s0, s1) = ((pos - chunk_start) / ls, (end - chunk_start).div_ceil(ls));
        let (b0, b1) = (s0 / 8, s1.div_ceil(8));
        let bits = self
            .read(sb_host + b0, (b1 - b0) as usize, "VHDX sector bitmap")
            .await?;
        let block_start = block * self.block_size;
        let mut p = pos;
        while p < end {
            let s = (p - chunk_start) / ls;
            let bit = s - b0 * 8;
            let present = bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0;
            let mut q = (chunk_start + (s + 1) * ls).min(end);
            // Extend over following sectors in the same state.
            while q < end {
                let s2 = (q - chunk_start) / ls - b0 * 8;
                if (bits[(s2 / 8) as usize] & (1 << (s2 % 8)) != 0) != present {
                    break;
                }
                q = (q + ls).min(end);
            }
            if present {
                self.push_stored(out, p, q, block_host + (p - block_start))
                    .await?;
            } else {
                Extent::push_merged(out, extent(p, q - p, Mapping::Unallocated));
            }
            p = q;
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Image for Vhdx {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Vhdx, self.virtual_size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        let mut pos = start;
        let cr = self.chunk_ratio;
        while pos < end {
            // A window of BAT entries from the block holding `pos`.
            let first_block = pos / self.block_size;
            let last_block = (end - 1) / self.block_size;
            let blocks = (last_block - first_block + 1).min(BAT_WINDOW);
            let first_index = first_block + first_block / cr;
            let last_index = (first_block + blocks - 1) + (first_block + blocks - 1) / cr;
            let entries = self
                .bat_read(first_index, last_index - first_index + 1)
                .await?;
            for block in first_block..first_block + blocks {
                let index = block + block / cr;
                let e = entries[(index - first_index) as usize];
                let block_end = ((block + 1) * self.block_size).min(end);
                self.map_block(&mut out, block, pos, block_end, e, index)
                    .await?;
                pos = block_end;
            }
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        parent::backing(&self.parent)
    }

    fn details(&self) -> serde_json::Value {
        let h = &self.header;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        let disk_type = if self.has_parent {
            "differencing"
        } else if self.leave_allocated {
            "fixed"
        } else {
            "dynamic"
        };
        put("disk-type", disk_type.into());
        put("version", h.version.into());
        put("block-size", self.block_size.into());
        put("logical-sector-size", self.logical_sector.into());
        put("physical-sector-size", self.physical_sector.into());
        put("leave-blocks-allocated", self.leave_allocated.into());
        put("has-parent", self.has_parent.into());
        put("chunk-ratio", self.chunk_ratio.into());
        if let Some(p) = &self.page83 {
            put("disk-uuid", guid(*p).into());
        }
        put("header-sequence", h.seq.into());
        put("file-write-guid", guid(h.file_write).into());
        put("data-write-guid", guid(h.data_write).into());
        put("log-offset", h.log_offset.into());
        put("log-length", h.log_length.into());
        let dirty = !is_zero(&h.log_guid);
        if dirty {
            put("log-guid", guid(h.log_guid).into());
        }
        put("log-replayed", self.log.is_some().into());
        put("log-replay-needed", dirty.into());
        if let Some(l) = &self.log {
            put("log-entries", l.entries.into());
            put("log-head-sequence", l.head_sequence.into());
        }
        if !self.locator.is_empty() {
            let loc: serde_json::Map<String, serde_json::Value> = self
                .locator
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            put("parent-locator", loc.into());
        }
        if let Some(p) = &self.parent {
            put("parent", p.name.clone().into());
        }
        serde_json::Value::Object(m)
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
