//! The Bochs growing-image header (qemu `block/bochs.c`; Bochs `iodev/hdimage/hdimage.h`,
//! "redolog"), little-endian. [`parse`] is the one parser the driver and detection share.
//!
//! ```text
//!  0 magic[32] "Bochs Virtual HD Image"   32 type[16] "Redolog"   48 subtype[16] "Growing"
//! 64 version u32 (0x00020000, or 0x00010000)   68 header u32 (header size: the catalog's offset)
//! 72 catalog u32 (entries)   76 bitmap u32 (bytes)   80 extent u32 (bytes)
//! 84 v2: reserved u32, 88 disk u64        v1: 84 disk u64
//! ```

use core::mem::{offset_of, size_of};
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

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

/// The version 2 header (the fields shared with version 1 sit at the same offsets).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BochsHeader {
    pub(crate) magic: [u8; 32],
    pub(crate) kind: [u8; 16],
    pub(crate) subtype: [u8; 16],
    pub(crate) version: U32,
    pub(crate) header: U32,
    pub(crate) catalog: U32,
    pub(crate) bitmap: U32,
    pub(crate) extent: U32,
    pub(crate) reserved: U32,
    pub(crate) disk: U64,
}

const _: () = assert!(offset_of!(BochsHeader, magic) == 0);
const _: () = assert!(offset_of!(BochsHeader, kind) == 32);
const _: () = assert!(offset_of!(BochsHeader, subtype) == 48);
const _: () = assert!(offset_of!(BochsHeader, version) == 64);
const _: () = assert!(offset_of!(BochsHeader, header) == 68);
const _: () = assert!(offset_of!(BochsHeader, catalog) == 72);
const _: () = assert!(offset_of!(BochsHeader, bitmap) == 76);
const _: () = assert!(offset_of!(BochsHeader, extent) == 80);
const _: () = assert!(offset_of!(BochsHeader, reserved) == 84);
const _: () = assert!(offset_of!(BochsHeader, disk) == 88);
const _: () = assert!(size_of::<BochsHeader>() == 96);

/// The version 1 header: no reserved word, the disk size follows the extent size.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BochsHeaderV1 {
    pub(crate) start: [u8; 84],
    pub(crate) disk: U64,
}

const _: () = assert!(offset_of!(BochsHeaderV1, disk) == 84);
const _: () = assert!(size_of::<BochsHeaderV1>() == 92);

/// A problem with the header: (the file is cut short, message).
pub(crate) type Problem = (bool, String);

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

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Parse the header at the start of `b` (missing bytes read as zeros) of a file of `len` bytes;
/// None without the Bochs magic. Problems make the image unreadable.
pub(crate) fn parse(b: &[u8], len: u64) -> Option<(Bochs, Vec<Problem>)> {
    let mut h = BochsHeader::new_zeroed();
    let n = b.len().min(size_of::<BochsHeader>());
    h.as_mut_bytes()[..n].copy_from_slice(&b[..n]);
    if b.len() < MAGIC.len() || !text_is(&h.magic, MAGIC) {
        return None;
    }
    let v1 = BochsHeaderV1::read_from_prefix(h.as_bytes())
        .expect("the v2 header holds the v1 one")
        .0;
    let version = h.version.get();
    let mut problems = vec![];
    if len < HEADER_LEN {
        problems.push((
            true,
            "the Bochs header is cut off by the end of the file".into(),
        ));
    }
    if !text_is(&h.kind, TYPE_REDOLOG) || !text_is(&h.subtype, SUBTYPE_GROWING) {
        problems.push((
            false,
            format!(
                "Bochs image of type {:?}/{:?}: only growing redolog images (Redolog/Growing) are read, as in qemu",
                text(&h.kind),
                text(&h.subtype)
            ),
        ));
    }
    if version != VERSION_2 && version != VERSION_1 {
        problems.push((false, format!("unknown Bochs header version {version:#x}")));
    }
    let disk = if version == VERSION_1 {
        v1.disk.get()
    } else {
        h.disk.get()
    };
    let header = Bochs {
        version,
        subtype: text(&h.subtype),
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
        problems.push((
            false,
            format!("Bochs catalog of {} entries is too large", h.catalog),
        ));
        return;
    }
    if h.extent < 512 || !h.extent.is_power_of_two() || h.extent > MAX_EXTENT {
        problems.push((
            false,
            format!(
                "Bochs extent size {} is not a power of two from 512 to 8 MiB",
                h.extent
            ),
        ));
        return;
    }
    if h.bitmap > MAX_BITMAP {
        problems.push((
            false,
            format!("Bochs bitmap size {} is too large", h.bitmap),
        ));
    }
    if u64::from(h.catalog) < h.disk.div_ceil(u64::from(h.extent)) {
        problems.push((
            false,
            format!(
                "the Bochs catalog ({} entries of {} bytes) is too small for the disk size {}",
                h.catalog, h.extent, h.disk
            ),
        ));
    }
    if h.catalog_offset < size_of::<BochsHeader>() as u64 {
        problems.push((
            false,
            format!(
                "the Bochs catalog offset {} lies inside the header",
                h.catalog_offset
            ),
        ));
    } else if h.data_offset() > len {
        problems.push((
            true,
            "the Bochs catalog runs past the end of the file".into(),
        ));
    }
}
