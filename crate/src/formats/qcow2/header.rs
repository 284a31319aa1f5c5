//! The qcow2 header and its extensions (qcow2.txt "Header", "Header extensions").
//!
//! Pure parsing over bytes already read: the caller reads the header cluster (bounded by the
//! cluster size, at most 2 MiB) and these functions never index outside it.

use crate::error::{Error, ErrorKind, Result};
use crate::formats::common::bytes::{be32, be64, whole_fields};
use crate::formats::common::layout::on_disk;
use core::mem::size_of;
use zerocopy::byteorder::big_endian::{U32, U64};

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
pub(crate) const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
pub(crate) const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_CRYPTO_HEADER: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// The spec limits the backing file name to 1023 bytes; the same bound serves for the other
/// strings of the header cluster (they only name things).
pub const MAX_NAME: usize = 1023;

on_disk! {
    /// The fixed header as it lies on disk (qcow2.txt "Header"): version 2 has the first 72
    /// bytes, version 3 at least 104; `compression_type` is the first of the "Additional
    /// fields", present when header_length covers it, padded to 112 bytes as qemu writes it.
    #[derive(Clone, Copy, Debug)]
    pub struct Qcow2Header: 112 {
        0 magic: [u8; 4],
        4 version: U32,
        8 backing_file_offset: U64,
        16 backing_file_size: U32,
        20 cluster_bits: U32,
        24 size: U64,
        32 crypt_method: U32,
        36 l1_size: U32,
        40 l1_table_offset: U64,
        48 refcount_table_offset: U64,
        56 refcount_table_clusters: U32,
        60 nb_snapshots: U32,
        64 snapshots_offset: U64,
        72 incompatible_features: U64,
        80 compatible_features: U64,
        88 autoclear_features: U64,
        96 refcount_order: U32,
        100 header_length: U32,
        104 compression_type: u8,
        105 padding: [u8; 7],
    }
}

const _: () = assert!(Header::PREFIX == size_of::<Qcow2Header>());

impl Qcow2Header {
    /// The header from the first bytes of a file, as far as they hold it (zeros past the end;
    /// a buffer that ends inside a field is cut back to the field's start).
    pub fn read(b: &[u8]) -> Qcow2Header {
        whole_fields(b)
    }
}

/// What is wrong with a fixed header, as data: the driver refuses the image on the first one
/// ([`Problem::error`]); detection judges them by its own rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Shorter than 8 bytes, or another magic.
    NoMagic,
    UnknownVersion(u32),
    /// The file ends inside the fixed header of `version` (`have` of `need` bytes).
    Truncated {
        version: u32,
        have: usize,
        need: usize,
    },
    /// A version 3 header_length below 104 or not a multiple of 8.
    HeaderLength(u32),
    /// header_length covers the compression type but the file ends before it.
    CompressionTypeCut,
}

impl Problem {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Problem::NoMagic => ErrorKind::NotAnImage,
            Problem::UnknownVersion(_) => ErrorKind::Unsupported,
            Problem::Truncated { .. } | Problem::CompressionTypeCut => ErrorKind::Truncated,
            Problem::HeaderLength(_) => ErrorKind::Corrupt,
        }
    }

    /// The driver's error for this problem in file `file_name`.
    pub fn error(&self, file_name: &str) -> Error {
        let message = match self {
            Problem::NoMagic => format!("{file_name} has no qcow2 magic"),
            Problem::UnknownVersion(version) => {
                format!("qcow2 version {version} (only versions 2 and 3 exist)")
            }
            Problem::Truncated {
                version,
                have,
                need,
            } => format!(
                "{file_name} ends inside the qcow2 version {version} header ({have} of {need} bytes)"
            ),
            Problem::HeaderLength(len) => {
                format!("qcow2 header length {len} (version 3 needs a multiple of 8, at least 104)")
            }
            Problem::CompressionTypeCut => format!("{file_name} ends inside the qcow2 header"),
        };
        Error::new(self.kind(), message)
    }
}

/// Parse the fixed header from the first bytes of a file (`b` holds what the file has of them;
/// only the first [`Header::PREFIX`] are looked at). Checks the magic, the version and the
/// header length; the geometry is checked by the driver. Past a problem that leaves the rest
/// meaningless (unknown version, truncation), no further problems are looked for.
pub fn parse(b: &[u8]) -> (Header, Vec<Problem>) {
    let raw = Qcow2Header::read(b);
    let mut problems = vec![];
    if b.len() < 8 || &raw.magic != MAGIC {
        problems.push(Problem::NoMagic);
    }
    let version = raw.version.get();
    let mut h = Header {
        version,
        backing_file_offset: raw.backing_file_offset.get(),
        backing_file_size: raw.backing_file_size.get(),
        cluster_bits: raw.cluster_bits.get(),
        size: raw.size.get(),
        crypt_method: raw.crypt_method.get(),
        l1_size: raw.l1_size.get(),
        l1_table_offset: raw.l1_table_offset.get(),
        refcount_table_offset: raw.refcount_table_offset.get(),
        refcount_table_clusters: raw.refcount_table_clusters.get(),
        nb_snapshots: raw.nb_snapshots.get(),
        snapshots_offset: raw.snapshots_offset.get(),
        // Version 2 has none of the following; their defaults are the spec's.
        incompatible: 0,
        compatible: 0,
        autoclear: 0,
        refcount_order: 4,
        header_length: V2_HEADER_LEN,
        compression_type: 0,
    };
    if version >= 3 {
        // An unknown later version is read as version 3 (detection sizes it so).
        h.incompatible = raw.incompatible_features.get();
        h.compatible = raw.compatible_features.get();
        h.autoclear = raw.autoclear_features.get();
        h.refcount_order = raw.refcount_order.get();
        h.header_length = raw.header_length.get();
    }
    if version != 2 && version != 3 {
        problems.push(Problem::UnknownVersion(version));
        return (h, problems);
    }
    let need = h.fixed_length() as usize;
    if b.len() < need {
        problems.push(Problem::Truncated {
            version,
            have: b.len(),
            need,
        });
        return (h, problems);
    }
    if version == 3 {
        if h.header_length < V3_MIN_HEADER_LEN || !h.header_length.is_multiple_of(8) {
            problems.push(Problem::HeaderLength(h.header_length));
        } else if h.header_length > V3_MIN_HEADER_LEN {
            // "Additional fields": a field is present only when header_length covers it.
            if b.len() > V3_MIN_HEADER_LEN as usize {
                h.compression_type = raw.compression_type;
            } else {
                problems.push(Problem::CompressionTypeCut);
            }
        }
    }
    (h, problems)
}

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
    /// How many bytes to read to parse the fixed header: all of [`Qcow2Header`], version 3
    /// up to its compression type, padded to 8.
    pub const PREFIX: usize = 112;

    /// The driver's parse: the header, or the error of its first problem.
    pub fn parse(b: &[u8], file_name: &str) -> Result<Header> {
        let (h, problems) = parse(b);
        match problems.first() {
            Some(p) => Err(p.error(file_name)),
            None => Ok(h),
        }
    }

    /// The fixed part of this version's header: 72 bytes for version 2, 104 from version 3.
    pub fn fixed_length(&self) -> u32 {
        if self.version >= 3 {
            V3_MIN_HEADER_LEN
        } else {
            V2_HEADER_LEN
        }
    }

    /// The header length the header states, never below its version's fixed part.
    pub fn stated_length(&self) -> u32 {
        self.header_length.max(self.fixed_length())
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
mod tests;
