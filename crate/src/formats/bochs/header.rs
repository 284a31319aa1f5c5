//! The Bochs growing-image header (qemu `block/bochs.c`; Bochs `iodev/hdimage/hdimage.h`,
//! "redolog"), little-endian. [`parse`] is the one parser the driver and detection share.
//!
//! ```text
//!  0 magic[32] "Bochs Virtual HD Image"   32 type[16] "Redolog"   48 subtype[16] "Growing"
//! 64 version u32 (0x00020000, or 0x00010000)   68 header u32 (header size: the catalog's offset)
//! 72 catalog u32 (entries)   76 bitmap u32 (bytes)   80 extent u32 (bytes)
//! 84 v2: reserved u32, 88 disk u64        v1: 84 disk u64
//! ```

use crate::error::Error;
use crate::formats::common::bytes::{c_string, whole_fields};
use crate::formats::common::layout::on_disk;
use core::mem::size_of;
use zerocopy::byteorder::little_endian::{U32, U64};

/// The header block qemu reads (the fields end at 96; the rest is padding).
pub(crate) const HEADER_LEN: u64 = 512;
pub(crate) const MAGIC: &[u8] = b"Bochs Virtual HD Image";
pub(crate) const TYPE_REDOLOG: &[u8] = b"Redolog";
pub(crate) const SUBTYPE_GROWING: &[u8] = b"Growing";
pub(crate) const VERSION_2: u32 = 0x0002_0000;
pub(crate) const VERSION_1: u32 = 0x0001_0000;
/// A catalog entry of an extent that was never written.
pub(crate) const UNALLOCATED: u32 = 0xffff_ffff;
/// qemu's bounds: 1M catalog entries (bximage's largest image), extents of 512 B to 8 MiB.
pub(crate) const MAX_CATALOG: u32 = 0x10_0000;
pub(crate) const MAX_EXTENT: u32 = 0x80_0000;
/// A bitmap larger than this is not one Bochs wrote (an 8 MiB extent needs 2 KiB).
pub(crate) const MAX_BITMAP: u32 = 1 << 20;

on_disk! {
    /// The version 2 header (the fields shared with version 1 sit at the same offsets). The
    /// text fields are read byte by byte: a cut one still names what it holds.
    #[derive(Clone, Copy)]
    pub(crate) struct BochsHeader: 96 {
        0 magic: [u8; 32] as each u8,
        32 kind: [u8; 16] as each u8,
        48 subtype: [u8; 16] as each u8,
        64 version: U32,
        68 header: U32,
        72 catalog: U32,
        76 bitmap: U32,
        80 extent: U32,
        84 reserved: U32,
        88 disk: U64,
    }

    /// The version 1 header: no reserved word, the disk size follows the extent size.
    #[derive(Clone, Copy)]
    pub(crate) struct BochsHeaderV1: 92 {
        0 start: [u8; 84],
        84 disk: U64,
    }
}

/// A problem with the header, as the error the driver refuses the image with: `truncated`,
/// `corrupt`, or `unsupported` for a Bochs variant qemu does not read either.
pub(crate) type Problem = Error;

/// What the header says, as the driver uses it.
#[derive(Clone, Debug)]
pub(crate) struct Bochs {
    pub(crate) version: u32,
    pub(crate) subtype: String,
    /// The disk size in bytes (qemu rounds it down to whole sectors).
    pub(crate) disk: u64,
    pub(crate) catalog_offset: u64,
    pub(crate) catalog: u32,
    pub(crate) bitmap: u32,
    pub(crate) extent: u32,
}

impl Bochs {
    /// Where extent data begins: right after the catalog.
    pub(crate) fn data_offset(&self) -> u64 {
        self.catalog_offset + u64::from(self.catalog) * 4
    }
    /// 512-byte blocks of each extent's bitmap, then of its data (qemu rounds both up).
    pub(crate) fn bitmap_blocks(&self) -> u64 {
        u64::from(self.bitmap).div_ceil(512).max(1)
    }
    pub(crate) fn extent_blocks(&self) -> u64 {
        u64::from(self.extent).div_ceil(512).max(1)
    }
}

/// A NUL-terminated text field equal to `want` (C `strcmp`).
fn text_is(field: &[u8], want: &[u8]) -> bool {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end] == want
}

/// Parse the header at the start of `b` (missing bytes read as zeros) of a file of `len` bytes;
/// None without the Bochs magic. Problems make the image unreadable.
pub(crate) fn parse(b: &[u8], len: u64) -> Option<(Bochs, Vec<Problem>)> {
    let h: BochsHeader = whole_fields(b);
    if b.len() < MAGIC.len() || !text_is(&h.magic, MAGIC) {
        return None;
    }
    let v1: BochsHeaderV1 = whole_fields(b);
    let version = h.version.get();
    let mut problems = vec![];
    if len < HEADER_LEN {
        problems.push(Error::truncated(
            "the Bochs header is cut off by the end of the file",
        ));
    }
    if !text_is(&h.kind, TYPE_REDOLOG) || !text_is(&h.subtype, SUBTYPE_GROWING) {
        problems.push(Error::unsupported(format!(
            "Bochs image of type {:?}/{:?}: only growing redolog images (Redolog/Growing) are read, as in qemu",
            c_string(&h.kind),
            c_string(&h.subtype)
        )));
    }
    if version != VERSION_2 && version != VERSION_1 {
        problems.push(Error::unsupported(format!(
            "Bochs header version {version:#x}: only versions 0x10000 and 0x20000 are read, as in qemu"
        )));
    }
    let disk = if version == VERSION_1 {
        v1.disk.get()
    } else {
        h.disk.get()
    };
    let header = Bochs {
        version,
        subtype: c_string(&h.subtype),
        disk: disk / 512 * 512,
        catalog_offset: u64::from(h.header.get()),
        catalog: h.catalog.get(),
        bitmap: h.bitmap.get(),
        extent: h.extent.get(),
    };
    check(&header, len, &mut problems);
    Some((header, problems))
}

/// qemu's `bochs_open` checks, plus the catalog lying inside the file.
fn check(h: &Bochs, len: u64, problems: &mut Vec<Problem>) {
    if h.catalog > MAX_CATALOG {
        problems.push(Error::corrupt(format!(
            "Bochs catalog of {} entries is too large",
            h.catalog
        )));
        return;
    }
    if h.extent < 512 || !h.extent.is_power_of_two() || h.extent > MAX_EXTENT {
        problems.push(Error::corrupt(format!(
            "Bochs extent size {} is not a power of two from 512 to 8 MiB",
            h.extent
        )));
        return;
    }
    if h.bitmap > MAX_BITMAP {
        problems.push(Error::corrupt(format!(
            "Bochs bitmap size {} is too large",
            h.bitmap
        )));
    }
    if u64::from(h.catalog) < h.disk.div_ceil(u64::from(h.extent)) {
        problems.push(Error::corrupt(format!(
            "the Bochs catalog ({} entries of {} bytes) is too small for the disk size {}",
            h.catalog, h.extent, h.disk
        )));
    }
    if h.catalog_offset < size_of::<BochsHeader>() as u64 {
        problems.push(Error::corrupt(format!(
            "the Bochs catalog offset {} lies inside the header",
            h.catalog_offset
        )));
    } else if h.data_offset() > len {
        problems.push(Error::truncated(
            "the Bochs catalog runs past the end of the file",
        ));
    }
}
