//! The QED header (qemu `docs/interop/qed_spec.txt` "Header"; all fields little-endian).

use crate::error::{Error, ErrorKind};
use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use zerocopy::little_endian::{U32, U64};

pub const MAGIC: &[u8; 4] = b"QED\0";
pub const HEADER_LEN: u64 = 64;
pub const F_BACKING_FILE: u64 = 1;
pub const F_NEED_CHECK: u64 = 2;
pub const F_BACKING_NO_PROBE: u64 = 4;
pub const F_KNOWN: u64 = 7;
pub const MAX_BACKING_NAME: u64 = 1023;

on_disk! {
    #[derive(Clone, Copy, Debug)]
    pub struct QedHeader: HEADER_LEN {
        0 magic: [u8; 4],
        /// In bytes: a power of two in 4 KiB..64 MiB.
        4 cluster_size: U32,
        /// In clusters: a power of two in 1..16.
        8 table_size: U32,
        /// In clusters.
        12 header_size: U32,
        16 features: U64,
        24 compat_features: U64,
        32 autoclear_features: U64,
        40 l1_table_offset: U64,
        48 image_size: U64,
        56 backing_filename_offset: U32,
        60 backing_filename_size: U32,
    }
}

impl QedHeader {
    /// The header from the first bytes of a file, as far as they hold it (zeros past the end).
    pub fn read(b: &[u8]) -> QedHeader {
        whole_fields(b)
    }

    /// The header area in bytes (header_size clusters).
    pub fn header_bytes(&self) -> u64 {
        u64::from(self.header_size.get()) * u64::from(self.cluster_size.get())
    }

    /// (offset, length) of the backing file name, when the features and the header name one.
    pub fn backing_name(&self) -> Option<(u64, u64)> {
        let offset = u64::from(self.backing_filename_offset.get());
        let len = u64::from(self.backing_filename_size.get());
        (self.features.get() & F_BACKING_FILE != 0 && offset != 0 && len != 0)
            .then_some((offset, len))
    }
}

/// What is wrong with a header, as data: the driver refuses the image on the first one
/// ([`Problem::error`]); detection judges them by its own rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    NoMagic,
    ClusterSize(u32),
    TableSize(u32),
    /// No header clusters, or a header area past 4 GiB.
    HeaderSize(u32),
    UnknownFeatures(u64),
    /// More than the tables can address.
    ImageSizeTooLarge(u64),
    ImageSizeUnaligned(u64),
    BackingNameTooLong(u64),
    /// The name must lie within the header clusters, after the header.
    BackingNameOutside {
        offset: u64,
        len: u64,
    },
}

impl Problem {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Problem::UnknownFeatures(_) => ErrorKind::Unsupported,
            _ => ErrorKind::Corrupt,
        }
    }

    /// Whether the problem is with the backing file name (the driver checks it after the L1
    /// table, as qemu does).
    pub fn is_backing_name(&self) -> bool {
        matches!(
            self,
            Problem::BackingNameTooLong(_) | Problem::BackingNameOutside { .. }
        )
    }

    pub fn message(&self) -> String {
        match self {
            Problem::NoMagic => "not a QED image (bad magic)".into(),
            Problem::ClusterSize(cs) => {
                format!("QED cluster size {cs} is not a power of two in 4 KiB..64 MiB")
            }
            Problem::TableSize(ts) => {
                format!("QED table size {ts} is not a power of two in 1..16 clusters")
            }
            Problem::HeaderSize(hs) => format!("QED header size of {hs} clusters is out of range"),
            Problem::UnknownFeatures(bits) => {
                format!("QED image uses unknown feature bits {bits:#x}")
            }
            Problem::ImageSizeTooLarge(size) => {
                format!("QED image size {size} exceeds what its tables can address")
            }
            Problem::ImageSizeUnaligned(size) => {
                format!("QED image size {size} is not a multiple of 512")
            }
            Problem::BackingNameTooLong(len) => {
                format!("QED backing file name is {len} bytes long (at most {MAX_BACKING_NAME})")
            }
            Problem::BackingNameOutside { offset, len } => format!(
                "QED backing file name at offset {offset} (+{len} bytes) is not inside the header"
            ),
        }
    }

    pub fn error(&self) -> Error {
        Error::new(self.kind(), self.message())
    }
}

/// Parse the header from the first bytes of a file, collecting every problem in the order
/// qemu checks them (a short buffer reads as zeros past its end). The geometry checks need
/// the cluster and table sizes in range, so a bad one of those ends the geometry checks.
pub fn parse(b: &[u8]) -> (QedHeader, Vec<Problem>) {
    let h = QedHeader::read(b);
    let mut problems = vec![];
    if &h.magic != MAGIC {
        problems.push(Problem::NoMagic);
    }
    let cluster_size = h.cluster_size.get();
    let cluster_ok = cluster_size.is_power_of_two() && (4096..=64 << 20).contains(&cluster_size);
    if !cluster_ok {
        problems.push(Problem::ClusterSize(cluster_size));
    }
    let table_size = h.table_size.get();
    let table_ok = table_size.is_power_of_two() && table_size <= 16;
    if !table_ok {
        problems.push(Problem::TableSize(table_size));
    }
    let header_size = h.header_size.get();
    if header_size == 0 || h.header_bytes() > u64::from(u32::MAX) {
        problems.push(Problem::HeaderSize(header_size));
    }
    let unknown = h.features.get() & !F_KNOWN;
    if unknown != 0 {
        problems.push(Problem::UnknownFeatures(unknown));
    }
    if cluster_ok && table_ok {
        let cluster_size = u64::from(cluster_size);
        let table_entries = u64::from(table_size) * cluster_size / 8;
        // Spec: image_size <= entries^2 * cluster_size, and a multiple of 512.
        let max_size = table_entries
            .checked_mul(table_entries)
            .and_then(|n| n.checked_mul(cluster_size));
        let size = h.image_size.get();
        if max_size.is_none_or(|m| size > m) {
            problems.push(Problem::ImageSizeTooLarge(size));
        }
        if !size.is_multiple_of(512) {
            problems.push(Problem::ImageSizeUnaligned(size));
        }
    }
    if h.features.get() & F_BACKING_FILE != 0 {
        let offset = u64::from(h.backing_filename_offset.get());
        let len = u64::from(h.backing_filename_size.get());
        if len > MAX_BACKING_NAME {
            problems.push(Problem::BackingNameTooLong(len));
        } else if offset < HEADER_LEN || offset + len > h.header_bytes() {
            problems.push(Problem::BackingNameOutside { offset, len });
        }
    }
    (h, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;
    use zerocopy::IntoBytes;

    fn header() -> QedHeader {
        let mut h = QedHeader::new_zeroed();
        h.magic = *MAGIC;
        h.cluster_size.set(65536);
        h.table_size.set(4);
        h.header_size.set(1);
        h.image_size.set(1 << 30);
        h
    }

    #[test]
    fn a_good_header_has_no_problems() {
        let (h, problems) = parse(header().as_bytes());
        assert_eq!(problems, vec![]);
        assert_eq!((h.header_bytes(), h.backing_name()), (65536, None));
    }

    #[test]
    fn problems_come_in_qemus_order() {
        let mut h = header();
        h.table_size.set(3);
        h.header_size.set(0);
        h.features.set(F_BACKING_FILE | 0x10);
        h.backing_filename_size.set(2000);
        let (_, problems) = parse(h.as_bytes());
        assert_eq!(
            problems,
            vec![
                Problem::TableSize(3),
                Problem::HeaderSize(0),
                Problem::UnknownFeatures(0x10),
                Problem::BackingNameTooLong(2000),
            ]
        );
        assert!(problems[3].is_backing_name());
        assert_eq!(problems[2].error().kind, ErrorKind::Unsupported);
    }

    #[test]
    fn a_field_cut_by_the_end_reads_as_zero() {
        let mut h = header();
        h.features.set(F_BACKING_FILE);
        h.backing_filename_offset.set(64);
        h.backing_filename_size.set(0x20);
        let bytes = h.as_bytes();
        assert_eq!(QedHeader::read(&bytes[..61]).backing_name(), None);
        assert_eq!(
            QedHeader::read(&bytes[..64]).backing_name(),
            Some((64, 0x20))
        );
    }
}
