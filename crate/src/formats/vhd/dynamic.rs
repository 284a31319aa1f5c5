//! The dynamic disk header (spec "Dynamic Disk Header Format") and the block allocation
//! table it points at.

use super::SECTOR;
use super::footer::{FOOTER_LEN, checksum};
use crate::error::{Error, Result};
use crate::finding_code::FindingCode;
use crate::formats::common::bytes::{be32, be64, utf16};
use crate::report::{Finding, Severity};
use crate::source::{Source, check_range, read_vec};

pub(super) const DYN_HEADER_LEN: u64 = 1024;
pub(super) const UNALLOCATED: u32 = 0xffff_ffff;
/// Block sizes vmdisk accepts (the spec's default is 2 MiB; Hyper-V writes 512 KiB to 2 MiB).
pub(super) const MAX_BLOCK: u32 = 1 << 30;
/// The BAT entries vmdisk keeps in memory at most (16 MiB of table).
pub(super) const MAX_BAT_ENTRIES: u64 = 4 << 20;

/// The dynamic disk header (spec "Dynamic Disk Header Format").
pub(super) struct DynHeader {
    pub(super) table_offset: u64,
    pub(super) max_entries: u32,
    pub(super) block_size: u32,
    pub(super) parent_uuid: [u8; 16],
    pub(super) parent_timestamp: u32,
    pub(super) parent_name: Option<String>,
    /// (platform code, data offset, data length)
    pub(super) locators: Vec<([u8; 4], u64, u32)>,
}

impl DynHeader {
    pub(super) fn parse(b: &[u8], at: u64) -> Result<DynHeader> {
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

pub(super) struct Dynamic {
    pub(super) header: DynHeader,
    /// Bytes of sector bitmap in front of each block's data.
    pub(super) bitmap_len: u64,
    /// The BAT entries covering the virtual size.
    pub(super) bat: Vec<u32>,
}

/// Validate the dynamic header's geometry and read the BAT entries covering `size`.
pub(super) async fn read_bat(
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
            findings.push(Finding::new(
                FindingCode::Truncated,
                Severity::Critical,
                msg.clone(),
            ));
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
