//! Panic-free field access for the headers only detection reads (LUKS, ISO 9660, file systems,
//! kernels, partition tables).
//!
//! Detectors read fields from buffers that may be shorter than the structure (a truncated file):
//! the accessors (those of `formats::common::bytes`) return zeros for bytes past the end instead
//! of panicking, and each detector checks the buffer length once, up front, to report
//! truncation. Disk image formats are read through their drivers' own header parsers.

pub(crate) use crate::formats::common::bytes::{
    arr, be16, be32, be64, guid, has, le16, le32, le64, slice, utf16, uuid,
};

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

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
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
