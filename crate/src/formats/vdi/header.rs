//! The VDI pre-header and version 1 header (VirtualBox `src/VBox/Storage/VDICore.h`,
//! `VDIPREHEADER` and `VDIHEADER1PLUS`), all little-endian. [`VdiHeader::parse`] is the one
//! parser the driver and detection share: it returns the stored fields, and each side judges
//! the version and the length.

use crate::error::{Error, Result};
use crate::formats::common::bytes::{c_string, whole_fields};
use crate::formats::common::layout::on_disk;
use crate::source::{Source, read_vec};
use core::mem::offset_of;
use zerocopy::byteorder::little_endian::{U32, U64};

pub(crate) const SIGNATURE: u32 = 0xbeda_107f;
/// Bytes read for the header.
pub(super) const HEADER_LEN: usize = 0x200;
/// The end of the pre-header, where header sizes count from.
pub(crate) const PRE_HEADER_LEN: usize = offset_of!(VdiHeader, header_size);
/// The end of the version 1 header (without the 1.1 logical geometry).
pub(crate) const HEADER1_END: u64 = offset_of!(VdiHeader, lchs) as u64;

on_disk! {
    /// The pre-header and a version 1.1 ("plus") header as stored.
    #[derive(Clone, Copy)]
    pub(crate) struct VdiHeader: 0x1d8 {
        /// Free text ("<<< Oracle VM VirtualBox Disk Image >>>").
        0x000 text: [u8; 64],
        0x40 signature: U32,
        /// major << 16 | minor.
        0x44 version: U32,
        0x48 header_size: U32,
        0x4c image_type: U32,
        0x50 flags: U32,
        0x54 comment: [u8; 256],
        0x154 offset_blocks: U32,
        0x158 offset_data: U32,
        /// Legacy CHS geometry: cylinders, heads, sectors, sector size.
        0x15c geometry: [U32; 4] as each U32,
        0x16c dummy: U32,
        0x170 disk_size: U64,
        0x178 block_size: U32,
        0x17c block_extra: U32,
        0x180 blocks: U32,
        0x184 blocks_allocated: U32,
        0x188 uuid_create: [u8; 16],
        0x198 uuid_modify: [u8; 16],
        0x1a8 uuid_parent: [u8; 16],
        0x1b8 uuid_parent_modify: [u8; 16],
        /// Logical CHS geometry of 1.1 headers.
        0x1c8 lchs: [U32; 4] as each U32,
    }
}

impl VdiHeader {
    /// The header at the start of `b` (a cut header's missing fields read as zeros); None
    /// without the signature.
    pub(crate) fn parse(b: &[u8]) -> Option<VdiHeader> {
        let h: VdiHeader = whole_fields(b);
        (h.signature.get() == SIGNATURE).then_some(h)
    }

    /// (major, minor).
    pub(crate) fn version(&self) -> (u32, u32) {
        let v = self.version.get();
        (v >> 16, v & 0xffff)
    }
}

/// An image type as VirtualBox names it (static reported as "fixed").
pub(crate) fn type_name(image_type: u32) -> &'static str {
    match image_type {
        1 => "dynamic",
        2 => "fixed",
        3 => "undo",
        4 => "diff",
        _ => "unknown",
    }
}

/// Undo and diff images depend on a parent.
pub(crate) fn is_diff(image_type: u32) -> bool {
    matches!(image_type, 3 | 4)
}

#[derive(Clone, Debug)]
pub(super) struct Header {
    pub(super) version: (u32, u32),
    pub(super) image_type: u32,
    pub(super) flags: u32,
    pub(super) comment: String,
    pub(super) offset_blocks: u32,
    pub(super) offset_data: u32,
    /// Legacy CHS geometry (cylinders, heads, sectors, sector size).
    pub(super) geometry: [u32; 4],
    /// Logical CHS geometry of 1.1 "plus" headers.
    pub(super) lchs: Option<[u32; 4]>,
    pub(super) disk_size: u64,
    pub(super) block_size: u32,
    pub(super) block_extra: u32,
    pub(super) blocks: u32,
    pub(super) blocks_allocated: u32,
    pub(super) uuid_create: [u8; 16],
    pub(super) uuid_modify: [u8; 16],
    pub(super) uuid_parent: [u8; 16],
    pub(super) uuid_parent_modify: [u8; 16],
}

impl Header {
    /// Parse the first [`HEADER_LEN`] bytes (or fewer, when the file is that short).
    pub(super) fn parse(b: &[u8], name: &str) -> Result<Header> {
        let Some(h) = VdiHeader::parse(b).filter(|_| b.len() >= PRE_HEADER_LEN) else {
            return Err(Error::corrupt(format!("{name} has no VDI signature")));
        };
        let version = h.version();
        if version.0 != 1 {
            return Err(Error::unsupported(format!(
                "VDI header version {}.{} (only version 1 is read)",
                version.0, version.1
            )));
        }
        if (b.len() as u64) < HEADER1_END {
            return Err(Error::truncated(format!(
                "the VDI header of {name} is cut off by the end of the file"
            )));
        }
        let g = |v: [U32; 4]| v.map(|x| x.get());
        // Header sizes count from the end of the pre-header.
        let has_lchs = u64::from(h.header_size.get()) + PRE_HEADER_LEN as u64
            >= size_of::<VdiHeader>() as u64
            && b.len() >= size_of::<VdiHeader>();
        Ok(Header {
            version,
            image_type: h.image_type.get(),
            flags: h.flags.get(),
            comment: c_string(&h.comment),
            offset_blocks: h.offset_blocks.get(),
            offset_data: h.offset_data.get(),
            geometry: g(h.geometry),
            lchs: has_lchs.then(|| g(h.lchs)),
            disk_size: h.disk_size.get(),
            block_size: h.block_size.get(),
            block_extra: h.block_extra.get(),
            blocks: h.blocks.get(),
            blocks_allocated: h.blocks_allocated.get(),
            uuid_create: h.uuid_create,
            uuid_modify: h.uuid_modify,
            uuid_parent: h.uuid_parent,
            uuid_parent_modify: h.uuid_parent_modify,
        })
    }

    pub(super) fn type_name(&self) -> &'static str {
        type_name(self.image_type)
    }

    pub(super) fn is_diff(&self) -> bool {
        is_diff(self.image_type)
    }
}

pub(super) async fn read_header(src: &dyn Source) -> Result<Header> {
    let n = src.len().min(HEADER_LEN as u64);
    let b = read_vec(src, 0, n, "VDI header").await?;
    Header::parse(&b, src.name())
}
