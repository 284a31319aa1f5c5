//! The sparse extent headers, little-endian: hosted sparse (`KDMV`, VMware "Virtual Disk Format
//! 5.0", `SparseExtentHeader`) and ESX sparse (`COWD`, qemu `block/vmdk.c` `VMDK3Header`). The
//! driver and detection both read them through [`HostedHeader::parse`] and
//! [`CowdHeader::parse`], and each judges the fields.

use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use core::mem::offset_of;
use zerocopy::byteorder::little_endian::{U16, U32, U64};

/// The bytes of a hosted sparse header that carry fields (the rest of its sector is padding).
pub(crate) const HOSTED_FIELDS_LEN: usize = offset_of!(HostedHeader, pad);
/// Hosted sparse header flags shared by the driver and `vmdisk check`: grains compressed,
/// and (streamOptimized) every grain and table behind a marker.
pub(crate) const FLAG_COMPRESSED: u32 = 1 << 16;
pub(crate) const FLAG_MARKERS: u32 = 1 << 17;
/// `gd_offset` of a stream written in one pass: the real header is the footer.
pub(crate) const GD_AT_END: u64 = u64::MAX;
/// Stream marker types (the 4 bytes after a marker's LBA and zero size).
pub(crate) const MARKER_EOS: u32 = 0;
pub(crate) const MARKER_GT: u32 = 1;
pub(crate) const MARKER_GD: u32 = 2;
pub(crate) const MARKER_FOOTER: u32 = 3;
/// The newline check characters of `single_end_line_char..` when no text-mode transfer altered
/// them.
pub(crate) const NEWLINE_CHECK: &[u8; 4] = b"\n \r\n";

on_disk! {
    #[derive(Clone, Copy)]
    pub(crate) struct HostedHeader: 512 {
        0 magic: [u8; 4],
        4 version: U32,
        8 flags: U32,
        /// In sectors, like every size and offset here.
        12 capacity: U64,
        20 grain_size: U64,
        28 descriptor_offset: U64,
        36 descriptor_size: U64,
        44 num_gtes_per_gt: U32,
        48 rgd_offset: U64,
        56 gd_offset: U64,
        64 overhead: U64,
        72 unclean_shutdown: u8,
        /// `single_end_line_char`, `non_end_line_char`, `double_end_line_chars`.
        73 newline_check: [u8; 4],
        77 compress_algorithm: U16,
        79 pad: [u8; 433],
    }

    #[derive(Clone, Copy)]
    pub(crate) struct CowdHeader: 32 {
        0 magic: [u8; 4],
        4 version: U32,
        8 flags: U32,
        /// In sectors.
        12 disk_sectors: U32,
        16 granularity: U32,
        20 gd_offset: U32,
        24 gd_entries: U32,
        28 free_sector: U32,
    }
}

impl HostedHeader {
    /// The header at the start of `b` (a cut header's missing fields read as zeros).
    pub(crate) fn parse(b: &[u8]) -> HostedHeader {
        whole_fields(b)
    }
}

impl CowdHeader {
    /// The header at the start of `b` (a cut header's missing fields read as zeros).
    pub(crate) fn parse(b: &[u8]) -> CowdHeader {
        whole_fields(b)
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
