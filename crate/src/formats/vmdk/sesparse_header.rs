//! The seSparse (space-efficient sparse, ESXi 6.5+) constant header, little-endian, as laid out
//! by qemu `block/vmdk.c` (`VMDKSESparseConstHeader`, "vmdk: Add read-only support for seSparse
//! snapshots") and dissect.hypervisor `vmdk/c_vmdk.py`: VMware publishes no seSparse
//! specification. Detection reads it through [`SeSparseHeader::parse`] and names the file; the
//! driver (`sparse.rs`) opens the extent.

use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use core::mem::size_of;
use zerocopy::byteorder::little_endian::U64;

/// The constant header magic, the first 8 bytes (`be ba fe ca 00 00 00 00`).
pub(crate) const SESPARSE_CONST_MAGIC: u64 = 0xcafe_babe;
/// The one version qemu and VMware tooling write: 2.1 (`0x0000000200000001`).
pub(crate) const SESPARSE_KNOWN_VERSION: u64 = 0x0000_0002_0000_0001;
/// The grain (8 sectors, 4 KiB) and grain table (64 sectors) sizes qemu accepts.
pub(crate) const SESPARSE_GRAIN_SECTORS: u64 = 8;
pub(crate) const SESPARSE_GT_SECTORS: u64 = 64;

on_disk! {
    /// Sector 0 of a seSparse extent. Sizes and offsets are in sectors.
    #[derive(Clone, Copy)]
    pub(crate) struct SeSparseHeader: 512 {
        0 magic: U64,
        8 version: U64,
        16 capacity: U64,
        24 grain_size: U64,
        32 grain_table_size: U64,
        40 flags: U64,
        48 reserved: [U64; 4] as each U64,
        80 volatile_header_offset: U64,
        88 volatile_header_size: U64,
        96 journal_header_offset: U64,
        104 journal_header_size: U64,
        112 journal_offset: U64,
        120 journal_size: U64,
        128 grain_dir_offset: U64,
        136 grain_dir_size: U64,
        144 grain_tables_offset: U64,
        152 grain_tables_size: U64,
        160 free_bitmap_offset: U64,
        168 free_bitmap_size: U64,
        176 backmap_offset: U64,
        184 backmap_size: U64,
        192 grains_offset: U64,
        200 grains_size: U64,
        208 pad: [u8; 304],
    }
}

/// What keeps a seSparse header from being read (the driver refuses each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SeSparseProblem {
    Cut,
    Version(u64),
    Sizes { grain: u64, table: u64 },
    ReservedSet,
}

impl SeSparseProblem {
    pub(crate) fn message(&self) -> String {
        match self {
            SeSparseProblem::Cut => "the seSparse header is cut off by the end of the file".into(),
            SeSparseProblem::Version(v) => {
                format!("seSparse version {v:#x} (only {SESPARSE_KNOWN_VERSION:#x} is known)")
            }
            SeSparseProblem::Sizes { grain, table } => format!(
                "seSparse grain size {grain} / grain table size {table} sectors ({SESPARSE_GRAIN_SECTORS} / {SESPARSE_GT_SECTORS} are known)"
            ),
            SeSparseProblem::ReservedSet => {
                "seSparse header with unknown flags or reserved fields set".into()
            }
        }
    }
}

impl SeSparseHeader {
    /// True when `b` starts with the constant header magic.
    pub(crate) fn has_magic(b: &[u8]) -> bool {
        b.len() >= 8 && b[..8] == SESPARSE_CONST_MAGIC.to_le_bytes()
    }

    /// The header at the start of `b` (a cut header's missing fields read as zeros), with what
    /// keeps it from being read.
    pub(crate) fn parse(b: &[u8]) -> (SeSparseHeader, Vec<SeSparseProblem>) {
        let h: SeSparseHeader = whole_fields(b);
        let mut problems = vec![];
        if b.len() < size_of::<SeSparseHeader>() {
            problems.push(SeSparseProblem::Cut);
        }
        if h.version.get() != SESPARSE_KNOWN_VERSION {
            problems.push(SeSparseProblem::Version(h.version.get()));
        }
        let (grain, table) = (h.grain_size.get(), h.grain_table_size.get());
        if grain != SESPARSE_GRAIN_SECTORS || table != SESPARSE_GT_SECTORS {
            problems.push(SeSparseProblem::Sizes { grain, table });
        }
        let reserved = h.reserved.iter().any(|r| r.get() != 0) || h.pad.iter().any(|&b| b != 0);
        if h.flags.get() != 0 || reserved {
            problems.push(SeSparseProblem::ReservedSet);
        }
        (h, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        let mut put = |at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(0, SESPARSE_CONST_MAGIC);
        put(8, SESPARSE_KNOWN_VERSION);
        put(16, 2048);
        put(24, 8);
        put(32, 64);
        b
    }

    #[test]
    fn a_known_header_has_no_problems() {
        let b = header();
        assert!(SeSparseHeader::has_magic(&b));
        let (h, problems) = SeSparseHeader::parse(&b);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(h.capacity.get(), 2048);
    }

    #[test]
    fn unknown_fields_and_cuts_are_problems() {
        let mut b = header();
        b[8] = 2;
        b[40] = 1;
        let (_, problems) = SeSparseHeader::parse(&b);
        assert!(matches!(problems[0], SeSparseProblem::Version(_)));
        assert!(problems.contains(&SeSparseProblem::ReservedSet));
        let (h, problems) = SeSparseHeader::parse(&header()[..20]);
        assert_eq!(h.capacity.get(), 0, "a cut field reads as zero");
        assert_eq!(problems[0], SeSparseProblem::Cut);
        assert!(!SeSparseHeader::has_magic(&[0xbe, 0xba, 0xfe]));
    }
}
