//! The one CRC-32C of the format (Castagnoli, [MS-VHDX] 2.2.2): headers, region tables and
//! log entries carry it over themselves with the checksum field (bytes 4..8) as zero.

use crate::formats::common::bytes::{le32, slice};

/// CRC-32C of `buf` with its checksum field (bytes 4..8) counted as zero.
pub(super) fn crc_zeroed(buf: &[u8]) -> u32 {
    let c = crc_append(0, slice(buf, 0, 4));
    let c = crc_append(c, &[0; 4]);
    crc_append(c, slice(buf, 8, buf.len()))
}

pub(super) fn crc_ok(buf: &[u8]) -> bool {
    buf.len() >= 8 && crc_zeroed(buf) == le32(buf, 4)
}

/// `crc` continued over `more` bytes.
pub(super) fn crc_append(crc: u32, more: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, more)
}
