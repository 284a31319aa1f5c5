//! The dynamic disk header (spec "Dynamic Disk Header Format") and the block allocation
//! table it points at. [`VhdDynamicHeader::parse`] is shared with detection.

use super::SECTOR;
use super::footer::checksum;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{be32, utf16};
use crate::formats::common::layout::on_disk;
use crate::source::{Source, read_vec};
use core::mem::{offset_of, size_of};
use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{FromZeros, IntoBytes};

pub(super) const DYN_HEADER_LEN: u64 = 1024;
pub(super) const UNALLOCATED: u32 = 0xffff_ffff;
/// Block sizes vmdisk accepts (the spec's default is 2 MiB; Hyper-V writes 512 KiB to 2 MiB).
pub(super) const MAX_BLOCK: u32 = 1 << 30;
/// The BAT entries vmdisk keeps in memory at most (16 MiB of table).
pub(super) const MAX_BAT_ENTRIES: u64 = 4 << 20;

on_disk! {
    /// The dynamic disk header as stored (big-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct VhdDynamicHeader: DYN_HEADER_LEN {
        0 cookie: [u8; 8],
        8 data_offset: U64,
        16 table_offset: U64,
        24 header_version: U32,
        28 max_table_entries: U32,
        32 block_size: U32,
        36 checksum: U32,
        40 parent_uuid: [u8; 16],
        56 parent_timestamp: U32,
        60 reserved: U32,
        /// UTF-16 big-endian.
        64 parent_name: [u8; 512],
        576 parent_locators: [VhdParentLocator; 8],
        768 reserved2: [u8; 256],
    }

    /// A parent locator entry of the dynamic header.
    #[derive(Clone, Copy)]
    pub(crate) struct VhdParentLocator: 24 {
        0 platform_code: [u8; 4],
        4 data_space: U32,
        8 data_length: U32,
        12 reserved: U32,
        16 data_offset: U64,
    }
}

/// What is wrong with a dynamic header, in the order the driver checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DynHeaderProblem {
    /// No `cxsparse` cookie at this file offset.
    NoCookie {
        at: u64,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
}

impl DynHeaderProblem {
    pub(crate) fn message(self) -> String {
        match self {
            DynHeaderProblem::NoCookie { at } => {
                format!("no VHD dynamic disk header (cxsparse) at offset {at}")
            }
            DynHeaderProblem::Checksum { stored, computed } => format!(
                "the VHD dynamic disk header checksum is {stored:#010x} but its contents sum to {computed:#010x}"
            ),
        }
    }
}

impl VhdDynamicHeader {
    /// The header in `b` (read from file offset `at`); missing bytes read as zeros.
    pub(crate) fn parse(b: &[u8], at: u64) -> (VhdDynamicHeader, Vec<DynHeaderProblem>) {
        let mut h = VhdDynamicHeader::new_zeroed();
        let n = b.len().min(size_of::<VhdDynamicHeader>());
        h.as_mut_bytes()[..n].copy_from_slice(&b[..n]);
        let mut problems = vec![];
        if &h.cookie != b"cxsparse" {
            problems.push(DynHeaderProblem::NoCookie { at });
        }
        let computed = checksum(h.as_bytes(), offset_of!(VhdDynamicHeader, checksum));
        if computed != h.checksum.get() {
            let stored = h.checksum.get();
            problems.push(DynHeaderProblem::Checksum { stored, computed });
        }
        (h, problems)
    }

    /// The parent's Unicode name; None when empty.
    pub(crate) fn parent_name(&self) -> Option<String> {
        utf16(&self.parent_name, true)
    }

    /// The locator entries in use (a non-zero platform code).
    pub(crate) fn locators(&self) -> impl Iterator<Item = &VhdParentLocator> {
        self.parent_locators
            .iter()
            .filter(|l| l.platform_code != [0; 4])
    }
}

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
        let (h, problems) = VhdDynamicHeader::parse(b, at);
        if let Some(p) = problems.first() {
            return Err(Error::corrupt(p.message()));
        }
        Ok(DynHeader {
            table_offset: h.table_offset.get(),
            max_entries: h.max_table_entries.get(),
            block_size: h.block_size.get(),
            parent_uuid: h.parent_uuid,
            parent_timestamp: h.parent_timestamp.get(),
            parent_name: h.parent_name(),
            locators: h
                .locators()
                .map(|l| (l.platform_code, l.data_offset.get(), l.data_length.get()))
                .collect(),
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
pub(super) async fn read_bat(src: &dyn Source, header: DynHeader, size: u64) -> Result<Dynamic> {
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
    // Blocks past the end of the file, or over each other or the metadata, are found by the
    // integrity walk (`intact::walk`), which counts them.
    let bitmap_len = (bs / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
    Ok(Dynamic {
        header,
        bitmap_len,
        bat,
    })
}
