//! The steps of opening a qcow2 image: header sanity, feature bits, compression type,
//! encryption, L1 and refcount table bounds, the active L1 table and its cheap damage check,
//! and the snapshot table. Each step either fails the open or records its problems.

use super::Blocked;
use super::header::{self, Extensions, Header, shown};
use super::layout::{MAX_L1_BYTES, MAX_REFTABLE_BYTES};
use super::map::l2_table_offset;
use super::snapshot::Snapshot;
use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::formats::common::scan::message;
use crate::report::{Finding, Severity};
use crate::source::{Source, check_range, read_vec};

/// What opening found: findings, and the first reason the data cannot be read.
#[derive(Default)]
pub(super) struct Problems {
    pub(super) findings: Vec<Finding>,
    pub(super) blocked: Option<Blocked>,
}

impl Problems {
    /// Block reading for `b` unless an earlier reason already does.
    fn block(&mut self, b: Blocked) {
        self.blocked.get_or_insert(b);
    }
}

/// Read the fixed header (qcow2.txt "Header") and check the fields the rest of opening relies
/// on: cluster size, header length, refcount order, extended L2 entries.
pub(super) async fn read_header(src: &dyn Source, name: &str) -> Result<Header> {
    let flen = src.len();
    let prefix = read_vec(src, 0, flen.min(Header::PREFIX as u64), "qcow2 header").await?;
    let h = Header::parse(&prefix, name)?;
    if h.cluster_bits < 9 {
        return Err(Error::corrupt(format!(
            "qcow2 cluster_bits {} (clusters must be at least 512 bytes)",
            h.cluster_bits
        )));
    }
    if h.cluster_bits > 21 {
        return Err(Error::unsupported(format!(
            "qcow2 cluster_bits {} (clusters larger than 2 MiB are not supported)",
            h.cluster_bits
        )));
    }
    let cs = h.cluster_size();
    if u64::from(h.header_length) > cs {
        return Err(Error::corrupt(format!(
            "qcow2 header length {} exceeds the {cs}-byte cluster",
            h.header_length
        )));
    }
    if h.refcount_order > 6 {
        return Err(Error::corrupt(format!(
            "qcow2 refcount_order {} (at most 6, i.e. 64-bit refcounts)",
            h.refcount_order
        )));
    }
    let extended_l2 = h.incompatible & header::INCOMPAT_EXTL2 != 0;
    if extended_l2 && h.cluster_bits < 14 {
        return Err(Error::corrupt(format!(
            "qcow2 extended L2 entries need clusters of at least 16 KiB, not {cs} bytes"
        )));
    }

    Ok(h)
}

/// Incompatible features (qcow2.txt bytes 72-79): unknown bits forbid reading.
pub(super) fn check_features(h: &Header, ext: &Extensions, p: &mut Problems) {
    let unknown = h.incompatible & !header::INCOMPAT_KNOWN;
    if unknown != 0 {
        let names: Vec<String> = (0..64)
            .filter(|b| unknown & (1 << b) != 0)
            .map(|b| match ext.incompatible_name(b) {
                Some(n) => format!("bit {b} ({})", shown(n)),
                None => format!("bit {b}"),
            })
            .collect();
        let msg = format!(
            "qcow2 image uses unknown incompatible features: {}",
            names.join(", ")
        );
        p.findings.push(Finding::new(
            FindingCode::UnknownFeature,
            Severity::Critical,
            &msg,
        ));
        p.block(Blocked::Unsupported(msg));
    }
    if h.incompatible & header::INCOMPAT_CORRUPT != 0 {
        // qemu still opens such an image read-only, so we read it too, but say so loudly.
        p.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Critical,
            "the qcow2 corrupt bit is set: qemu found inconsistent metadata in this image",
        ));
    }
    if h.incompatible & header::INCOMPAT_DIRTY != 0 {
        p.findings.push(Finding::new(
            FindingCode::Dirty,
            Severity::Warning,
            "the qcow2 dirty bit is set (lazy refcounts not flushed): refcounts may be stale until qemu-img check -r repairs them; the data is readable",
        ));
    }
    if h.incompatible & header::INCOMPAT_DATA_FILE != 0 {
        let what = match &ext.data_file {
            Some(n) if !n.is_empty() => format!(" {}", shown(n)),
            _ => String::new(),
        };
        let msg = format!("guest data is stored in an external data file{what}, not in this image");
        p.findings.push(Finding::new(
            FindingCode::DataFile,
            Severity::Critical,
            &msg,
        ));
        p.block(Blocked::Unsupported(msg));
    }
}

/// The compression type (qcow2.txt "Additional fields", byte 104).
pub(super) fn compression(h: &Header, p: &mut Problems) -> Result<Codec> {
    let has_type_bit = h.incompatible & header::INCOMPAT_COMPRESSION != 0;
    let codec = match (has_type_bit, h.compression_type) {
        (false, 0) => Codec::Deflate,
        (false, t) => {
            return Err(Error::corrupt(format!(
                "qcow2 compression_type {t} is set without the compression type feature bit"
            )));
        }
        (true, 0) => {
            return Err(Error::corrupt(
                "qcow2 compression type feature bit is set but compression_type is zlib or absent",
            ));
        }
        (true, 1) => Codec::Zstd,
        (true, t) => {
            let msg = format!("qcow2 compression type {t} is unknown");
            p.findings.push(Finding::new(
                FindingCode::UnknownFeature,
                Severity::Critical,
                &msg,
            ));
            p.block(Blocked::Unsupported(msg));
            Codec::Deflate
        }
    };

    Ok(codec)
}

/// Encryption. Critical rather than a warning: the guest data is ciphertext, so neither
/// vmdisk nor a cloud importer can read or boot it without the key being configured.
pub(super) fn check_encryption(h: &Header, p: &mut Problems) {
    match h.crypt_method {
        0 => {}
        m => {
            let kind = match m {
                1 => "AES-CBC (legacy qcow2 encryption)".to_string(),
                2 => "LUKS".to_string(),
                m => format!("unknown method {m}"),
            };
            let msg = format!("the guest data is encrypted with {kind}");
            p.findings.push(Finding::new(
                FindingCode::Encrypted,
                Severity::Critical,
                &msg,
            ));
            p.block(Blocked::Unsupported(msg));
        }
    }
}

/// Geometry (qcow2.txt "Cluster mapping"): how many L1 entries the virtual size needs, checked
/// against the L1 table the header gives.
pub(super) fn l1_entries(src: &dyn Source, h: &Header, span_bits: u32) -> Result<u64> {
    let cs = h.cluster_size();
    let needed = h.size.div_ceil(1 << span_bits);
    let max_entries = MAX_L1_BYTES / 8;
    if needed > max_entries {
        return Err(Error::unsupported(format!(
            "qcow2 virtual size {} needs {needed} L1 entries with {cs}-byte clusters (qemu's limit is {max_entries})",
            h.size
        )));
    }
    if u64::from(h.l1_size) > max_entries {
        return Err(Error::corrupt(format!(
            "qcow2 L1 table of {} entries exceeds qemu's limit of {max_entries}",
            h.l1_size
        )));
    }
    if u64::from(h.l1_size) < needed {
        return Err(Error::corrupt(format!(
            "qcow2 L1 table has {} entries but the virtual size {} needs {needed}",
            h.l1_size, h.size
        )));
    }
    if h.l1_size > 0 {
        check_table(
            src,
            "L1 table",
            h.l1_table_offset,
            u64::from(h.l1_size) * 8,
            cs,
        )?;
    }
    Ok(needed)
}

/// The refcount table is not needed to read, but qemu refuses an image without a valid one,
/// and one past the end of the file is a sure sign of truncation.
pub(super) fn check_refcount_table(src: &dyn Source, h: &Header) -> Result<()> {
    let cs = h.cluster_size();
    let reftable_bytes = u64::from(h.refcount_table_clusters) * cs;
    if h.refcount_table_clusters == 0 {
        return Err(Error::corrupt("qcow2 image has no refcount table"));
    }
    if reftable_bytes > MAX_REFTABLE_BYTES {
        return Err(Error::corrupt(format!(
            "qcow2 refcount table of {reftable_bytes} bytes exceeds qemu's limit of {MAX_REFTABLE_BYTES}"
        )));
    }
    check_table(
        src,
        "refcount table",
        h.refcount_table_offset,
        reftable_bytes,
        cs,
    )?;

    Ok(())
}

/// The active L1 table: only the `needed` entries covering the virtual size are kept.
pub(super) async fn read_l1(src: &dyn Source, h: &Header, needed: u64) -> Result<Vec<u64>> {
    let l1_bytes = if needed == 0 {
        vec![]
    } else {
        read_vec(src, h.l1_table_offset, needed * 8, "qcow2 L1 table").await?
    };
    let l1: Vec<u64> = l1_bytes
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok(l1)
}

/// Cheap damage check: every L2 table must be aligned and inside the file. A truncated file
/// shows up here, before a conversion starts.
pub(super) fn check_l2_tables(l1: &[u64], cs: u64, flen: u64, p: &mut Problems) {
    for (i, &entry) in l1.iter().enumerate() {
        if let Err(e) = l2_table_offset(entry, i, cs, flen) {
            let (code, b) = match e {
                Error {
                    kind: ErrorKind::Truncated,
                    message: m,
                } => (FindingCode::Truncated, Blocked::Truncated(m)),
                other => (FindingCode::Corrupt, Blocked::Corrupt(message(other))),
            };
            let msg = match &b {
                Blocked::Truncated(m) | Blocked::Corrupt(m) | Blocked::Unsupported(m) => m.clone(),
            };
            p.findings.push(Finding::new(code, Severity::Critical, msg));
            p.block(b);
            break;
        }
    }
}

/// Snapshots (qcow2.txt "Snapshots") are listed, never read: a damaged L1 reference is a
/// finding.
pub(super) fn check_snapshots(src: &dyn Source, snapshots: &[Snapshot], cs: u64, p: &mut Problems) {
    for (i, s) in snapshots.iter().enumerate() {
        let bytes = u64::from(s.l1_size) * 8;
        let bad = if bytes > MAX_L1_BYTES {
            Some(format!(
                "its L1 table of {} entries is too large",
                s.l1_size
            ))
        } else if bytes > 0 && (s.l1_table_offset == 0 || !s.l1_table_offset.is_multiple_of(cs)) {
            Some(format!(
                "its L1 table offset {} is not cluster aligned",
                s.l1_table_offset
            ))
        } else if check_range(src, s.l1_table_offset, bytes, "").is_err() {
            Some(format!(
                "its L1 table at offset {} lies past the end of the file",
                s.l1_table_offset
            ))
        } else {
            None
        };
        if let Some(why) = bad {
            p.findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("snapshot {i} ({}): {why}", shown(&s.name)),
            ));
        }
    }
}

/// A table of `bytes` bytes at `offset`: cluster aligned, not the header, inside the file.
fn check_table(src: &dyn Source, what: &str, offset: u64, bytes: u64, cs: u64) -> Result<()> {
    if !offset.is_multiple_of(cs) {
        return Err(Error::corrupt(format!(
            "qcow2 {what} offset {offset} is not aligned to the {cs}-byte cluster"
        )));
    }
    if offset == 0 {
        return Err(Error::corrupt(format!(
            "qcow2 {what} is at offset 0, over the header"
        )));
    }
    check_range(src, offset, bytes, &format!("qcow2 {what}"))
}
