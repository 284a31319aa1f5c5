//! Panic-free field access for on-disk headers.
//!
//! Detectors read fields from buffers that may be shorter than the structure (a truncated file):
//! every accessor returns zeros for bytes past the end instead of panicking, and each detector
//! checks the buffer length once, up front, to report truncation.

/// `N` bytes at `offset`, or zeros when the buffer does not hold them all.
pub fn arr<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    offset
        .checked_add(N)
        .and_then(|end| buf.get(offset..end))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

pub fn le16(buf: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(arr(buf, offset))
}
pub fn le32(buf: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(arr(buf, offset))
}
pub fn le64(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(arr(buf, offset))
}
pub fn be16(buf: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes(arr(buf, offset))
}
pub fn be32(buf: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes(arr(buf, offset))
}
pub fn be64(buf: &[u8], offset: usize) -> u64 {
    u64::from_be_bytes(arr(buf, offset))
}

/// The bytes `[offset, offset + len)` clipped to the buffer (possibly empty).
pub fn slice(buf: &[u8], offset: usize, len: usize) -> &[u8] {
    let start = offset.min(buf.len());
    let end = offset.saturating_add(len).min(buf.len());
    &buf[start..end]
}

/// Whether `buf` holds `magic` at `offset`.
pub fn has(buf: &[u8], offset: usize, magic: &[u8]) -> bool {
    offset
        .checked_add(magic.len())
        .and_then(|end| buf.get(offset..end))
        == Some(magic)
}

/// A fixed-size text field (NUL- or space-padded) as a trimmed string; None when empty.
/// Control characters are dropped so a hostile header cannot garble terminal output.
pub fn text(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let s: String = String::from_utf8_lossy(&field[..end])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// UTF-16 text (NUL-terminated or padded) as a string; None when empty.
pub fn utf16(field: &[u8], big_endian: bool) -> Option<String> {
    let units: Vec<u16> = field
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .take_while(|&u| u != 0)
        .collect();
    let s: String = String::from_utf16_lossy(&units)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A UUID stored in byte order (ext4, XFS, Btrfs, LUKS): `8-4-4-4-12` hex.
pub fn uuid(b: [u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Microsoft GUID (GPT, VHDX): the first three fields are little-endian. Upper case, as the
/// specs write them.
pub fn guid(b: [u8; 16]) -> String {
    let mut o = b;
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    uuid(o).to_uppercase()
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the whole buffer is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    buf.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_never_panic() {
        let b = [1u8, 2, 3];
        assert_eq!(le16(&b, 1), 0x0302);
        assert_eq!(le32(&b, 1), 0);
        assert_eq!(be64(&b, usize::MAX), 0);
        assert_eq!(slice(&b, 2, 10), &[3]);
        assert_eq!(slice(&b, usize::MAX, usize::MAX), &[] as &[u8]);
        assert!(has(&b, 1, &[2, 3]));
        assert!(!has(&b, 2, &[3, 4]));
    }

    #[test]
    fn ids_and_text() {
        let g = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(guid(g), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(text(b"abc  \0\0xyz").as_deref(), Some("abc"));
        assert_eq!(text(b"\0\0"), None);
        assert_eq!(utf16(b"a\0b\0\0\0c\0", false).as_deref(), Some("ab"));
    }
}
