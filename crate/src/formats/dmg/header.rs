//! Apple disk image (UDIF) structures, all big-endian: the 512-byte `koly` trailer at the end of
//! the file, and the `mish` block tables (BLKX) it points to through the XML property list.
//! Layout: Apple's UDIF as documented by Jonathan Levin ("Demystifying the DMG File Format")
//! and as qemu `block/dmg.c` reads it. [`parse_koly`] is the one trailer parser the driver and
//! detection share.
//!
//! ```text
//! koly:   0 'koly'  4 version (4)  8 header size (512)  12 flags  16 running data fork offset
//!        24 data fork offset u64  32 data fork length  40 rsrc fork offset  48 rsrc fork length
//!        56 segment number/count, id[16]  80 data checksum (type, size, 128 bytes)
//!       216 XML offset u64  224 XML length u64  232 reserved[120]  352 checksum (136 bytes)
//!       488 image variant u32  492 sector count u64  500 reserved[12]
//! mish:   0 'mish'  4 version  8 first sector u64  16 sector count  24 data offset u64
//!        32 buffers needed  36 block descriptors  40 reserved[24]  64 checksum (136 bytes)
//!       200 chunk count u32  204 chunks[40 bytes]: type u32, comment u32, sector u64,
//!           sector count u64, compressed offset u64, compressed length u64
//! ```

use crate::error::Error;
use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use zerocopy::byteorder::big_endian::{U32, U64};

pub(crate) const KOLY_LEN: u64 = 512;
pub(crate) const KOLY_MAGIC: &[u8; 4] = b"koly";
pub(crate) const MISH_MAGIC: &[u8; 4] = b"mish";
/// qemu's bounds: a chunk inflates to at most 64 MiB and is stored in at most 64 MiB; the XML
/// property list is at most 16 MiB.
pub(crate) const MAX_CHUNK_BYTES: u64 = 64 << 20;
pub(crate) const MAX_XML: u64 = 16 << 20;

pub(crate) const MISH_LEN: usize = 204;
pub(crate) const CHUNK_LEN: usize = 40;

on_disk! {
    /// UDIF's checksum record (Levin's `UDIFChecksum`): its type (2: CRC-32), its size in
    /// bits, the value. vmdisk does not check it, as qemu does not.
    #[derive(Clone, Copy)]
    pub(crate) struct UdifChecksum: 136 {
        0 kind: U32,
        4 bits: U32,
        8 value: [u8; 128],
    }

    /// The trailer as stored.
    #[derive(Clone, Copy)]
    pub(crate) struct Koly: KOLY_LEN {
        0 magic: [u8; 4],
        4 version: U32,
        8 header_size: U32,
        12 flags: U32,
        16 running_data_fork_offset: U64,
        24 data_fork_offset: U64,
        32 data_fork_length: U64,
        40 rsrc_fork_offset: U64,
        48 rsrc_fork_length: U64,
        56 segment_number: U32,
        60 segment_count: U32,
        64 segment_id: [u8; 16],
        80 data_checksum: UdifChecksum,
        216 xml_offset: U64,
        224 xml_length: U64,
        232 reserved1: [u8; 120],
        352 checksum: UdifChecksum,
        488 image_variant: U32,
        492 sector_count: U64,
        500 reserved2: [u8; 12],
    }

    /// A block table's header; its chunk entries follow it.
    #[derive(Clone, Copy)]
    pub(crate) struct Mish: MISH_LEN {
        0 magic: [u8; 4],
        4 version: U32,
        8 first_sector: U64,
        16 sector_count: U64,
        24 data_offset: U64,
        32 buffers_needed: U32,
        36 block_descriptors: U32,
        40 reserved: [u8; 24],
        64 checksum: UdifChecksum,
        200 chunk_count: U32,
    }

    /// One chunk of a block table.
    #[derive(Clone, Copy)]
    pub(crate) struct ChunkEntry: CHUNK_LEN {
        0 kind: U32,
        4 comment: U32,
        8 sector: U64,
        16 sector_count: U64,
        24 offset: U64,
        32 length: U64,
    }
}

/// Chunk types (qemu `dmg.c`; Levin's table).
pub(crate) const ZERO: u32 = 0;
pub(crate) const RAW: u32 = 1;
pub(crate) const IGNORE: u32 = 2;
pub(crate) const ADC: u32 = 0x8000_0004;
pub(crate) const ZLIB: u32 = 0x8000_0005;
pub(crate) const BZIP2: u32 = 0x8000_0006;
pub(crate) const LZFSE: u32 = 0x8000_0007;
pub(crate) const LZMA: u32 = 0x8000_0008;
pub(crate) const COMMENT: u32 = 0x7fff_fffe;
pub(crate) const LAST: u32 = 0xffff_ffff;

/// A chunk type's name, as hdiutil's format names it.
pub(crate) fn chunk_name(kind: u32) -> String {
    match kind {
        ZERO => "zero-fill".into(),
        RAW => "raw (UDRW)".into(),
        IGNORE => "ignore".into(),
        ADC => "ADC (UDCO)".into(),
        ZLIB => "zlib (UDZO)".into(),
        BZIP2 => "bzip2 (UDBZ)".into(),
        LZFSE => "LZFSE (ULFO)".into(),
        LZMA => "LZMA (ULMO)".into(),
        k => format!("unknown type {k:#010x}"),
    }
}

/// A problem with the trailer, as the error the driver refuses the image with (`truncated` or
/// `corrupt`).
pub(crate) type Problem = Error;

/// Where the `koly` trailer sits in a file of `len` bytes whose last bytes are `tail`: qemu looks
/// for the magic in the 515 bytes ending 508 bytes after the last sector boundary (its file
/// length is rounded up to 512), so odd-sized images are found too. Elsewhere in the tail (a
/// file cut inside its trailer) only a magic followed by UDIF's version 4 and size 512 counts,
/// as far as the file still holds them. Returns the offset.
pub(crate) fn find_koly(tail: &[u8], len: u64) -> Option<u64> {
    let rounded = len.div_ceil(512) * 512;
    let window_start = rounded.saturating_sub(1023);
    let window_end = (window_start + 515).min(len);
    let tail_start = len - tail.len() as u64;
    let at = |o: u64| &tail[(o - tail_start) as usize..];
    let in_window = (window_start.max(tail_start)..window_end.saturating_sub(3))
        .find(|&o| at(o).starts_with(KOLY_MAGIC));
    let udif = |o: u64| {
        let b = at(o);
        let want = [b"koly".as_slice(), &[0, 0, 0, 4, 0, 0, 2, 0]].concat();
        b.len() >= 4 && want.starts_with(&b[..b.len().min(want.len())])
    };
    in_window.or_else(|| (tail_start..len).rev().find(|&o| udif(o)))
}

/// The trailer at `at` in a file of `len` bytes (`b` holds at least its first bytes; missing
/// ones read as zeros), with qemu's range checks on the forks and the property list.
pub(crate) fn parse_koly(b: &[u8], at: u64, len: u64) -> (Koly, Vec<Problem>) {
    let k: Koly = whole_fields(b);
    let mut problems = vec![];
    if at + KOLY_LEN > len {
        problems.push(Error::truncated(
            "the DMG koly trailer is cut off by the end of the file",
        ));
    }
    if k.version.get() != 4 || k.header_size.get() != KOLY_LEN as u32 {
        problems.push(Error::corrupt(format!(
            "DMG koly trailer version {} with header size {} (UDIF has version 4, 512)",
            k.version.get(),
            k.header_size.get()
        )));
    }
    if k.data_fork_offset.get() > at {
        problems.push(Error::corrupt("the DMG data fork starts after the trailer"));
    }
    let inside = |o: u64, l: u64| o < at && l <= at - o;
    let (rsrc, xml) = (
        (k.rsrc_fork_offset.get(), k.rsrc_fork_length.get()),
        (k.xml_offset.get(), k.xml_length.get()),
    );
    // qemu requires both ranges to lie before the trailer, empty or not.
    if !inside(rsrc.0, rsrc.1) {
        problems.push(Error::corrupt(
            "the DMG resource fork lies past the trailer",
        ));
    }
    if !inside(xml.0, xml.1) {
        problems.push(Error::corrupt(
            "the DMG property list lies past the trailer",
        ));
    } else if rsrc.1 == 0 && xml.1 == 0 {
        problems.push(Error::corrupt(
            "the DMG has neither a property list nor a resource fork",
        ));
    } else if rsrc.1 == 0 && xml.1 > MAX_XML {
        problems.push(Error::corrupt(format!(
            "the DMG property list of {} bytes is too large",
            xml.1
        )));
    }
    if k.sector_count
        .get()
        .checked_mul(512)
        .is_none_or(|s| s > i64::MAX as u64)
    {
        problems.push(Error::corrupt("the DMG sector count is out of range"));
    }
    (k, problems)
}
