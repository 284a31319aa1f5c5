//! The sparse extent headers, little-endian: hosted sparse (`KDMV`, VMware "Virtual Disk Format
//! 5.0", `SparseExtentHeader`) and ESX sparse (`COWD`, qemu `block/vmdk.c` `VMDK3Header`). The
//! driver and detection both read them through [`HostedHeader::parse`] and
//! [`CowdHeader::parse`], and each judges the fields.

use crate::formats::common::bytes::whole_fields;
use core::mem::{offset_of, size_of};
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The bytes of a hosted sparse header that carry fields (the rest of its sector is padding).
pub(crate) const HOSTED_FIELDS_LEN: usize = 79;
/// The newline check characters of `single_end_line_char..` when no text-mode transfer altered
/// them.
pub(crate) const NEWLINE_CHECK: &[u8; 4] = b"\n \r\n";

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct HostedHeader {
    pub(crate) magic: [u8; 4],
    pub(crate) version: U32,
    pub(crate) flags: U32,
    /// In sectors, like every size and offset here.
    pub(crate) capacity: U64,
    pub(crate) grain_size: U64,
    pub(crate) descriptor_offset: U64,
    pub(crate) descriptor_size: U64,
    pub(crate) num_gtes_per_gt: U32,
    pub(crate) rgd_offset: U64,
    pub(crate) gd_offset: U64,
    pub(crate) overhead: U64,
    pub(crate) unclean_shutdown: u8,
    /// `single_end_line_char`, `non_end_line_char`, `double_end_line_chars`.
    pub(crate) newline_check: [u8; 4],
    pub(crate) compress_algorithm: U16,
    pub(crate) pad: [u8; 433],
}

const _: () = assert!(offset_of!(HostedHeader, magic) == 0);
const _: () = assert!(offset_of!(HostedHeader, version) == 4);
const _: () = assert!(offset_of!(HostedHeader, flags) == 8);
const _: () = assert!(offset_of!(HostedHeader, capacity) == 12);
const _: () = assert!(offset_of!(HostedHeader, grain_size) == 20);
const _: () = assert!(offset_of!(HostedHeader, descriptor_offset) == 28);
const _: () = assert!(offset_of!(HostedHeader, descriptor_size) == 36);
const _: () = assert!(offset_of!(HostedHeader, num_gtes_per_gt) == 44);
const _: () = assert!(offset_of!(HostedHeader, rgd_offset) == 48);
const _: () = assert!(offset_of!(HostedHeader, gd_offset) == 56);
const _: () = assert!(offset_of!(HostedHeader, overhead) == 64);
const _: () = assert!(offset_of!(HostedHeader, unclean_shutdown) == 72);
const _: () = assert!(offset_of!(HostedHeader, newline_check) == 73);
const _: () = assert!(offset_of!(HostedHeader, compress_algorithm) == 77);
const _: () = assert!(offset_of!(HostedHeader, pad) == HOSTED_FIELDS_LEN);
const _: () = assert!(size_of::<HostedHeader>() == 512);

/// Where each field of [`HostedHeader`] ends.
const HOSTED_FIELD_ENDS: [usize; 14] = [4, 8, 12, 20, 28, 36, 44, 48, 56, 64, 72, 73, 77, 79];

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct CowdHeader {
    pub(crate) magic: [u8; 4],
    pub(crate) version: U32,
    pub(crate) flags: U32,
    /// In sectors.
    pub(crate) disk_sectors: U32,
    pub(crate) granularity: U32,
    pub(crate) gd_offset: U32,
    pub(crate) gd_entries: U32,
    pub(crate) free_sector: U32,
}

const _: () = assert!(offset_of!(CowdHeader, magic) == 0);
const _: () = assert!(offset_of!(CowdHeader, version) == 4);
const _: () = assert!(offset_of!(CowdHeader, flags) == 8);
const _: () = assert!(offset_of!(CowdHeader, disk_sectors) == 12);
const _: () = assert!(offset_of!(CowdHeader, granularity) == 16);
const _: () = assert!(offset_of!(CowdHeader, gd_offset) == 20);
const _: () = assert!(offset_of!(CowdHeader, gd_entries) == 24);
const _: () = assert!(offset_of!(CowdHeader, free_sector) == 28);
const _: () = assert!(size_of::<CowdHeader>() == 32);

impl HostedHeader {
    /// The header at the start of `b` (a cut header's missing fields read as zeros).
    pub(crate) fn parse(b: &[u8]) -> HostedHeader {
        whole_fields(b, &HOSTED_FIELD_ENDS)
    }
}

impl CowdHeader {
    /// The header at the start of `b` (a cut header's missing fields read as zeros).
    pub(crate) fn parse(b: &[u8]) -> CowdHeader {
        whole_fields(b, &[4, 8, 12, 16, 20, 24, 28, 32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::common::bytes::{le32, le64};

    /// A cut header reads as the zero-filling accessors read it: whole fields only.
    #[test]
    fn cut_headers_read_whole_fields() {
        let mut b = [0u8; 512];
        b[0..4].copy_from_slice(b"KDMV");
        b[4..8].copy_from_slice(&3u32.to_le_bytes());
        b[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        b[20..28].copy_from_slice(&128u64.to_le_bytes());
        for cut in 0..=b.len() {
            let h = HostedHeader::parse(&b[..cut]);
            assert_eq!(h.version.get(), le32(&b[..cut], 4));
            assert_eq!(h.capacity.get(), le64(&b[..cut], 12));
            assert_eq!(h.grain_size.get(), le64(&b[..cut], 20));
            let c = CowdHeader::parse(&b[..cut]);
            assert_eq!(c.disk_sectors.get(), le32(&b[..cut], 12));
        }
    }
}
