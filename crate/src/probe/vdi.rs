//! VirtualBox VDI. Spec: VirtualBox `src/VBox/Storage/VDICore.h` (header versions 0 and 1).

use super::bytes::{arr, has, le32, le64, slice, text, uuid};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;

const SIGNATURE: [u8; 4] = 0xbeda_107fu32.to_le_bytes();

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    if !has(h, 0x40, &SIGNATURE) {
        return;
    }
    let mut d = Detection::new(Format::Vdi);
    if let Some(t) = text(slice(h, 0, 64)) {
        d.set("signature-text", t);
    }
    let version = le32(h, 0x44);
    let (major, minor) = (version >> 16, version & 0xffff);
    d.set("version", format!("{major}.{minor}"));
    // Field offsets of the version 1 header and of the older version 0 one.
    let (type_at, size_at, block_at, blocks_at, uuid_at) = match major {
        1 => (0x4c, 0x170, 0x178, 0x180, 0x188),
        0 => (0x48, 0x15c, 0x164, 0x168, 0x170),
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
    let need = uuid_at + 64;
    if h.len() < need {
        d.truncated("VDI header");
        if h.len() < size_at + 8 {
            scan.add(0, d);
            return;
        }
    }
    d.virtual_size = Some(le64(h, size_at));
    let kind = le32(h, type_at);
    d.set(
        "image-type",
        match kind {
            1 => "dynamic",
            2 => "fixed",
            3 => "undo",
            4 => "diff",
            _ => "unknown",
        },
    );
    let block = le32(h, block_at);
    let blocks = le32(h, blocks_at);
    d.set("block-size", block);
    d.set("blocks", blocks);
    d.set("allocated-blocks", le32(h, blocks_at + 4));
    d.set("uuid", uuid(arr(h, uuid_at)));
    if !block.is_power_of_two() || block < 512 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("VDI block size {block} is not a power of two"),
        );
    } else if u64::from(blocks) * u64::from(block) < le64(h, size_at) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VDI block map is too small for the disk size",
        );
    }
    if major == 1 {
        // The block map (4 bytes a block) must lie inside the file.
        let map_end = u64::from(le32(h, 0x154)) + u64::from(blocks) * 4;
        if map_end > cx.len {
            d.finding(
                FindingCode::Truncated,
                Severity::Critical,
                format!("the VDI block map ends at {map_end}, past the end of the file"),
            );
        }
    }
    if kind == 4 || kind == 3 {
        let parent = uuid(arr(h, uuid_at + 32));
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("this VDI is a differencing image: it depends on the parent disk {parent}"),
        );
        d.set("parent-uuid", parent);
    }
    scan.add(0, d);
}
