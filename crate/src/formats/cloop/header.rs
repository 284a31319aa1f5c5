//! The cloop (compressed loop) header, version 2.0 as qemu `block/cloop.c` reads it; all
//! numbers big-endian. [`parse`] is the one parser the driver and detection share.
//!
//! ```text
//!   0 preamble[128]  a shell script: "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && ..."
//! 128 block_size u32 (uncompressed bytes a block, a multiple of 512)
//! 132 n_blocks u32
//! 136 offsets u64[n_blocks + 1]: block i is the zlib stream [offsets[i], offsets[i + 1])
//! ```

use crate::error::Error;
use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use zerocopy::byteorder::big_endian::U32;

pub(crate) const HEADER_LEN: u64 = 136;
/// The preamble qemu's probe matches (cloop's `create_compressed_fs` writes it).
pub(crate) const MAGIC_V2: &[u8] =
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";
/// Every cloop version starts its preamble so; other versions are named but not read.
pub(crate) const SCRIPT_START: &[u8] = b"#!/bin/sh\n#V";
/// qemu's bounds: blocks of at most 64 MiB, compressed blocks of at most twice that, an
/// offsets table of at most 512 MiB.
pub(crate) const MAX_BLOCK: u32 = 64 << 20;
pub(crate) const MAX_COMPRESSED: u64 = 2 * MAX_BLOCK as u64;
pub(crate) const MAX_TABLE: u64 = 512 << 20;

on_disk! {
    /// The header as stored; the preamble is text, read byte by byte (a cut one still names
    /// its version).
    #[derive(Clone, Copy)]
    pub(crate) struct CloopHeader: HEADER_LEN {
        0 preamble: [u8; 128] as each u8,
        128 block_size: U32,
        132 n_blocks: U32,
    }
}

/// A problem with the header, as the error the driver refuses the image with: `truncated`,
/// `corrupt`, or `unsupported` for another layout version or a size past qemu's bounds
/// (`cloop_open`: "must be 64 MB or less", "too many offsets"), which qemu refuses too.
pub(crate) type Problem = Error;

#[derive(Clone, Debug)]
pub(crate) struct Cloop {
    /// The version named in the preamble ("2.0").
    pub(crate) version: String,
    pub(crate) block_size: u32,
    pub(crate) n_blocks: u32,
}

impl Cloop {
    pub(crate) fn virtual_size(&self) -> u64 {
        u64::from(self.n_blocks) * u64::from(self.block_size)
    }
    /// Bytes of the offsets table (`n_blocks + 1` entries).
    pub(crate) fn table_len(&self) -> u64 {
        (u64::from(self.n_blocks) + 1) * 8
    }
}

/// Parse the header at the start of `b` (missing bytes read as zeros) of a file of `len` bytes;
/// None unless it starts with a cloop preamble. Problems make the image unreadable.
pub(crate) fn parse(b: &[u8], len: u64) -> Option<(Cloop, Vec<Problem>)> {
    if !b.starts_with(SCRIPT_START) || !contains(b, b"cloop") {
        return None;
    }
    let h: CloopHeader = whole_fields(b);
    let rest = &h.preamble[SCRIPT_START.len()..];
    let version: String = rest
        .iter()
        .take_while(|&&c| c.is_ascii_digit() || c == b'.')
        .map(|&c| c as char)
        .collect();
    let header = Cloop {
        version,
        block_size: h.block_size.get(),
        n_blocks: h.n_blocks.get(),
    };
    let mut problems = vec![];
    if !b.starts_with(MAGIC_V2) {
        problems.push(Error::unsupported(format!(
            "cloop version {:?} is not read: only the V2.0 layout is (as in qemu)",
            header.version
        )));
    } else if len < HEADER_LEN {
        problems.push(Error::truncated(
            "the cloop header is cut off by the end of the file",
        ));
    } else if header.block_size == 0 || !header.block_size.is_multiple_of(512) {
        problems.push(Error::corrupt(format!(
            "cloop block size {} is not a non-zero multiple of 512",
            header.block_size
        )));
    } else if header.block_size > MAX_BLOCK {
        problems.push(Error::unsupported(format!(
            "cloop block size {} is over 64 MiB",
            header.block_size
        )));
    } else if header.table_len() > MAX_TABLE {
        problems.push(Error::unsupported(format!(
            "cloop image of {} blocks has too many offsets",
            header.n_blocks
        )));
    } else if HEADER_LEN + header.table_len() > len {
        problems.push(Error::truncated(
            "the cloop offsets table runs past the end of the file",
        ));
    }
    Some((header, problems))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay[..hay.len().min(128)]
        .windows(needle.len())
        .any(|w| w == needle)
}
