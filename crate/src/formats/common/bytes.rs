//! Panic-free field access for on-disk structures.
//!
//! Drivers read fields from buffers that may be shorter than the structure (a truncated or
//! damaged file): every accessor returns zeros for bytes past the end instead of panicking.

use super::layout::OnDisk;

/// `N` bytes at `offset`, or zeros when the buffer does not hold them all.
pub(crate) fn arr<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    offset
        .checked_add(N)
        .and_then(|end| buf.get(offset..end))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

/// The integer readers: one zero-filling read, for each width and byte order.
macro_rules! int_readers {
    ($($name:ident: $int:ty = $from:ident;)*) => {$(
        pub(crate) fn $name(buf: &[u8], offset: usize) -> $int {
            <$int>::$from(arr(buf, offset))
        }
    )*};
}

int_readers! {
    le16: u16 = from_le_bytes;
    le32: u32 = from_le_bytes;
    le64: u64 = from_le_bytes;
    be16: u16 = from_be_bytes;
    be32: u32 = from_be_bytes;
    be64: u64 = from_be_bytes;
}

/// The bytes `[offset, offset + len)` clipped to the buffer (possibly empty).
pub(crate) fn slice(buf: &[u8], offset: usize, len: usize) -> &[u8] {
    let start = offset.min(buf.len());
    let end = offset.saturating_add(len).min(buf.len());
    &buf[start..end]
}

/// Whether `buf` holds `magic` at `offset`.
pub(crate) fn has(buf: &[u8], offset: usize, magic: &[u8]) -> bool {
    offset
        .checked_add(magic.len())
        .and_then(|end| buf.get(offset..end))
        == Some(magic)
}

/// A typed on-disk structure from the start of `b`, where a field that `b` holds only in part
/// reads as zero like one past its end, as the accessors above read them (the fields as
/// [`on_disk!`](super::layout::on_disk) declared them). A cut header thus reads the same
/// through either.
pub(crate) fn whole_fields<T: OnDisk>(b: &[u8]) -> T {
    let mut t = T::new_zeroed();
    let dst = t.as_mut_bytes();
    let n = if b.len() >= dst.len() {
        dst.len()
    } else {
        T::FIELDS.iter().map(|f| f.kept(b.len())).max().unwrap_or(0)
    };
    dst[..n].copy_from_slice(&b[..n]);
    t
}

/// Whether the whole buffer is zero.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.iter().all(|&b| b == 0)
}

/// A name field up to its first NUL, control characters dropped.
pub(crate) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// UTF-16 text (NUL-terminated or padded) as a trimmed string, control characters dropped;
/// None when empty.
pub(crate) fn utf16(field: &[u8], big_endian: bool) -> Option<String> {
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

/// 16 bytes in stored order as a lower-case `8-4-4-4-12` UUID.
pub(crate) fn uuid(b: [u8; 16]) -> String {
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

/// 16 bytes whose first three fields are little-endian (Microsoft GUIDs, VirtualBox RTUUID)
/// in the usual field order.
pub(crate) fn mixed_endian(b: [u8; 16]) -> [u8; 16] {
    let mut o = b;
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    o
}

/// A Microsoft GUID (VHDX) in upper case, as the specs write them.
pub(crate) fn guid(b: [u8; 16]) -> String {
    uuid(mixed_endian(b)).to_uppercase()
}
