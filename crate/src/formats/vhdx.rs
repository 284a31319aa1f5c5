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

mod log;

use crate::error::{Error, ErrorKind, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::image::{Backing, Image, open_file};
use crate::probe::Format;
use crate::probe::bytes::{guid, has, is_zero, le16, le32, le64, slice, utf16};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, read_exact};
use async_trait::async_trait;
use log::{Overlay, Piece};
use std::rc::Rc;

const MIB: u64 = 1 << 20;
const HEADERS: [u64; 2] = [64 << 10, 128 << 10];
const REGION_TABLES: [u64; 2] = [192 << 10, 256 << 10];
const REGION_TABLE_LEN: usize = 64 << 10;
const METADATA_TABLE_LEN: usize = 64 << 10;
/// [MS-VHDX] 2.6.1.3: no metadata item is larger than 1 MiB.
const MAX_ITEM_LEN: u32 = 1 << 20;
/// [MS-VHDX] 2.6.2.2: at most 64 TiB.
const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
/// BAT entries validated at open (larger BATs are checked as `map` reads them).
const MAX_SCANNED_BAT: u64 = 16 << 20;
/// BAT entries read per request in `map`.
const BAT_WINDOW: u64 = 4096;

const GUID_BAT: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const GUID_METADATA: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const GUID_FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const GUID_VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const GUID_PAGE83: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";
const GUID_LOGICAL_SECTOR: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const GUID_PHYSICAL_SECTOR: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";
const GUID_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const GUID_VHDX_LOCATOR_TYPE: &str = "B04AEFB7-D19E-4A81-B789-25B8E9445913";

// BAT entry states ([MS-VHDX] 2.5.1).
const PAYLOAD_NOT_PRESENT: u64 = 0;
const PAYLOAD_UNDEFINED: u64 = 1;
const PAYLOAD_ZERO: u64 = 2;
const PAYLOAD_UNMAPPED: u64 = 3;
const PAYLOAD_FULLY_PRESENT: u64 = 6;
const PAYLOAD_PARTIALLY_PRESENT: u64 = 7;
const SB_NOT_PRESENT: u64 = 0;
const SB_PRESENT: u64 = 6;

/// CRC-32C of `buf` with its checksum field (bytes 4..8) counted as zero.
pub(crate) fn crc_zeroed(buf: &[u8]) -> u32 {
    let c = crc32c::crc32c(slice(buf, 0, 4));
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, slice(buf, 8, buf.len()))
}

fn crc_ok(buf: &[u8]) -> bool {
    buf.len() >= 8 && crc_zeroed(buf) == le32(buf, 4)
}

/// A VHDX header ([MS-VHDX] 2.2.2).
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub seq: u64,
    pub file_write: [u8; 16],
    pub data_write: [u8; 16],
    pub log_guid: [u8; 16],
    pub log_version: u16,
    pub version: u16,
    pub log_length: u32,
    pub log_offset: u64,
}

fn guid_bytes(b: &[u8], at: usize) -> [u8; 16] {
    crate::probe::bytes::arr(b, at)
}

/// The two headers of `src`: the current one, and which slots were valid.
pub(crate) async fn read_headers(src: &dyn Source) -> Result<(Header, [bool; 2])> {
    let mut id = [0u8; 8];
    read_exact(src, 0, &mut id, "VHDX file identifier").await?;
    if &id != b"vhdxfile" {
        return Err(Error::not_an_image(format!(
            "{} has no VHDX file identifier",
            src.name()
        )));
    }
    let mut valid = [false; 2];
    let mut current: Option<Header> = None;
    for (i, at) in HEADERS.into_iter().enumerate() {
        let mut b = vec![0u8; 4096];
        read_exact(src, at, &mut b, "VHDX header").await?;
        if !has(&b, 0, b"head") || !crc_ok(&b) {
            continue;
        }
        valid[i] = true;
        let h = Header {
            seq: le64(&b, 8),
            file_write: guid_bytes(&b, 16),
            data_write: guid_bytes(&b, 32),
            log_guid: guid_bytes(&b, 48),
            log_version: le16(&b, 64),
            version: le16(&b, 66),
            log_length: le32(&b, 68),
            log_offset: le64(&b, 72),
        };
        if current.as_ref().is_none_or(|c| h.seq > c.seq) {
            current = Some(h);
        }
    }
    let h = current
        .ok_or_else(|| Error::corrupt("neither VHDX header has a valid signature and checksum"))?;
    if h.version != 1 {
        return Err(Error::unsupported(format!(
            "VHDX header version {} (only version 1 is defined)",
            h.version
        )));
    }
    Ok((h, valid))
}

struct Region {
    offset: u64,
    length: u64,
}

struct Parent {
    /// The locator path the parent was looked up by (as written in the image).
    name: String,
    image: Option<Box<dyn Image>>,
}

pub struct Vhdx {
    file: FileId,
    src: Rc<dyn Source>,
    header: Header,
    overlay: Overlay,
    log: Option<log::LogState>,
    bat: Region,
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

/// Open file `id` of the set as a VHDX image.
pub async fn open(set: &ImageSet, id: FileId, depth: usize) -> Result<Option<Box<dyn Image>>> {
    Ok(Some(Box::new(Vhdx::open(set, id, depth).await?)))
}

impl Vhdx {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let mut findings = vec![];
        let (header, valid) = read_headers(&*src).await?;
        if valid != [true, true] {
            let bad = if valid[0] { 2 } else { 1 };
            findings.push(Finding::new(
                "corrupt",
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
                "log-replayed",
                Severity::Info,
                format!(
                    "vmdisk replayed {} VHDX log entries in memory (the file itself is unchanged)",
                    state.entries
                ),
            ));
            (overlay, Some(state))
        };

        // Region tables ([MS-VHDX] 2.2.3): both are checked, the first valid one is used.
        let mut tables = vec![];
        for at in REGION_TABLES {
            let mut b = vec![0u8; REGION_TABLE_LEN];
            overlay.read(&*src, at, &mut b, "VHDX region table").await?;
            tables.push((has(&b, 0, b"regi") && crc_ok(&b)).then_some(b));
        }
        let table = match (&tables[0], &tables[1]) {
            (Some(t), other) | (None, other @ Some(t)) => {
                if other.is_none() || tables[0].is_none() {
                    let bad = if tables[0].is_none() { 1 } else { 2 };
                    findings.push(Finding::new(
                        "corrupt",
                        Severity::Warning,
                        format!("VHDX region table {bad} is damaged (bad signature or checksum); the other one is used"),
                    ));
                } else if tables[0] != tables[1] {
                    findings.push(Finding::new(
                        "corrupt",
                        Severity::Warning,
                        "the two VHDX region tables differ; the first is used",
                    ));
                }
                t.clone()
            }
            (None, None) => {
                return Err(Error::corrupt(
                    "neither VHDX region table has a valid signature and checksum",
                ));
            }
        };
        let (bat, meta) = regions(&table, &overlay, &*src)?;

        let mut vhdx = Vhdx {
            file,
            src,
            header,
            overlay,
            log,
            bat,
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
        vhdx.metadata(&meta).await?;

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
        Ok(vhdx)
    }

    fn blocks(&self) -> u64 {
        self.virtual_size.div_ceil(self.block_size)
    }

    /// BAT entries covering the virtual size ([MS-VHDX] 2.5).
    fn bat_entries(&self) -> u64 {
        let blocks = self.blocks();
        if self.has_parent {
            blocks.div_ceil(self.chunk_ratio) * (self.chunk_ratio + 1)
        } else if blocks == 0 {
            0
        } else {
            blocks + (blocks - 1) / self.chunk_ratio
        }
    }

    /// Read `len` bytes of the file as replayed.
    async fn read(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.overlay.read(&*self.src, offset, &mut b, what).await?;
        Ok(b)
    }

    /// The metadata region ([MS-VHDX] 2.6).
    async fn metadata(&mut self, meta: &Region) -> Result<()> {
        if meta.length < METADATA_TABLE_LEN as u64 {
            return Err(Error::corrupt(
                "the VHDX metadata region is smaller than its 64 KiB table",
            ));
        }
        let t = self
            .read(meta.offset, METADATA_TABLE_LEN, "VHDX metadata table")
            .await?;
        if !has(&t, 0, b"metadata") {
            return Err(Error::corrupt("the VHDX metadata table has no signature"));
        }
        let count = usize::from(le16(&t, 10));
        if count > 2047 {
            return Err(Error::corrupt(format!(
                "the VHDX metadata table has {count} entries (at most 2047)"
            )));
        }
        let mut seen: Vec<String> = vec![];
        let (mut params, mut size, mut logical, mut physical) = (None, None, None, None);
        for i in 0..count {
            let e = slice(&t, 32 + i * 32, 32);
            let id = guid(guid_bytes(e, 0));
            let (off, len) = (le32(e, 16), le32(e, 20));
            let required = le32(e, 24) & 4 != 0;
            if seen.contains(&id) {
                return Err(Error::corrupt(format!(
                    "VHDX metadata item {id} appears twice"
                )));
            }
            seen.push(id.clone());
            let inside = u64::from(off) >= METADATA_TABLE_LEN as u64
                && u64::from(off) + u64::from(len) <= meta.length
                && len <= MAX_ITEM_LEN;
            let item = async |n: u32| -> Result<Vec<u8>> {
                if !inside || len < n {
                    return Err(Error::corrupt(format!(
                        "VHDX metadata item {id} (offset {off}, {len} bytes) is too short or lies outside the metadata region"
                    )));
                }
                self.read(
                    meta.offset + u64::from(off),
                    n as usize,
                    "VHDX metadata item",
                )
                .await
            };
            match id.as_str() {
                GUID_FILE_PARAMETERS => params = Some(item(8).await?),
                GUID_VIRTUAL_DISK_SIZE => size = Some(le64(&item(8).await?, 0)),
                GUID_LOGICAL_SECTOR => logical = Some(le32(&item(4).await?, 0)),
                GUID_PHYSICAL_SECTOR => physical = Some(le32(&item(4).await?, 0)),
                GUID_PAGE83 => self.page83 = Some(guid_bytes(&item(16).await?, 0)),
                GUID_PARENT_LOCATOR => {
                    let b = item(len).await?;
                    self.parse_locator(&b)?;
                }
                _ if required => {
                    return Err(Error::unsupported(format!(
                        "the VHDX requires metadata item {id}, which vmdisk does not know"
                    )));
                }
                _ => {}
            }
        }
        let missing = |what: &str| Error::corrupt(format!("the VHDX metadata has no {what}"));
        let params = params.ok_or_else(|| missing("file parameters"))?;
        let bs = u64::from(le32(&params, 0));
        let flags = le32(&params, 4);
        if !bs.is_power_of_two() || !(MIB..=256 * MIB).contains(&bs) {
            return Err(Error::corrupt(format!(
                "VHDX block size {bs} (a power of two from 1 MiB to 256 MiB)"
            )));
        }
        self.block_size = bs;
        self.leave_allocated = flags & 1 != 0;
        self.has_parent = flags & 2 != 0;
        let logical = logical.ok_or_else(|| missing("logical sector size"))?;
        let physical = physical.ok_or_else(|| missing("physical sector size"))?;
        for (what, v) in [("logical", logical), ("physical", physical)] {
            if v != 512 && v != 4096 {
                return Err(Error::corrupt(format!(
                    "VHDX {what} sector size {v} (512 or 4096)"
                )));
            }
        }
        self.logical_sector = u64::from(logical);
        self.physical_sector = u64::from(physical);
        let size = size.ok_or_else(|| missing("virtual disk size"))?;
        if size > MAX_VIRTUAL_SIZE {
            return Err(Error::corrupt(format!(
                "VHDX virtual disk size {size} exceeds 64 TiB"
            )));
        }
        if !size.is_multiple_of(self.logical_sector) {
            return Err(Error::corrupt(format!(
                "VHDX virtual disk size {size} is not a multiple of the {logical}-byte logical sector"
            )));
        }
        self.virtual_size = size;
        if self.page83.is_none() {
            return Err(missing("page 83 data (disk identifier)"));
        }
        if self.has_parent && self.locator.is_empty() {
            return Err(Error::corrupt(
                "this differencing VHDX has no parent locator",
            ));
        }
        Ok(())
    }

    /// The parent locator ([MS-VHDX] 2.6.2.6): a type GUID and UTF-16 key/value pairs.
    fn parse_locator(&mut self, b: &[u8]) -> Result<()> {
        let kind = guid(guid_bytes(b, 0));
        if kind != GUID_VHDX_LOCATOR_TYPE {
            return Err(Error::unsupported(format!(
                "VHDX parent locator type {kind}"
            )));
        }
        let n = usize::from(le16(b, 18));
        if 20 + n * 12 > b.len() {
            return Err(Error::corrupt(format!(
                "the VHDX parent locator's {n} entries do not fit in it"
            )));
        }
        for i in 0..n {
            let e = slice(b, 20 + i * 12, 12);
            let (ko, vo) = (le32(e, 0) as usize, le32(e, 4) as usize);
            let (kl, vl) = (usize::from(le16(e, 8)), usize::from(le16(e, 10)));
            let fits = |o: usize, l: usize| o.checked_add(l).is_some_and(|end| end <= b.len());
            if !fits(ko, kl) || !fits(vo, vl) || kl == 0 || vl == 0 {
                return Err(Error::corrupt(format!(
                    "VHDX parent locator entry {i} lies outside the locator"
                )));
            }
            let k = utf16(&b[ko..ko + kl], false).unwrap_or_default();
            let v = utf16(&b[vo..vo + vl], false).unwrap_or_default();
            self.locator.push((k, v));
        }
        Ok(())
    }

    fn locator(&self, key: &str) -> Option<&str> {
        self.locator
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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
                "backing-file",
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
                "backing-format",
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
                    "parent-mismatch",
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
                "corrupt",
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

    /// Read BAT entries `[first, first + n)`.
    async fn bat_read(&self, first: u64, n: u64) -> Result<Vec<u64>> {
        let b = self
            .read(self.bat.offset + first * 8, (n * 8) as usize, "VHDX BAT")
            .await?;
        Ok(b.chunks_exact(8).map(|c| le64(c, 0)).collect())
    }

    /// Validate every BAT entry once at open (bounded): a damaged or truncated image shows up
    /// as a finding before a conversion starts.
    async fn scan_bat(&mut self) -> Result<()> {
        let total = self.bat_entries().min(MAX_SCANNED_BAT);
        let mut i = 0;
        while i < total {
            let n = (total - i).min(64 * BAT_WINDOW);
            let entries = self.bat_read(i, n).await?;
            for (k, &e) in entries.iter().enumerate() {
                if let Err(err) = self.check_entry(i + k as u64, e) {
                    let (code, msg) = match err.kind {
                        ErrorKind::Truncated => ("truncated", err.message),
                        ErrorKind::Corrupt => ("corrupt", err.message),
                        _ => ("corrupt", err.to_string()),
                    };
                    self.findings
                        .push(Finding::new(code, Severity::Critical, msg.clone()));
                    self.blocked = Some((code == "truncated", msg));
                    return Ok(());
                }
            }
            i += n;
        }
        Ok(())
    }

    /// Is BAT entry `index` a sector bitmap entry?
    fn is_bitmap_entry(&self, index: u64) -> bool {
        index % (self.chunk_ratio + 1) == self.chunk_ratio
    }

    /// Check one BAT entry: a known state and, when it points into the file, an aligned block
    /// inside the (replayed) file and past the header section.
    fn check_entry(&self, index: u64, e: u64) -> Result<()> {
        let state = e & 7;
        let offset = (e >> 20) << 20;
        let (known, with_offset, len) = if self.is_bitmap_entry(index) {
            (
                matches!(state, SB_NOT_PRESENT | SB_PRESENT),
                state == SB_PRESENT,
                MIB,
            )
        } else {
            let known = matches!(
                state,
                PAYLOAD_NOT_PRESENT
                    | PAYLOAD_UNDEFINED
                    | PAYLOAD_ZERO
                    | PAYLOAD_UNMAPPED
                    | PAYLOAD_FULLY_PRESENT
            ) || (state == PAYLOAD_PARTIALLY_PRESENT && self.has_parent);
            let block = index - index / (self.chunk_ratio + 1);
            // Only the part of the last block inside the virtual size is ever read.
            let len = self
                .block_size
                .min(self.virtual_size.saturating_sub(block * self.block_size));
            (
                known,
                matches!(state, PAYLOAD_FULLY_PRESENT | PAYLOAD_PARTIALLY_PRESENT),
                len,
            )
        };
        if !known {
            return Err(Error::corrupt(format!(
                "VHDX BAT entry {index} has invalid state {state}"
            )));
        }
        if with_offset {
            if offset < MIB {
                return Err(Error::corrupt(format!(
                    "VHDX BAT entry {index} points into the header section (offset {offset})"
                )));
            }
            let flen = self.overlay.len.max(self.src.len());
            if offset.checked_add(len).is_none_or(|end| end > flen) {
                return Err(Error::truncated(format!(
                    "VHDX BAT entry {index} points at offset {offset} (+{len} bytes), past the end of {} ({flen} bytes)",
                    self.src.name()
                )));
            }
        }
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
        let push_plain = |out: &mut Vec<Extent>, from: u64, to: u64| {
            let real = self.src.len().clamp(from, to);
            Extent::push_merged(out, extent(pos + (from - host), real - from, data(from)));
            Extent::push_merged(out, extent(pos + (real - host), to - real, Mapping::Zero));
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

/// The BAT and metadata regions of a region table, checked against the file.
fn regions(t: &[u8], overlay: &Overlay, src: &dyn Source) -> Result<(Region, Region)> {
    let count = le32(t, 8) as usize;
    if count > 2047 {
        return Err(Error::corrupt(format!(
            "the VHDX region table has {count} entries (at most 2047)"
        )));
    }
    let (mut bat, mut meta) = (None, None);
    let flen = overlay.len.max(src.len());
    let mut seen: Vec<(u64, u64)> = vec![];
    for i in 0..count {
        let e = slice(t, 16 + i * 32, 32);
        let id = guid(guid_bytes(e, 0));
        let offset = le64(e, 16);
        let length = u64::from(le32(e, 24));
        let required = le32(e, 28) & 1 != 0;
        let slot = match id.as_str() {
            GUID_BAT => &mut bat,
            GUID_METADATA => &mut meta,
            _ if required => {
                return Err(Error::unsupported(format!(
                    "the VHDX requires region {id}, which vmdisk does not know"
                )));
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::corrupt(format!("VHDX region {id} appears twice")));
        }
        if offset < MIB || !offset.is_multiple_of(MIB) || !length.is_multiple_of(MIB) || length == 0
        {
            return Err(Error::corrupt(format!(
                "VHDX region {id} at offset {offset} (+{length} bytes) is not aligned to 1 MiB"
            )));
        }
        if offset.checked_add(length).is_none_or(|end| end > flen) {
            return Err(Error::truncated(format!(
                "VHDX region {id} at offset {offset} (+{length} bytes) lies past the end of {} ({flen} bytes)",
                src.name()
            )));
        }
        if seen
            .iter()
            .any(|&(o, l)| offset < o + l && o < offset + length)
        {
            return Err(Error::corrupt(format!(
                "VHDX region {id} overlaps another region"
            )));
        }
        seen.push((offset, length));
        *slot = Some(Region { offset, length });
    }
    let bat = bat.ok_or_else(|| Error::corrupt("the VHDX has no BAT region"))?;
    let meta = meta.ok_or_else(|| Error::corrupt("the VHDX has no metadata region"))?;
    Ok((bat, meta))
}

fn extent(start: u64, len: u64, mapping: Mapping) -> Extent {
    Extent {
        start,
        len,
        mapping,
    }
}

#[async_trait(?Send)]
impl Image for Vhdx {
    fn format(&self) -> Format {
        Format::Vhdx
    }

    fn virtual_size(&self) -> u64 {
        self.virtual_size
    }

    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        self.readable()?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.virtual_size)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "range {start}+{len} is outside the virtual size {}",
                    self.virtual_size
                ))
            })?;
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
        match &self.parent {
            None => Backing::None,
            Some(Parent {
                image: Some(image), ..
            }) => Backing::Present(&**image),
            Some(p) => Backing::Missing(p.name.clone()),
        }
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

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn files(&self) -> Vec<(FileId, &'static str)> {
        vec![(self.file, "image")]
    }

    fn readable(&self) -> Result<()> {
        match &self.blocked {
            Some((true, m)) => Err(Error::truncated(m.clone())),
            Some((false, m)) => Err(Error::corrupt(m.clone())),
            None => Ok(()),
        }
    }
}
