//! The Parallels image header (qemu `docs/interop/parallels.txt`, "Header"), little-endian.
//! [`ParallelsHeader::parse`] is the one parser the driver and detection share: it returns the
//! stored fields, and each side judges them.

use core::mem::{offset_of, size_of};
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

pub(crate) const HEADER_LEN: u64 = 64;
/// `inuse` of an image that was not closed ("Ynot").
pub(crate) const INUSE_MAGIC: u32 = 0x746f_6e59;
pub(crate) const MAGIC_ORIGINAL: &[u8; 16] = b"WithoutFreeSpace";
pub(crate) const MAGIC_EXTENDED: &[u8; 16] = b"WithouFreSpacExt";

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ParallelsHeader {
    pub(crate) magic: [u8; 16],
    pub(crate) version: U32,
    pub(crate) heads: U32,
    pub(crate) cylinders: U32,
    /// Sectors per cluster.
    pub(crate) tracks: U32,
    pub(crate) bat_entries: U32,
    /// Only the low 32 bits count in the original format.
    pub(crate) nb_sectors: U64,
    pub(crate) inuse: U32,
    /// In sectors.
    pub(crate) data_off: U32,
    pub(crate) flags: U32,
    /// In sectors: the format extension cluster.
    pub(crate) ext_off: U64,
}

const _: () = assert!(offset_of!(ParallelsHeader, magic) == 0);
const _: () = assert!(offset_of!(ParallelsHeader, version) == 16);
const _: () = assert!(offset_of!(ParallelsHeader, heads) == 20);
const _: () = assert!(offset_of!(ParallelsHeader, cylinders) == 24);
const _: () = assert!(offset_of!(ParallelsHeader, tracks) == 28);
const _: () = assert!(offset_of!(ParallelsHeader, bat_entries) == 32);
const _: () = assert!(offset_of!(ParallelsHeader, nb_sectors) == 36);
const _: () = assert!(offset_of!(ParallelsHeader, inuse) == 44);
const _: () = assert!(offset_of!(ParallelsHeader, data_off) == 48);
const _: () = assert!(offset_of!(ParallelsHeader, flags) == 52);
const _: () = assert!(offset_of!(ParallelsHeader, ext_off) == 56);
const _: () = assert!(size_of::<ParallelsHeader>() == HEADER_LEN as usize);

impl ParallelsHeader {
    /// The header at the start of `b` (missing bytes read as zeros); None without either
    /// magic.
    pub(crate) fn parse(b: &[u8]) -> Option<ParallelsHeader> {
        let mut h = ParallelsHeader::new_zeroed();
        let n = b.len().min(size_of::<ParallelsHeader>());
        h.as_mut_bytes()[..n].copy_from_slice(&b[..n]);
        (b.len() >= h.magic.len() && (&h.magic == MAGIC_ORIGINAL || &h.magic == MAGIC_EXTENDED))
            .then_some(h)
    }

    /// "WithouFreSpacExt": BAT entries count clusters and the sector count is 64-bit.
    pub(crate) fn extended(&self) -> bool {
        &self.magic == MAGIC_EXTENDED
    }

    /// The virtual disk size in sectors (the original format's is 32-bit; qemu masks the rest).
    pub(crate) fn sectors(&self) -> u64 {
        let n = self.nb_sectors.get();
        if self.extended() { n } else { n & 0xffff_ffff }
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.inuse.get() == INUSE_MAGIC
    }
}
