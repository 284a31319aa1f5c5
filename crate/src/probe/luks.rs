//! LUKS encrypted volumes, versions 1 and 2.
//!
//! Specs: "LUKS On-Disk Format Specification" 1.2.3 and "LUKS2 On-Disk Format Specification" 1.1
//! (binary header, then the JSON area whose `segments` give the payload offset).

use super::bytes::{be32, be64, has, slice, text};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// LUKS2 header sizes the spec allows: 16 KiB to 4 MiB.
const MAX_LUKS2_HEADER: u64 = 4 << 20;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    if !has(h, 0, b"LUKS\xba\xbe") {
        return;
    }
    let mut d = Detection::new(Format::Luks);
    let version = u16::from_be_bytes([
        h.get(6).copied().unwrap_or(0),
        h.get(7).copied().unwrap_or(0),
    ]);
    d.set("version", version);
    d.finding(
        FindingCode::Encrypted,
        Severity::Warning,
        "the whole disk is LUKS-encrypted: its contents cannot be read without a passphrase",
    );
    if let Some(u) = text(slice(h, 168, 40)) {
        d.set("uuid", u);
    }
    let payload = match version {
        1 => luks1(h, &mut d),
        2 => luks2(h, &mut d),
        v => {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("unknown LUKS version {v}"),
            );
            None
        }
    };
    if let Some(p) = payload {
        d.set("payload-offset", p);
        if p > cx.len {
            d.finding(
                FindingCode::Truncated,
                Severity::Critical,
                format!("the LUKS payload starts at {p}, past the end of the file"),
            );
        }
        d.virtual_size = Some(cx.len.saturating_sub(p));
    }
    scan.add(0, d);
}

fn luks1(h: &[u8], d: &mut Detection) -> Option<u64> {
    if h.len() < 592 {
        d.truncated("LUKS header");
        if h.len() < 108 {
            return None;
        }
    }
    for (key, at) in [("cipher", 8), ("cipher-mode", 40), ("hash", 72)] {
        if let Some(t) = text(slice(h, at, 32)) {
            d.set(key, t);
        }
    }
    let active = (0..8)
        .filter(|i| be32(h, 208 + i * 48) == 0x00ac_71f3)
        .count();
    d.set("active-key-slots", active);
    Some(u64::from(be32(h, 104)) * 512)
}

fn luks2(h: &[u8], d: &mut Detection) -> Option<u64> {
    let size = be64(h, 8);
    if !size.is_power_of_two() || !(16 << 10..=MAX_LUKS2_HEADER).contains(&size) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("LUKS2 header size {size} is not allowed"),
        );
        return None;
    }
    if let Some(l) = text(slice(h, 24, 48)) {
        d.set("label", l);
    }
    if (h.len() as u64) < size {
        // The JSON area lies past the head (a header over 256 KiB) or the file is cut off.
        if (h.len() as u64) < super::HEAD_LEN {
            d.truncated("LUKS2 header");
        }
        return None;
    }
    let area = slice(h, 4096, size as usize - 4096);
    let end = area.iter().position(|&b| b == 0).unwrap_or(area.len());
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&area[..end]) else {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the LUKS2 JSON metadata does not parse",
        );
        return None;
    };
    let keyslots = json["keyslots"].as_object().map_or(0, |k| k.len());
    d.set("key-slots", keyslots);
    // The first crypt segment (by its numeric key) holds the payload.
    let segment = json["segments"].as_object().and_then(|s| {
        s.iter()
            .filter_map(|(k, v)| Some((k.parse::<u32>().ok()?, v)))
            .min_by_key(|(k, _)| *k)
            .map(|(_, v)| v.clone())
    })?;
    if let Some(e) = segment["encryption"].as_str() {
        d.set("cipher", e);
    }
    if let Some(s) = segment["sector_size"].as_u64() {
        d.set("sector-size", s);
    }
    let offset = segment["offset"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok());
    if offset.is_none() {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the LUKS2 segment has no offset",
        );
    }
    offset
}
