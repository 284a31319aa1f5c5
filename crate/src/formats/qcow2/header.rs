//! The qcow2 header and its extensions (qcow2.txt "Header", "Header extensions").
//!
//! Pure parsing over bytes already read: the caller reads the header cluster (bounded by the
//! cluster size, at most 2 MiB) and these functions never index outside it.

use crate::error::{Error, Result};
use crate::formats::common::bytes::{be32, be64};

pub use super::layout::MAGIC;

/// Length of the fixed header of version 2; version 3 adds fields up to at least 104 bytes.
pub const V2_HEADER_LEN: u32 = 72;
pub const V3_MIN_HEADER_LEN: u32 = 104;

/// Incompatible feature bits (header bytes 72-79).
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
pub const INCOMPAT_KNOWN: u64 = 0x1f;

/// Compatible feature bit 0.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;

/// Header extension types.
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_CRYPTO_HEADER: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// The spec limits the backing file name to 1023 bytes; the same bound serves for the other
/// strings of the header cluster (they only name things).
pub const MAX_NAME: usize = 1023;

#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible: u64,
    pub compatible: u64,
    pub autoclear: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    /// Byte 104 when the header is long enough, else 0 (zlib).
    pub compression_type: u8,
}

impl Header {
    /// How many bytes to read to parse the fixed header: 104 covers version 3 up to
    /// header_length; byte 104 (compression_type) is read separately when present.
    pub const PREFIX: usize = 112;

    /// Parse the fixed header from the first bytes of the file (`b` holds what the file has of
    /// them, up to [`Header::PREFIX`]). Checks the magic, the version and the header length;
    /// the geometry is checked by the driver.
    pub fn parse(b: &[u8], file_name: &str) -> Result<Header> {
        if b.len() < 8 || &b[..4] != MAGIC {
            return Err(Error::not_an_image(format!(
                "{file_name} has no qcow2 magic"
            )));
        }
        let version = be32(b, 4);
        if version != 2 && version != 3 {
            return Err(Error::unsupported(format!(
                "qcow2 version {version} (only versions 2 and 3 exist)"
            )));
        }
        let need = if version == 2 {
            V2_HEADER_LEN
        } else {
            V3_MIN_HEADER_LEN
        } as usize;
        if b.len() < need {
            return Err(Error::truncated(format!(
                "{file_name} ends inside the qcow2 version {version} header ({} of {need} bytes)",
                b.len()
            )));
        }
        let mut h = Header {
            version,
            backing_file_offset: be64(b, 8),
            backing_file_size: be32(b, 16),
            cluster_bits: be32(b, 20),
            size: be64(b, 24),
            crypt_method: be32(b, 32),
            l1_size: be32(b, 36),
            l1_table_offset: be64(b, 40),
            refcount_table_offset: be64(b, 48),
            refcount_table_clusters: be32(b, 56),
            nb_snapshots: be32(b, 60),
            snapshots_offset: be64(b, 64),
            // Version 2 has none of the following; their defaults are the spec's.
            incompatible: 0,
            compatible: 0,
            autoclear: 0,
            refcount_order: 4,
            header_length: V2_HEADER_LEN,
            compression_type: 0,
        };
        if version == 3 {
            h.incompatible = be64(b, 72);
            h.compatible = be64(b, 80);
            h.autoclear = be64(b, 88);
            h.refcount_order = be32(b, 96);
            h.header_length = be32(b, 100);
            if h.header_length < V3_MIN_HEADER_LEN || !h.header_length.is_multiple_of(8) {
                return Err(Error::corrupt(format!(
                    "qcow2 header length {} (version 3 needs a multiple of 8, at least 104)",
                    h.header_length
                )));
            }
            // "Additional fields": a field is present only when header_length covers it.
            if h.header_length > 104 {
                let at = 104;
                h.compression_type = *b.get(at).ok_or_else(|| {
                    Error::truncated(format!("{file_name} ends inside the qcow2 header"))
                })?;
            }
        }
        Ok(h)
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Where the header extension area ends: the backing file name, when there is one, follows
    /// it inside the header cluster (qcow2.txt "Header extensions").
    pub fn extensions_end(&self) -> u64 {
        let cs = self.cluster_size();
        if self.backing_file_offset != 0 {
            self.backing_file_offset.min(cs)
        } else {
            cs
        }
    }
}

/// A feature named in the feature name table extension.
#[derive(Clone, Debug)]
pub struct FeatureName {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    pub kind: u8,
    pub bit: u8,
    pub name: String,
}

#[derive(Clone, Debug, Default)]
pub struct Extensions {
    pub backing_format: Option<String>,
    /// Present when the external data file extension is (its name may be empty).
    pub data_file: Option<String>,
    pub feature_names: Vec<FeatureName>,
    /// nb_bitmaps of the bitmaps extension.
    pub bitmaps: Option<u32>,
    /// (offset, length) of the full disk encryption header.
    pub crypto_header: Option<(u64, u64)>,
}

impl Extensions {
    /// The name the feature table gives to incompatible bit `bit`, if any.
    pub fn incompatible_name(&self, bit: u32) -> Option<&str> {
        self.feature_names
            .iter()
            .find(|f| f.kind == 0 && u32::from(f.bit) == bit)
            .map(|f| f.name.as_str())
    }
}

/// Parse the header extensions in `cluster[start..end]` (`cluster` is the start of the file, as
/// much of the header cluster as the file holds). Each extension must lie wholly inside the
/// area; an area cut short by the end of the file is a truncation.
pub fn parse_extensions(cluster: &[u8], start: u64, end: u64) -> Result<Extensions> {
    let mut ext = Extensions::default();
    let mut off = start;
    while off < end {
        if end - off < 8 {
            // Not even room for a type and a length: qemu stops here too.
            break;
        }
        if off + 8 > cluster.len() as u64 {
            return Err(Error::truncated(format!(
                "the file ends inside the qcow2 header extension at offset {off}"
            )));
        }
        let o = off as usize;
        let kind = be32(cluster, o);
        let len = u64::from(be32(cluster, o + 4));
        if kind == EXT_END {
            break;
        }
        let data_start = off + 8;
        if len > end - data_start {
            return Err(Error::corrupt(format!(
                "qcow2 header extension {kind:#010x} at offset {off} ({len} bytes) does not fit in the header cluster"
            )));
        }
        if data_start + len > cluster.len() as u64 {
            return Err(Error::truncated(format!(
                "the file ends inside the qcow2 header extension {kind:#010x} at offset {off}"
            )));
        }
        let data = &cluster[data_start as usize..(data_start + len) as usize];
        match kind {
            EXT_BACKING_FORMAT => ext.backing_format = Some(name_string(data, "backing format")?),
            EXT_DATA_FILE => ext.data_file = Some(name_string(data, "data file name")?),
            EXT_FEATURE_NAMES => {
                for entry in data.chunks_exact(48) {
                    ext.feature_names.push(FeatureName {
                        kind: entry[0],
                        bit: entry[1],
                        name: c_string(&entry[2..]),
                    });
                }
            }
            EXT_BITMAPS if data.len() >= 4 => ext.bitmaps = Some(be32(data, 0)),
            EXT_CRYPTO_HEADER if data.len() >= 16 => {
                ext.crypto_header = Some((be64(data, 0), be64(data, 8)));
            }
            _ => {} // Unknown extensions "can be safely ignored".
        }
        // Extension data is padded to a multiple of 8.
        off = data_start + len.div_ceil(8) * 8;
    }
    Ok(ext)
}

/// A string header extension: not NUL-terminated, but a C reader stops at a NUL, so we do too.
fn name_string(data: &[u8], what: &str) -> Result<String> {
    if data.len() > MAX_NAME {
        return Err(Error::corrupt(format!(
            "qcow2 {what} is {} bytes long (at most {MAX_NAME} allowed)",
            data.len()
        )));
    }
    Ok(c_string(data))
}

/// Bytes up to the first NUL as text (invalid UTF-8 replaced: names are only shown and matched).
pub fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// A name from the image as it may be shown in a one-line message: quoted, control characters
/// escaped (a name could otherwise break lines or send terminal escapes).
pub fn shown(name: &str) -> String {
    format!("{name:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn v3_header() -> Vec<u8> {
        let mut b = vec![0u8; 112];
        b[..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b[104] = 1;
        b
    }

    #[test]
    fn parses_v3_with_compression_type() {
        let h = Header::parse(&v3_header(), "x").unwrap();
        assert_eq!((h.version, h.cluster_bits, h.compression_type), (3, 16, 1));
    }

    #[test]
    fn rejects_short_and_odd_headers() {
        let b = v3_header();
        assert!(matches!(
            Header::parse(&b[..50], "x"),
            Err(Error {
                kind: ErrorKind::Truncated,
                ..
            })
        ));
        let mut odd = b.clone();
        odd[100..104].copy_from_slice(&105u32.to_be_bytes());
        assert!(matches!(
            Header::parse(&odd, "x"),
            Err(Error {
                kind: ErrorKind::Corrupt,
                ..
            })
        ));
        let mut v4 = b;
        v4[4..8].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(
            Header::parse(&v4, "x"),
            Err(Error {
                kind: ErrorKind::Unsupported,
                ..
            })
        ));
    }

    #[test]
    fn extensions_are_bounded() {
        let mut c = vec![0u8; 512];
        // backing format "qcow2", then an extension claiming more bytes than the cluster has.
        c[112..116].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
        c[116..120].copy_from_slice(&5u32.to_be_bytes());
        c[120..125].copy_from_slice(b"qcow2");
        c[128..132].copy_from_slice(&0x1234u32.to_be_bytes());
        c[132..136].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            parse_extensions(&c, 112, 512),
            Err(Error {
                kind: ErrorKind::Corrupt,
                ..
            })
        ));
        c[132..136].copy_from_slice(&0u32.to_be_bytes());
        let e = parse_extensions(&c, 112, 512).unwrap();
        assert_eq!(e.backing_format.as_deref(), Some("qcow2"));
        // The file ends before the area does.
        assert!(matches!(
            parse_extensions(&c[..124], 112, 512),
            Err(Error {
                kind: ErrorKind::Truncated,
                ..
            })
        ));
    }

    #[test]
    fn names_are_escaped_for_messages() {
        assert_eq!(shown("a\nb\x1b"), "\"a\\nb\\u{1b}\"");
        assert_eq!(c_string(b"abc\0def"), "abc");
    }
}
