//! EFI zboot: `drivers/firmware/efi/libstub/zboot-header.S`.

use super::super::bytes::{has, le32, slice, text};
use super::super::{Detection, Format};
use super::{compression, pe::set_arch, short};
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// EFI zboot: a small EFI application carrying the compressed kernel.
pub(super) fn zboot(h: &[u8], len: u64) -> Option<Detection> {
    if !has(h, 0, b"MZ") || !has(h, 4, b"zimg") {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    d.set("image", "EFI zboot");
    set_arch(&mut d, h, "unknown");
    // The make target names the method (`xzkern`, `zstd22`: the kernel's own presets).
    let named = text(slice(h, 24, 0x38 - 24));
    let method = match named.as_deref() {
        Some("xzkern") => Some("xz".to_string()),
        Some("zstd22") => Some("zstd".to_string()),
        _ => named,
    };
    if let Some(m) = &method {
        d.set("compression", m.as_str());
    }
    let (offset, size) = (u64::from(le32(h, 8)), u64::from(le32(h, 12)));
    d.set("payload-offset", offset);
    d.set("payload-size", size);
    if len < 0x40 {
        d.truncated("EFI zboot header");
    } else if len < offset + size {
        short(&mut d, "EFI zboot image", len, offset + size);
    }
    // The payload's own magic, when the head holds it, must be the compression named.
    let payload = usize::try_from(offset).ok().and_then(|o| h.get(o..));
    let known = ["gzip", "xz", "zstd", "lz4", "lzma", "lzo", "bzip2"];
    if let (Some(m), Some(p)) = (&method, payload)
        && p.len() >= 16
        && known.contains(&m.as_str())
    {
        let found = compression(p);
        let expected = if m == "lz4" { "lz4-legacy" } else { m.as_str() };
        if found != Some(expected) {
            d.finding(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the EFI zboot header names {m} compression but its payload at offset {offset} starts with {}",
                    found.map_or("no known compression magic".into(), |f| format!("{f} data"))
                ),
            );
        }
    }
    Some(d)
}
