//! Parallels (expanding) disk images. Spec: qemu `docs/interop/parallels.txt`.

use super::bytes::{has, le32, le64};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    let old = has(h, 0, b"WithoutFreeSpace");
    if !old && !has(h, 0, b"WithouFreSpacExt") {
        return;
    }
    let mut d = Detection::new(Format::Parallels);
    d.set(
        "magic",
        if old {
            "WithoutFreeSpace"
        } else {
            "WithouFreSpacExt"
        },
    );
    if h.len() < 64 {
        d.truncated("Parallels header");
        if h.len() < 44 {
            scan.add(0, d);
            return;
        }
    }
    let version = le32(h, 16);
    d.set("version", version);
    if version != 2 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown Parallels header version {version}"),
        );
    }
    let mut sectors = le64(h, 36);
    if old {
        // The original format has a 32-bit sector count (qemu masks the rest).
        sectors &= 0xffff_ffff;
    }
    d.virtual_size = sectors.checked_mul(512);
    let cluster = u64::from(le32(h, 28)) * 512;
    let entries = u64::from(le32(h, 32));
    d.set("cluster-size", cluster);
    d.set("bat-entries", entries);
    if cluster == 0 || entries.saturating_mul(cluster) < d.virtual_size.unwrap_or(0) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the Parallels allocation table is too small for the disk size",
        );
    }
    if 64 + entries * 4 > cx.len {
        d.finding(
            FindingCode::Truncated,
            Severity::Critical,
            "the Parallels allocation table runs past the end of the file",
        );
    }
    // The Parallels driver reports the `dirty` finding.
    if le32(h, 44) == 0x746f_6e59 {
        d.set("dirty", true);
    }
    scan.add(0, d);
}
