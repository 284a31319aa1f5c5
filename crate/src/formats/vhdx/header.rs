//! The VHDX file identifier and the two headers ([MS-VHDX] 2.1, 2.2.2). [`VhdxHeader::parse`]
//! is the one parser the driver and detection share.

use super::checksum::crc_ok;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{slice, utf16, whole_fields};
use crate::formats::common::layout::on_disk;
use crate::source::{Source, read_exact};
use zerocopy::FromBytes;
use zerocopy::byteorder::little_endian::{U16, U32, U64};

/// Where the two headers lie ([MS-VHDX] 2.2).
pub(crate) const HEADERS: [u64; 2] = [64 << 10, 128 << 10];
/// Bytes a header's CRC covers.
pub(crate) const HEADER_LEN: usize = 4096;

on_disk! {
    /// The file identifier at offset 0 (its first 520 bytes; the rest of the 64 KiB is reserved).
    #[derive(Clone, Copy)]
    pub(crate) struct VhdxFileIdentifier: 520 {
        0 signature: [u8; 8],
        /// UTF-16 little-endian: the application that created the file.
        8 creator: [u8; 512],
    }
}

impl VhdxFileIdentifier {
    /// The identifier at the start of `b`; None without the `vhdxfile` signature.
    pub(crate) fn parse(b: &[u8]) -> Option<VhdxFileIdentifier> {
        let id: VhdxFileIdentifier = whole_fields(b);
        (&id.signature == b"vhdxfile").then_some(id)
    }

    /// The creator text of the identifier `b` (a cut one: what is there).
    pub(crate) fn creator(b: &[u8]) -> Option<String> {
        utf16(slice(b, 8, 512), false)
    }
}

on_disk! {
    /// A VHDX header as stored ([MS-VHDX] 2.2.2, little-endian).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct VhdxHeader: HEADER_LEN {
        0 signature: [u8; 4],
        4 checksum: U32,
        8 sequence_number: U64,
        16 file_write_guid: [u8; 16],
        32 data_write_guid: [u8; 16],
        48 log_guid: [u8; 16],
        64 log_version: U16,
        66 version: U16,
        68 log_length: U32,
        72 log_offset: U64,
        80 reserved: [u8; 4016],
    }
}

impl VhdxHeader {
    /// The header in `b` (4 KiB) when its signature and CRC-32C are valid; a slot that fails
    /// either is not used, by the driver or by detection.
    pub(crate) fn parse(b: &[u8]) -> Option<VhdxHeader> {
        let h = VhdxHeader::read_from_prefix(b).ok()?.0;
        (&h.signature == b"head" && crc_ok(&b[..HEADER_LEN])).then_some(h)
    }

    /// Whether the log holds entries still to be replayed (a non-zero log GUID).
    pub(crate) fn log_pending(&self) -> bool {
        self.log_guid != [0; 16]
    }
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

/// The two headers of `src`: the current one, and which slots were valid.
pub(crate) async fn read_headers(src: &dyn Source) -> Result<(Header, [bool; 2])> {
    let mut id = [0u8; 8];
    read_exact(src, 0, &mut id, "VHDX file identifier").await?;
    if VhdxFileIdentifier::parse(&id).is_none() {
        return Err(Error::not_an_image(format!(
            "{} has no VHDX file identifier",
            src.name()
        )));
    }
    let mut valid = [false; 2];
    let mut current: Option<Header> = None;
    for (i, at) in HEADERS.into_iter().enumerate() {
        let mut b = vec![0u8; HEADER_LEN];
        read_exact(src, at, &mut b, "VHDX header").await?;
        let Some(raw) = VhdxHeader::parse(&b) else {
            continue;
        };
        valid[i] = true;
        let h = Header {
            seq: raw.sequence_number.get(),
            file_write: raw.file_write_guid,
            data_write: raw.data_write_guid,
            log_guid: raw.log_guid,
            log_version: raw.log_version.get(),
            version: raw.version.get(),
            log_length: raw.log_length.get(),
            log_offset: raw.log_offset.get(),
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
