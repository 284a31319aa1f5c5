//! The Parallels image header (qemu `docs/interop/parallels.txt`, "Header"), little-endian.
//! [`ParallelsHeader::parse`] is the one parser the driver and detection share: it returns the
//! stored fields, and each side judges them.

use crate::formats::common::layout::on_disk;
use core::mem::size_of;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromZeros, IntoBytes};

pub(crate) const HEADER_LEN: u64 = 64;
/// `inuse` of an image that was not closed ("Ynot").
pub(crate) const INUSE_MAGIC: u32 = 0x746f_6e59;
pub(crate) const MAGIC_ORIGINAL: &[u8; 16] = b"WithoutFreeSpace";
pub(crate) const MAGIC_EXTENDED: &[u8; 16] = b"WithouFreSpacExt";

on_disk! {
    #[derive(Clone, Copy)]
    pub(crate) struct ParallelsHeader: HEADER_LEN {
        0 magic: [u8; 16],
        16 version: U32,
        20 heads: U32,
        24 cylinders: U32,
        /// Sectors per cluster.
        28 tracks: U32,
        32 bat_entries: U32,
        /// Only the low 32 bits count in the original format.
        36 nb_sectors: U64,
        44 inuse: U32,
        /// In sectors.
        48 data_off: U32,
        52 flags: U32,
        /// In sectors: the format extension cluster.
        56 ext_off: U64,
    }
}

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
