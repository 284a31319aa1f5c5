//! Optical media: ISO 9660 (ECMA-119) and UDF (ECMA-167 volume recognition sequence).
//!
//! The first 32 KiB are the system area (where hybrid ISOs keep an MBR/GPT); volume descriptors
//! follow at 32 KiB, one per 2 KiB sector, up to a terminator.

use super::bytes::{has, le16, le32, slice, text};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;

const START: usize = 0x8000;
const SECTOR: usize = 2048;
/// Descriptors examined at most (ISO 9660 + El Torito + Joliet + UDF VRS need a handful).
const MAX_DESCRIPTORS: usize = 64;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    let first = slice(h, START + 1, 5);
    if !matches!(first, b"CD001" | b"BEA01" | b"NSR02" | b"NSR03") {
        return;
    }
    let mut d = Detection::new(Format::Iso);
    d.virtual_size = Some(cx.len);
    let (mut iso, mut udf, mut bea) = (false, None, false);
    let mut terminated = false;
    for i in 0..MAX_DESCRIPTORS {
        let at = START + i * SECTOR;
        let desc = slice(h, at, SECTOR);
        if desc.len() < 6 {
            break;
        }
        match &desc[1..6] {
            b"CD001" => {
                iso = true;
                match desc[0] {
                    0 if has(desc, 7, b"EL TORITO SPECIFICATION") => d.set("el-torito", true),
                    1 => primary(cx, &mut d, desc),
                    2 if matches!(slice(desc, 88, 3), b"%/@" | b"%/C" | b"%/E") => {
                        d.set("joliet", true)
                    }
                    255 => terminated = true,
                    _ => {}
                }
            }
            b"BEA01" => bea = true,
            b"NSR02" | b"NSR03" if bea => {
                udf = Some(String::from_utf8_lossy(&desc[1..6]).into_owned())
            }
            b"TEA01" => break,
            _ if terminated => break,
            _ => {}
        }
    }
    if !iso && udf.is_none() {
        if bea {
            // BEA01 alone: a recognition sequence cut off before its NSR descriptor.
            d.truncated("UDF volume recognition sequence");
        } else {
            return;
        }
    }
    let fs = match (iso, &udf) {
        (true, Some(_)) => "iso9660+udf",
        (false, Some(_)) => "udf",
        _ => "iso9660",
    };
    d.set("filesystem", fs);
    if let Some(u) = udf {
        d.set("udf", u);
    }
    if iso && !d.details.contains_key("volume-size") {
        d.finding(
            FindingCode::Corrupt,
            Severity::Warning,
            "the ISO 9660 primary volume descriptor is missing or cut off",
        );
    }
    scan.add((START + 1) as u64, d);
}

/// The primary volume descriptor ([ECMA-119] 8.4): identifiers, block size, volume size.
fn primary(cx: &Ctx<'_>, d: &mut Detection, pvd: &[u8]) {
    if pvd.len() < 136 {
        d.truncated("ISO 9660 primary volume descriptor");
        return;
    }
    if let Some(s) = text(slice(pvd, 8, 32)) {
        d.set("system-id", s);
    }
    if let Some(v) = text(slice(pvd, 40, 32)) {
        d.set("volume-id", v);
    }
    // Both-endian fields: the little-endian half comes first.
    let blocks = u64::from(le32(pvd, 80));
    let block = u64::from(le16(pvd, 128));
    d.set("block-size", block);
    let size = blocks * block;
    d.set("volume-size", size);
    if size > cx.len {
        d.finding(
            FindingCode::Truncated,
            Severity::Critical,
            format!(
                "the ISO volume is {size} bytes but the file holds only {}",
                cx.len
            ),
        );
    }
}
