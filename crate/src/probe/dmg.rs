//! Apple disk images (UDIF): the `koly` trailer at the end of the file, read with the driver's
//! parser (`formats::dmg::header`). qemu names DMG by the file name only; vmdisk never does, so
//! the trailer is the one sign. A file cut short loses its trailer: when the last KiB still
//! ends like a DMG's property list, the file is named DMG (a weak match, standing only when
//! nothing else matched) with a `truncated` finding rather than taken for raw.

use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::formats::dmg::header;
use crate::report::Severity;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let Some(at) = header::find_koly(&cx.tail, cx.len) else {
        if looks_like_cut_dmg(&cx.tail) {
            let mut d = Detection::new(Format::Dmg);
            d.finding(
                FindingCode::Truncated,
                Severity::Critical,
                "the file ends inside what looks like a DMG property list: its koly trailer is missing (cut short?)",
            );
            scan.add_weak(d);
        }
        return;
    };
    let from = (at - (cx.len - cx.tail.len() as u64)) as usize;
    let (koly, problems) = header::parse_koly(&cx.tail[from..], at, cx.len);
    let mut d = Detection::new(Format::Dmg);
    d.virtual_size = koly.sector_count.get().checked_mul(512);
    d.set("trailer-offset", at);
    d.set("version", koly.version.get());
    super::problems::report(&mut d, problems);
    scan.add(at, d);
}

/// The tail of a UDIF property list: its end or its resource entries, with the `blkx` / `plst`
/// keys or a base64 `mish` table ("bWlza" encodes "mish" at the start of a `<data>`).
fn looks_like_cut_dmg(tail: &[u8]) -> bool {
    let has = |n: &[u8]| tail.windows(n.len()).any(|w| w == n);
    let plist = has(b"</plist>") || has(b"<key>Data</key>");
    plist && (has(b"<key>plst</key>") || has(b"<key>blkx</key>") || has(b"bWlza"))
}
