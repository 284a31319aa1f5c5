//! The qcow (version 1) header (qemu `block/qcow.c` `QCowHeader`; all fields big-endian).

use crate::error::{Error, ErrorKind};
use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use zerocopy::byteorder::big_endian::{U16, U32, U64};

pub const MAGIC: &[u8; 4] = b"QFI\xfb";
pub const HEADER_LEN: u64 = 48;
/// qemu's limit on the backing file name.
pub const MAX_BACKING_NAME: u64 = 1023;
/// The L1 table is kept in memory: refuse one larger than this (covers petabytes of disk).
pub const MAX_L1_BYTES: u64 = 32 << 20;

on_disk! {
    #[derive(Clone, Copy, Debug)]
    pub struct QcowHeader: HEADER_LEN {
        0 magic: [u8; 4],
        4 version: U32,
        8 backing_file_offset: U64,
        16 backing_file_size: U32,
        20 mtime: U32,
        /// The virtual size in bytes.
        24 size: U64,
        32 cluster_bits: u8,
        33 l2_bits: u8,
        34 padding: U16,
        /// 0 none, 1 AES-CBC.
        36 crypt_method: U32,
        40 l1_table_offset: U64,
    }
}

impl QcowHeader {
    /// The header from the first bytes of a file, as far as they hold it (zeros past the end).
    pub fn read(b: &[u8]) -> QcowHeader {
        whole_fields(b)
    }

    /// qemu only keeps whole 512-byte sectors of the size.
    pub fn sector_size(&self) -> u64 {
        self.size.get() & !511
    }

    /// (offset, length) of the backing file name, when the header names one.
    pub fn backing_name(&self) -> Option<(u64, u64)> {
        let offset = self.backing_file_offset.get();
        let len = u64::from(self.backing_file_size.get());
        (offset != 0 && len != 0).then_some((offset, len))
    }

    /// L1 entries covering the virtual size (cluster_bits and l2_bits must be in range).
    pub fn l1_entries(&self) -> u64 {
        let span_bits = u32::from(self.cluster_bits) + u32::from(self.l2_bits);
        self.sector_size().div_ceil(1 << span_bits)
    }
}

/// What is wrong with a header, as data: the driver refuses the image on the first one
/// ([`Problem::error`]); detection judges them by its own rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    NoMagic,
    Version(u32),
    /// qemu needs at least 2 bytes.
    SizeTooSmall(u64),
    ClusterBits(u8),
    L2Bits(u8),
    CryptMethod(u32),
    /// The L1 table for the virtual size would be larger than [`MAX_L1_BYTES`].
    L1TooLarge {
        size: u64,
        entries: u64,
    },
    BackingNameTooLong(u64),
    BackingNameInHeader(u64),
}

impl Problem {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Problem::Version(_) | Problem::L1TooLarge { .. } => ErrorKind::Unsupported,
            _ => ErrorKind::Corrupt,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Problem::NoMagic => "not a qcow image (bad magic)".into(),
            Problem::Version(v) => format!("qcow version {v} (this reader handles version 1)"),
            Problem::SizeTooSmall(size) => {
                format!("qcow image size {size} is too small (qemu needs at least 2 bytes)")
            }
            Problem::ClusterBits(bits) => {
                format!("qcow cluster_bits {bits} is outside 9..16 (512 bytes to 64 KiB)")
            }
            Problem::L2Bits(bits) => {
                format!("qcow l2_bits {bits} is outside 6..13 (L2 tables of 512 bytes to 64 KiB)")
            }
            Problem::CryptMethod(m) => {
                format!("unknown qcow encryption method {m} (0 none, 1 AES)")
            }
            Problem::L1TooLarge { size, entries } => format!(
                "qcow virtual size {size} needs an L1 table of {entries} entries (at most {} supported)",
                MAX_L1_BYTES / 8
            ),
            Problem::BackingNameTooLong(len) => {
                format!("qcow backing file name is {len} bytes long (at most {MAX_BACKING_NAME})")
            }
            Problem::BackingNameInHeader(offset) => {
                format!("qcow backing file name at offset {offset} overlaps the header")
            }
        }
    }

    pub fn error(&self) -> Error {
        Error::new(self.kind(), self.message())
    }
}

/// Parse the header from the first bytes of a file, collecting every problem in the order
/// qemu checks them (a short buffer reads as zeros past its end).
pub fn parse(b: &[u8]) -> (QcowHeader, Vec<Problem>) {
    let h = QcowHeader::read(b);
    let mut problems = vec![];
    if &h.magic != MAGIC {
        problems.push(Problem::NoMagic);
    }
    if h.version.get() != 1 {
        problems.push(Problem::Version(h.version.get()));
    }
    if h.size.get() <= 1 {
        problems.push(Problem::SizeTooSmall(h.size.get()));
    }
    // qemu's rules: clusters of 512 bytes to 64 KiB, L2 tables of 512 bytes to 64 KiB
    // whatever the cluster size (with a backing file qemu-img writes 512-byte clusters and
    // 32 KiB L2 tables).
    let cluster_bits_ok = (9..=16).contains(&h.cluster_bits);
    if !cluster_bits_ok {
        problems.push(Problem::ClusterBits(h.cluster_bits));
    }
    let l2_bits_ok = (6..=13).contains(&h.l2_bits);
    if !l2_bits_ok {
        problems.push(Problem::L2Bits(h.l2_bits));
    }
    let crypt_method = h.crypt_method.get();
    if crypt_method > 1 {
        problems.push(Problem::CryptMethod(crypt_method));
    }
    if cluster_bits_ok && l2_bits_ok && h.l1_entries() * 8 > MAX_L1_BYTES {
        problems.push(Problem::L1TooLarge {
            size: h.sector_size(),
            entries: h.l1_entries(),
        });
    }
    // The backing file name: at most 1023 bytes, outside the header.
    if let Some((offset, len)) = h.backing_name() {
        if len > MAX_BACKING_NAME {
            problems.push(Problem::BackingNameTooLong(len));
        } else if offset < HEADER_LEN {
            problems.push(Problem::BackingNameInHeader(offset));
        }
    }
    (h, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;
    use zerocopy::IntoBytes;

    fn header() -> QcowHeader {
        let mut h = QcowHeader::new_zeroed();
        h.magic = *MAGIC;
        h.version.set(1);
        h.size.set(1 << 20);
        h.cluster_bits = 12;
        h.l2_bits = 9;
        h
    }

    #[test]
    fn a_good_header_has_no_problems() {
        let (h, problems) = parse(header().as_bytes());
        assert_eq!(problems, vec![]);
        assert_eq!((h.sector_size(), h.l1_entries()), (1 << 20, 1));
    }

    #[test]
    fn problems_come_in_qemus_order() {
        let mut h = header();
        h.version.set(2);
        h.l2_bits = 20;
        h.crypt_method.set(7);
        h.backing_file_offset.set(8);
        h.backing_file_size.set(4);
        let (_, problems) = parse(h.as_bytes());
        assert_eq!(
            problems,
            vec![
                Problem::Version(2),
                Problem::L2Bits(20),
                Problem::CryptMethod(7),
                Problem::BackingNameInHeader(8),
            ]
        );
        assert_eq!(
            problems[0].error().to_string(),
            "not supported: qcow version 2 (this reader handles version 1)"
        );
    }

    #[test]
    fn a_field_cut_by_the_end_reads_as_zero() {
        let mut h = header();
        h.crypt_method.set(0x0100_0000);
        let bytes = h.as_bytes();
        assert_eq!(QcowHeader::read(&bytes[..39]).crypt_method.get(), 0);
        assert_eq!(
            QcowHeader::read(&bytes[..40]).crypt_method.get(),
            0x0100_0000
        );
        assert_eq!(QcowHeader::read(&bytes[..33]).cluster_bits, 12);
    }
}
