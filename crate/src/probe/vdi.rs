//! VirtualBox VDI. Spec: VirtualBox `src/VBox/Storage/VDICore.h` (header versions 0 and 1).
//! Version 1 headers are read with the driver's parser (`formats::vdi::header`).

use super::bytes::{arr, le32, le64, text, uuid};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::formats::vdi::header::{HEADER1_END, VdiHeader, is_diff, type_name};
use crate::report::Severity;

/// The fields detection reports, from either header version.
struct Fields {
    image_type: u32,
    disk_size: u64,
    block_size: u32,
    blocks: u32,
    blocks_allocated: u32,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    /// Where the header ends, and where its disk size field ends.
    end: usize,
    size_end: usize,
}

impl Fields {
    fn v1(h: &VdiHeader) -> Fields {
        Fields {
            image_type: h.image_type.get(),
            disk_size: h.disk_size.get(),
            block_size: h.block_size.get(),
            blocks: h.blocks.get(),
            blocks_allocated: h.blocks_allocated.get(),
            uuid: h.uuid_create,
            parent_uuid: h.uuid_parent,
            end: HEADER1_END as usize,
            size_end: 0x178,
        }
    }

    /// The version 0 header (VirtualBox before 1.5), at the offsets detection has always used.
    /// VDICore.h's `VDIHEADER0` has a 16-byte geometry, which would put the size at 0x160.
    fn v0(h: &[u8]) -> Fields {
        Fields {
            image_type: le32(h, 0x48),
            disk_size: le64(h, 0x15c),
            block_size: le32(h, 0x164),
            blocks: le32(h, 0x168),
            blocks_allocated: le32(h, 0x16c),
            uuid: arr(h, 0x170),
            parent_uuid: arr(h, 0x190),
            end: 0x1b0,
            size_end: 0x164,
        }
    }
}

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    let Some(header) = VdiHeader::parse(h) else {
        return;
    };
    let mut d = Detection::new(Format::Vdi);
    if let Some(t) = text(&header.text) {
        d.set("signature-text", t);
    }
    let (major, minor) = header.version();
    d.set("version", format!("{major}.{minor}"));
    let f = match major {
        1 => Fields::v1(&header),
        0 => Fields::v0(h),
        _ => {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("unknown VDI header version {major}.{minor}"),
            );
            scan.add(0, d);
            return;
        }
    };
    if h.len() < f.end {
        d.truncated("VDI header");
        if h.len() < f.size_end {
            scan.add(0, d);
            return;
        }
    }
    d.virtual_size = Some(f.disk_size);
    d.set("image-type", type_name(f.image_type));
    let (block, blocks) = (f.block_size, f.blocks);
    d.set("block-size", block);
    d.set("blocks", blocks);
    d.set("allocated-blocks", f.blocks_allocated);
    d.set("uuid", uuid(f.uuid));
    if !block.is_power_of_two() || block < 512 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("VDI block size {block} is not a power of two"),
        );
    } else if u64::from(blocks) * u64::from(block) < f.disk_size {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VDI block map is too small for the disk size",
        );
    }
    if major == 1 {
        // The block map (4 bytes a block) must lie inside the file.
        let map_end = u64::from(header.offset_blocks.get()) + u64::from(blocks) * 4;
        if map_end > cx.len {
            d.finding(
                FindingCode::Truncated,
                Severity::Critical,
                format!("the VDI block map ends at {map_end}, past the end of the file"),
            );
        }
    }
    if is_diff(f.image_type) {
        let parent = uuid(f.parent_uuid);
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("this VDI is a differencing image: it depends on the parent disk {parent}"),
        );
        d.set("parent-uuid", parent);
    }
    scan.add(0, d);
}
