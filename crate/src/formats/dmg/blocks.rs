//! The DMG block tables: `mish` blocks found in the XML property list (base64 `<data>`
//! elements) or, in old images, in the resource fork; each lists chunks of the disk.
//! Like qemu, every `<data>` / resource that does not start with `mish` is skipped, so the
//! `plst` and other resources need no special case.

use super::header::{CHUNK_LEN, COMMENT, ChunkEntry, LAST, MAX_CHUNK_BYTES, MISH_LEN, Mish};
use crate::error::{Error, Result};
use crate::formats::common::bytes::be32;
use zerocopy::FromBytes;

/// At most this many chunks (a 16 MiB property list holds fewer than 400 000).
pub(crate) const MAX_CHUNKS: usize = 1 << 22;

/// One chunk of the disk: `count` sectors from guest sector `sector`, stored as `kind` in
/// `[offset, offset + length)` of the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk {
    pub(crate) kind: u32,
    pub(crate) sector: u64,
    pub(crate) count: u64,
    pub(crate) offset: u64,
    pub(crate) length: u64,
}

/// The `<data>` elements of the property list, base64-decoded (whitespace inside is skipped).
pub(crate) fn plist_data(xml: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = vec![];
    let mut rest = xml;
    while let Some(start) = find(rest, b"<data>") {
        rest = &rest[start + 6..];
        let end = find(rest, b"</data>").ok_or_else(|| {
            Error::corrupt("the DMG property list has a <data> element without its end")
        })?;
        out.push(base64(&rest[..end])?);
        rest = &rest[end + 7..];
    }
    Ok(out)
}

/// The resources of an old-style resource fork (`fork` is its bytes): qemu's reading of it, a
/// header whose first word is the offset of the resource data and third its length, then
/// resources each prefixed by its length.
pub(crate) fn rsrc_resources(fork: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = || Error::corrupt("the DMG resource fork is damaged");
    let (data, count) = (be32(fork, 0) as usize, be32(fork, 8) as usize);
    if fork.len() < 12 || data > fork.len() || count == 0 || count > fork.len() - data {
        return Err(bad());
    }
    let (mut pos, end) = (data, data + count);
    let mut out = vec![];
    while pos < end {
        let n = be32(fork, pos) as usize;
        pos += 4;
        if n == 0 || pos > end || n > end - pos {
            return Err(bad());
        }
        out.push(fork[pos..pos + n].to_vec());
        pos += n;
    }
    Ok(out)
}

/// The chunks of one block (a `mish` table), placed on the disk and in the file: chunk sectors
/// count from the table's first sector, chunk offsets from the table's data offset in the data
/// fork. Comment and last-entry chunks are dropped; other types are kept (the driver refuses
/// the ones it cannot read). Blocks without the `mish` magic are no block table (None).
pub(crate) fn mish_chunks(block: &[u8], data_fork: u64, into: &mut Vec<Chunk>) -> Result<()> {
    let Ok((m, _)) = Mish::read_from_prefix(block) else {
        return Ok(());
    };
    if &m.magic != super::header::MISH_MAGIC || block.len() < MISH_LEN + CHUNK_LEN {
        return Ok(());
    }
    // qemu takes as many chunks as the block holds, whatever the stated count.
    let entries = (block.len() - MISH_LEN) / CHUNK_LEN;
    let overflow = || Error::corrupt("a DMG chunk lies out of range");
    for i in 0..entries {
        let at = MISH_LEN + i * CHUNK_LEN;
        let c = ChunkEntry::read_from_bytes(&block[at..at + CHUNK_LEN]).expect("40 bytes");
        let kind = c.kind.get();
        if kind == COMMENT || kind == LAST {
            continue;
        }
        if into.len() >= MAX_CHUNKS {
            return Err(Error::corrupt(format!(
                "the DMG has more than {MAX_CHUNKS} chunks"
            )));
        }
        let chunk = Chunk {
            kind,
            sector: c
                .sector
                .get()
                .checked_add(m.first_sector.get())
                .ok_or_else(overflow)?,
            count: c.sector_count.get(),
            offset: c
                .offset
                .get()
                .checked_add(m.data_offset.get())
                .and_then(|o| o.checked_add(data_fork))
                .ok_or_else(overflow)?,
            length: c.length.get(),
        };
        if chunk.length > MAX_CHUNK_BYTES {
            return Err(Error::corrupt(format!(
                "DMG chunk at sector {} is stored in {} bytes (at most 64 MiB)",
                chunk.sector, chunk.length
            )));
        }
        into.push(chunk);
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Standard base64 (RFC 4648 section 4), whitespace ignored, `=` padding optional.
fn base64(text: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => {
                return Err(Error::corrupt(
                    "the DMG property list holds bad base64 data",
                ));
            }
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_whitespace_and_padding() {
        assert_eq!(super::base64(b"bWlz\n\taA==").unwrap(), b"mish");
        assert_eq!(super::base64(b"TWFu").unwrap(), b"Man");
        assert!(super::base64(b"a*b").is_err());
    }
}
