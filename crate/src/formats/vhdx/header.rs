//! The VHDX file identifier and the two headers ([MS-VHDX] 2.1, 2.2.2).

use super::checksum::crc_ok;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{arr, has, le16, le32, le64};
use crate::source::{Source, read_exact};

const HEADERS: [u64; 2] = [64 << 10, 128 << 10];

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
            file_write: arr(&b, 16),
            data_write: arr(&b, 32),
            log_guid: arr(&b, 48),
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
