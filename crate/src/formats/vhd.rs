//! VHD reader: fixed, dynamic and differencing disks, as specified by Microsoft's "Virtual Hard
//! Disk Image Format Specification" (2006). Behaviour compared with qemu's `block/vpc.c`.
//!
//! Layout (spec "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block Allocation
//! Table and Data Blocks"):
//! - every VHD ends with a 512-byte big-endian footer (`conectix`); dynamic and differencing
//!   disks keep a copy at offset 0, used here when the one at the end is damaged;
//! - a fixed disk is the guest data followed by the footer;
//! - a dynamic disk has a 1 KiB dynamic header (`cxsparse`) at the footer's data offset, a block
//!   allocation table (BAT: one big-endian sector number per block, `0xffffffff` = absent) and
//!   blocks made of a sector bitmap (one bit per sector, most significant bit first, padded to
//!   whole sectors) followed by the block's data. A sector whose bit is 0 is not stored here:
//!   it reads as zeros in a dynamic disk and from the parent in a differencing disk;
//! - a differencing disk names its parent in the dynamic header (UUID, Unicode name) and in up
//!   to eight parent locators (`W2ru` relative and `W2ku` absolute Windows paths in UTF-16 LE,
//!   `MacX` file URLs in UTF-8; the old `Mac ` alias records are opaque and skipped).
//!
//! Decisions (documented where qemu differs):
//! - The virtual size is the footer's current size. qemu uses the CHS geometry instead for
//!   images whose creator application it does not know to use the current size (everything but
//!   `win `, `qem2`, `d2v `, `CTXS`, `tap\0`) unless the geometry is the maximum one; the size
//!   qemu would use is reported as `qemu-virtual-size` when it differs.
//! - qemu's probe only looks at offset 0, so it calls a fixed VHD raw and counts the footer as
//!   disk data; vmdisk finds the footer at the end and reads the disk without it.
//! - A footer whose checksum is wrong: the copy at offset 0 is used when it is valid (Warning
//!   `corrupt`); otherwise opening fails (qemu only prints a warning and carries on).
//! - A dynamic header whose checksum is wrong fails to open (there is no second copy).
//! - A parent whose footer UUID differs from the one the child records is a Critical
//!   `parent-mismatch` finding; the parent is still used, as Hyper-V would refuse it.

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::formats::raw::RawImage;
use crate::image::{Backing, Image};
use crate::probe::Format;
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, check_range, is_plain_name, read_vec};
use async_trait::async_trait;
use serde_json::json;
use std::rc::Rc;

const FOOTER_LEN: u64 = 512;
const DYN_HEADER_LEN: u64 = 1024;
const SECTOR: u64 = 512;
const UNALLOCATED: u32 = 0xffff_ffff;
/// qemu's limit (VHD_MAX_SECTORS): about 2040 GiB, what the spec's geometry can describe.
const MAX_SIZE: u64 = 0xff00_0000 * SECTOR;
/// Block sizes vmdisk accepts (the spec's default is 2 MiB; Hyper-V writes 512 KiB to 2 MiB).
const MAX_BLOCK: u32 = 1 << 30;
/// The BAT entries vmdisk keeps in memory at most (16 MiB of table).
const MAX_BAT_ENTRIES: u64 = 4 << 20;
/// The largest parent locator vmdisk reads (a path; the spec reserves a few sectors).
const MAX_LOCATOR: u64 = 64 << 10;
/// The geometry qemu treats as "size does not fit CHS": use the current size.
const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The spec's checksum: one's complement of the byte sum, the checksum field counting as zero.
fn checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

fn uuid(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

impl DiskType {
    fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// The hard disk footer (spec "Hard Disk Footer Format").
#[derive(Clone, Debug)]
struct Footer {
    data_offset: u64,
    creator_app: [u8; 4],
    creator_version: u32,
    creator_os: [u8; 4],
    original_size: u64,
    current_size: u64,
    cylinders: u16,
    heads: u8,
    sectors: u8,
    disk_type: DiskType,
    uuid: [u8; 16],
    saved_state: bool,
}

impl Footer {
    /// Parse a footer (512 bytes, or 511 from an old Virtual PC). Err explains why it is unusable.
    fn parse(b: &[u8]) -> std::result::Result<Footer, String> {
        if b.len() < 511 || &b[0..8] != b"conectix" {
            return Err("no VHD footer (conectix)".into());
        }
        let want = be32(b, 64);
        if checksum(b, 64) != want {
            return Err(format!(
                "the VHD footer checksum is {want:#010x} but its contents sum to {:#010x}",
                checksum(b, 64)
            ));
        }
        let disk_type = match be32(b, 60) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => return Err(format!("unknown VHD disk type {t}")),
        };
        Ok(Footer {
            data_offset: be64(b, 16),
            creator_app: b[28..32].try_into().expect("4"),
            creator_version: be32(b, 32),
            creator_os: b[36..40].try_into().expect("4"),
            original_size: be64(b, 40),
            current_size: be64(b, 48),
            cylinders: be16(b, 56),
            heads: b[58],
            sectors: b[59],
            disk_type,
            uuid: b[68..84].try_into().expect("16"),
            saved_state: b[84] != 0,
        })
    }

    fn chs_sectors(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors)
    }

    /// The virtual size qemu's vpc driver reports for this footer.
    fn qemu_size(&self) -> u64 {
        let current = matches!(
            &self.creator_app,
            b"win " | b"qem2" | b"d2v " | b"CTXS" | b"tap\0"
        );
        let chs = self.chs_sectors();
        if current || chs == MAX_CHS_SECTORS {
            self.current_size
        } else {
            chs * SECTOR
        }
    }
}

fn four_cc(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

/// Where the footer was found, and what was wrong with the other copy.
struct FooterFound {
    footer: Footer,
    /// Bytes the footer takes at the end of the file (512, 511, or 0 when it is missing).
    tail_len: u64,
    warning: Option<String>,
}

/// Read the footer of `src`: the one at the end, else the copy at offset 0.
async fn read_footer(src: &dyn Source) -> Result<FooterFound> {
    let len = src.len();
    let mut tail_err = String::from("the file is shorter than a VHD footer");
    let mut tail_len = 0;
    for n in [FOOTER_LEN, FOOTER_LEN - 1] {
        if len < n {
            continue;
        }
        let b = read_vec(src, len - n, n, "VHD footer").await?;
        if &b[0..8] != b"conectix" {
            tail_err = "the VHD footer at the end of the file is missing".into();
            continue;
        }
        match Footer::parse(&b) {
            Ok(footer) => {
                return Ok(FooterFound {
                    footer,
                    tail_len: n,
                    warning: None,
                });
            }
            Err(e) => {
                tail_err = e;
                tail_len = n;
                break;
            }
        }
    }
    // The copy at offset 0 (dynamic and differencing disks only).
    if len >= FOOTER_LEN {
        let b = read_vec(src, 0, FOOTER_LEN, "VHD footer copy").await?;
        if let Ok(footer) = Footer::parse(&b)
            && footer.disk_type != DiskType::Fixed
        {
            return Ok(FooterFound {
                footer,
                tail_len,
                warning: Some(format!(
                    "{tail_err}; the copy of the footer at offset 0 was used instead"
                )),
            });
        }
    }
    Err(Error::corrupt(format!("{}: {tail_err}", src.name())))
}

/// The dynamic disk header (spec "Dynamic Disk Header Format").
struct DynHeader {
    table_offset: u64,
    max_entries: u32,
    block_size: u32,
    parent_uuid: [u8; 16],
    parent_timestamp: u32,
    parent_name: Option<String>,
    /// (platform code, data offset, data length)
    locators: Vec<([u8; 4], u64, u32)>,
}

fn utf16(b: &[u8], big_endian: bool) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .take_while(|&u| u != 0)
        .collect();
    let s: String = String::from_utf16_lossy(&units)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

impl DynHeader {
    fn parse(b: &[u8], at: u64) -> Result<DynHeader> {
        if &b[0..8] != b"cxsparse" {
            return Err(Error::corrupt(format!(
                "no VHD dynamic disk header (cxsparse) at offset {at}"
            )));
        }
        let want = be32(b, 36);
        if checksum(b, 36) != want {
            return Err(Error::corrupt(format!(
                "the VHD dynamic disk header checksum is {want:#010x} but its contents sum to {:#010x}",
                checksum(b, 36)
            )));
        }
        let locators = (0..8)
            .map(|i| &b[576 + i * 24..600 + i * 24])
            .filter(|e| e[0..4] != [0; 4])
            .map(|e| (e[0..4].try_into().expect("4"), be64(e, 16), be32(e, 8)))
            .collect();
        Ok(DynHeader {
            table_offset: be64(b, 16),
            max_entries: be32(b, 28),
            block_size: be32(b, 32),
            parent_uuid: b[40..56].try_into().expect("16"),
            parent_timestamp: be32(b, 56),
            parent_name: utf16(&b[64..576], true),
            locators,
        })
    }
}

struct Dynamic {
    header: DynHeader,
    /// Bytes of sector bitmap in front of each block's data.
    bitmap_len: u64,
    /// The BAT entries covering the virtual size.
    bat: Vec<u32>,
}

struct Parent {
    /// The name the parent was resolved by (or the first name the image gives).
    name: String,
    image: Option<Box<dyn Image>>,
    /// (platform code, name) of every parent locator that could be decoded.
    locators: Vec<(String, String)>,
}

pub struct Vhd {
    file: FileId,
    src: Rc<dyn Source>,
    footer: Footer,
    dynamic: Option<Dynamic>,
    parent: Option<Parent>,
    findings: Vec<Finding>,
    /// Why the data cannot be read, if it cannot.
    blocked: Option<String>,
}

/// Open file `id` of the set as a VHD image.
pub async fn open(set: &ImageSet, id: FileId, depth: usize) -> Result<Option<Box<dyn Image>>> {
    Ok(Some(Box::new(Vhd::open(set, id, depth).await?)))
}

impl Vhd {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Vhd> {
        let src = set.file(file).clone();
        let flen = src.len();
        let found = read_footer(&*src).await?;
        let footer = found.footer;
        let mut findings = vec![];
        let mut blocked = None;
        if let Some(w) = found.warning {
            findings.push(Finding::new("corrupt", Severity::Warning, w));
        }
        let size = footer.current_size;
        if size > MAX_SIZE {
            return Err(Error::unsupported(format!(
                "VHD current size {size} exceeds the format's limit of {MAX_SIZE} bytes"
            )));
        }
        if !size.is_multiple_of(1 << 20) {
            findings.push(Finding::new(
                "unaligned-size",
                Severity::Warning,
                format!(
                    "the VHD virtual size {size} is not a whole number of MiB (Azure requires it)"
                ),
            ));
        }
        if footer.saved_state {
            findings.push(Finding::new(
                "dirty",
                Severity::Warning,
                "the VHD footer's saved-state flag is set: the disk belongs to a suspended VM",
            ));
        }
        let mut dynamic = None;
        let mut parent = None;
        match footer.disk_type {
            DiskType::Fixed => {
                let data = flen.saturating_sub(found.tail_len);
                if data < size {
                    blocked = Some(format!(
                        "the fixed VHD {} holds {data} bytes of data but its footer says {size}",
                        src.name()
                    ));
                }
            }
            DiskType::Dynamic | DiskType::Differencing => {
                let at = footer.data_offset;
                let h = read_vec(&*src, at, DYN_HEADER_LEN, "VHD dynamic disk header").await?;
                let header = DynHeader::parse(&h, at)?;
                let d = read_bat(&*src, header, at, size, &mut findings, &mut blocked).await?;
                if footer.disk_type == DiskType::Differencing {
                    let opening = Box::pin(open_parent(set, file, depth, &d.header, &mut findings));
                    parent = Some(opening.await?);
                }
                dynamic = Some(d);
            }
        }
        Ok(Vhd {
            file,
            src,
            footer,
            dynamic,
            parent,
            findings,
            blocked,
        })
    }

    fn size(&self) -> u64 {
        self.footer.current_size
    }

    /// Map `[start, end)`, which lies inside block `index` of a dynamic or differencing disk.
    async fn map_block(
        &self,
        d: &Dynamic,
        index: usize,
        start: u64,
        end: u64,
        out: &mut Vec<Extent>,
    ) -> Result<()> {
        let entry = d.bat[index];
        if entry == UNALLOCATED {
            Extent::push_merged(out, extent(start, end - start, Mapping::Unallocated));
            return Ok(());
        }
        let bs = u64::from(d.header.block_size);
        let block_start = index as u64 * bs;
        let bitmap_at = u64::from(entry) * SECTOR;
        let data_at = bitmap_at + d.bitmap_len;
        // The bitmap bytes of the sectors in range only.
        let (first, last) = (
            (start - block_start) / SECTOR,
            (end - 1 - block_start) / SECTOR,
        );
        let (b0, b1) = (first / 8, last / 8 + 1);
        let bits = read_vec(&*self.src, bitmap_at + b0, b1 - b0, "VHD sector bitmap").await?;
        let mut pos = start;
        while pos < end {
            let sector = (pos - block_start) / SECTOR;
            let bit = sector - b0 * 8;
            let set = bits[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
            let next = (block_start + (sector + 1) * SECTOR).min(end);
            let mapping = if set {
                Mapping::Data {
                    file: self.file,
                    offset: data_at + (pos - block_start),
                }
            } else {
                Mapping::Unallocated
            };
            Extent::push_merged(out, extent(pos, next - pos, mapping));
            pos = next;
        }
        Ok(())
    }
}

fn extent(start: u64, len: u64, mapping: Mapping) -> Extent {
    Extent {
        start,
        len,
        mapping,
    }
}

/// Validate the dynamic header's geometry and read the BAT entries covering `size`.
async fn read_bat(
    src: &dyn Source,
    header: DynHeader,
    header_at: u64,
    size: u64,
    findings: &mut Vec<Finding>,
    blocked: &mut Option<String>,
) -> Result<Dynamic> {
    let bs = header.block_size;
    if !bs.is_power_of_two() || !(512..=MAX_BLOCK).contains(&bs) {
        return Err(Error::corrupt(format!(
            "VHD block size {bs} is not a power of two between 512 bytes and 1 GiB"
        )));
    }
    let bs = u64::from(bs);
    let needed = size.div_ceil(bs);
    if u64::from(header.max_entries) < needed {
        return Err(Error::corrupt(format!(
            "the VHD block table has {} entries but the {size}-byte disk needs {needed}",
            header.max_entries
        )));
    }
    if needed > MAX_BAT_ENTRIES {
        return Err(Error::unsupported(format!(
            "the VHD block table needs {needed} entries (at most {MAX_BAT_ENTRIES} supported)"
        )));
    }
    let raw = read_vec(
        src,
        header.table_offset,
        needed * 4,
        "VHD block allocation table",
    )
    .await?;
    let bat: Vec<u32> = raw.chunks_exact(4).map(|c| be32(c, 0)).collect();
    drop(raw);
    // Bitmap: one bit per sector, padded to whole sectors (spec "Block Allocation Table").
    let bitmap_len = (bs / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
    let span = bitmap_len + bs;
    // Every allocated block must lie inside the file and apart from the others and the
    // metadata (footer copy, dynamic header, BAT).
    let mut blocks: Vec<(u64, usize)> = Vec::new();
    let flen = src.len();
    for (i, &e) in bat.iter().enumerate() {
        if e == UNALLOCATED {
            continue;
        }
        let at = u64::from(e) * SECTOR;
        if check_range(src, at, span, "").is_err() {
            let msg = format!(
                "VHD block {i} at offset {at} (+{span} bytes) lies past the end of {} ({flen} bytes): the file is truncated",
                src.name()
            );
            findings.push(Finding::new("truncated", Severity::Critical, msg.clone()));
            blocked.get_or_insert(msg);
            continue;
        }
        blocks.push((at, i));
    }
    blocks.sort_unstable();
    let bat_end = header.table_offset + u64::from(header.max_entries) * 4;
    for w in blocks.windows(2) {
        if w[0].0 + span > w[1].0 {
            return Err(Error::corrupt(format!(
                "VHD blocks {} and {} overlap in the file (offsets {} and {})",
                w[0].1, w[1].1, w[0].0, w[1].0
            )));
        }
    }
    for &(at, i) in &blocks {
        let meta = [
            (0, FOOTER_LEN),
            (header_at, header_at + DYN_HEADER_LEN),
            (header.table_offset, bat_end),
            (flen.saturating_sub(FOOTER_LEN), flen),
        ];
        if meta.iter().any(|&(s, e)| at < e && s < at + span) {
            return Err(Error::corrupt(format!(
                "VHD block {i} at offset {at} overlaps the image's metadata"
            )));
        }
    }
    Ok(Dynamic {
        header,
        bitmap_len,
        bat,
    })
}

/// Decode parent locator `code` holding `data`.
fn locator_name(code: &[u8; 4], data: &[u8]) -> Option<String> {
    match code {
        b"W2ru" | b"W2ku" => utf16(data, false),
        b"MacX" => {
            let s = String::from_utf8_lossy(data);
            let s = s.trim_end_matches('\0').trim();
            let s = s.strip_prefix("file://").unwrap_or(s);
            let s: String = s.chars().filter(|c| !c.is_control()).collect();
            (!s.is_empty()).then_some(s)
        }
        // Deprecated ASCII Windows paths.
        b"Wi2r" | b"Wi2k" => {
            let s = String::from_utf8_lossy(data);
            let s: String = s
                .trim_end_matches('\0')
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            let s = s.trim().to_string();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    }
}

/// Find the parent of a differencing disk among the supplied files and open it.
async fn open_parent(
    set: &ImageSet,
    file: FileId,
    depth: usize,
    h: &DynHeader,
    findings: &mut Vec<Finding>,
) -> Result<Parent> {
    let src = set.file(file);
    let mut locators = vec![];
    for &(code, at, len) in &h.locators {
        let len = u64::from(len);
        if len == 0 {
            continue;
        }
        if len > MAX_LOCATOR || check_range(&**src, at, len, "").is_err() {
            findings.push(Finding::new(
                "corrupt",
                Severity::Warning,
                format!(
                    "VHD parent locator {} at offset {at} (+{len} bytes) is too long or past the end of the file; ignored",
                    four_cc(&code)
                ),
            ));
            continue;
        }
        let data = read_vec(&**src, at, len, "VHD parent locator").await?;
        if let Some(n) = locator_name(&code, &data) {
            locators.push((four_cc(&code), n));
        }
    }
    // Candidates: locators first (relative before absolute), then the Unicode name.
    let mut names: Vec<&str> = locators.iter().map(|(_, n)| n.as_str()).collect();
    if let Some(n) = &h.parent_name {
        names.push(n);
    }
    let paths: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !is_plain_name(n))
        .collect();
    if !paths.is_empty() {
        findings.push(Finding::new(
            "backing-file",
            Severity::Critical,
            format!(
                "the differencing VHD names its parent by path ({}), which would make a host read that file; only its base name is matched among the supplied files",
                paths
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let shown = names.first().map(|n| n.to_string());
    let Some(shown) = shown else {
        return Err(Error::corrupt(
            "the differencing VHD does not name its parent",
        ));
    };
    let Some((id, name)) = names
        .iter()
        .find_map(|n| set.find(n).map(|id| (id, n.to_string())))
    else {
        findings.push(Finding::new(
            "backing-file",
            Severity::Critical,
            format!("the parent VHD \"{}\" was not supplied", base_name(&shown)),
        ));
        return Ok(Parent {
            name: shown,
            image: None,
            locators,
        });
    };
    if id == file {
        return Err(Error::corrupt(format!(
            "{} names itself as its parent",
            src.name()
        )));
    }
    let psrc = set.file(id).clone();
    match read_footer(&*psrc).await {
        Ok(pf) if pf.footer.uuid != h.parent_uuid => findings.push(Finding::new(
            "parent-mismatch",
            Severity::Critical,
            format!(
                "the parent {} has UUID {} but the differencing VHD expects {}: it is not the right parent",
                psrc.name(),
                uuid(&pf.footer.uuid),
                uuid(&h.parent_uuid)
            ),
        )),
        Ok(_) => {}
        Err(_) => findings.push(Finding::new(
            "parent-mismatch",
            Severity::Critical,
            format!(
                "the parent {} of the differencing VHD is not a VHD",
                psrc.name()
            ),
        )),
    }
    let (_, image) = crate::image::open_file(set, id, depth + 1)
        .await
        .map_err(|e| in_parent(e, psrc.name()))?;
    Ok(Parent {
        name,
        image,
        locators,
    })
}

/// Name the parent in an error from opening it.
pub(crate) fn in_parent(e: Error, name: &str) -> Error {
    e.context(format_args!("parent {name}"))
}

#[async_trait(?Send)]
impl Image for Vhd {
    fn format(&self) -> Format {
        Format::Vhd
    }

    fn virtual_size(&self) -> u64 {
        self.size()
    }

    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        self.readable()?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.size())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "range {start}+{len} is outside the virtual size {}",
                    self.size()
                ))
            })?;
        let Some(d) = &self.dynamic else {
            // Fixed: the data area is the disk (sparse holes read as zeros, as for raw).
            let raw = RawImage::new(Format::Raw, self.file, self.src.clone());
            return raw.map(start, len).await;
        };
        let bs = u64::from(d.header.block_size);
        let mut out = vec![];
        let mut pos = start;
        while pos < end {
            let index = (pos / bs) as usize;
            let block_end = ((index as u64 + 1) * bs).min(end);
            self.map_block(d, index, pos, block_end, &mut out).await?;
            pos = block_end;
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
        let f = &self.footer;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("disk-type", f.disk_type.name().into());
        put("uuid", uuid(&f.uuid).into());
        put("creator", four_cc(&f.creator_app).into());
        put(
            "creator-version",
            format!("{}.{}", f.creator_version >> 16, f.creator_version & 0xffff).into(),
        );
        put("creator-os", four_cc(&f.creator_os).into());
        put("original-size", f.original_size.into());
        put("current-size", f.current_size.into());
        put(
            "geometry",
            json!({"cylinders": f.cylinders, "heads": f.heads, "sectors": f.sectors}),
        );
        put("chs-size", (f.chs_sectors() * SECTOR).into());
        if f.qemu_size() != f.current_size {
            put("qemu-virtual-size", f.qemu_size().into());
        }
        put("saved-state", f.saved_state.into());
        if let Some(d) = &self.dynamic {
            put("block-size", d.header.block_size.into());
            put("max-table-entries", d.header.max_entries.into());
            let allocated = d.bat.iter().filter(|&&e| e != UNALLOCATED).count();
            put("allocated-blocks", allocated.into());
        }
        if let (Some(p), Some(d)) = (&self.parent, &self.dynamic) {
            put("parent", p.name.clone().into());
            put("parent-uuid", uuid(&d.header.parent_uuid).into());
            put("parent-timestamp", d.header.parent_timestamp.into());
            if let Some(n) = &d.header.parent_name {
                put("parent-unicode-name", n.clone().into());
            }
            put(
                "parent-locators",
                p.locators
                    .iter()
                    .map(|(c, n)| json!({"platform": c, "name": n}))
                    .collect(),
            );
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
            Some(m) => Err(Error::truncated(m.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::block_on;
    use crate::source::MemSource;

    /// A 16 KiB dynamic VHD with 4 KiB blocks: block 1 stored with half its sectors.
    fn image() -> Vec<u8> {
        let mut f = vec![0u8; 2048];
        let mut h = vec![0u8; 1024];
        h[0..8].copy_from_slice(b"cxsparse");
        h[16..24].copy_from_slice(&1536u64.to_be_bytes());
        h[28..32].copy_from_slice(&4u32.to_be_bytes());
        h[32..36].copy_from_slice(&4096u32.to_be_bytes());
        let c = checksum(&h, 36);
        h[36..40].copy_from_slice(&c.to_be_bytes());
        f[512..1536].copy_from_slice(&h);
        f[1536..2048].fill(0xff);
        f[1540..1544].copy_from_slice(&4u32.to_be_bytes());
        f.extend([0xf0]);
        f.resize(2560, 0);
        f.extend(vec![0x5a; 4096]);
        let mut footer = vec![0u8; 512];
        footer[0..8].copy_from_slice(b"conectix");
        footer[16..24].copy_from_slice(&512u64.to_be_bytes());
        footer[48..56].copy_from_slice(&16384u64.to_be_bytes());
        footer[60..64].copy_from_slice(&3u32.to_be_bytes());
        let c = checksum(&footer, 64);
        footer[64..68].copy_from_slice(&c.to_be_bytes());
        f[0..512].copy_from_slice(&footer);
        f.extend(footer);
        f
    }

    fn open_bytes(data: Vec<u8>) -> Result<Vec<Extent>> {
        let set = ImageSet::new(vec![Rc::new(MemSource::new("t.vhd", data))]);
        let v = block_on(Vhd::open(&set, FileId(0), 0))?;
        let _ = v.details();
        block_on(v.map(0, v.virtual_size()))
    }

    #[test]
    fn maps_bitmap_sectors() {
        let map = open_bytes(image()).unwrap();
        let kinds: Vec<(u64, u64, bool)> = map
            .iter()
            .map(|e| (e.start, e.len, matches!(e.mapping, Mapping::Data { .. })))
            .collect();
        assert_eq!(
            kinds,
            [(0, 4096, false), (4096, 2048, true), (6144, 10240, false)]
        );
        assert_eq!(
            map[1].mapping,
            Mapping::Data {
                file: FileId(0),
                offset: 2560
            }
        );
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let good = image();
        for i in 0..good.len().min(3072) {
            for v in [0x00, 0xff, 0x80] {
                let mut d = good.clone();
                d[i] = v;
                let _ = open_bytes(d);
            }
        }
        for cut in [0, 100, 511, 512, 1000, 2048, 4000] {
            let _ = open_bytes(good[..cut].to_vec());
        }
    }
}
