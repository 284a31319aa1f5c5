//! The qcow2 consistency check, with qemu-img check's semantics (qemu block/qcow2-refcount.c
//! `qcow2_check_refcounts`): rebuild every host cluster's use from the metadata (header, L1
//! and L2 tables, snapshots' tables, the snapshot table, the refcount table and blocks, data
//! and compressed clusters, persistent bitmaps), then compare with the stored refcounts. A stored count above the
//! use is a leak, below it a corruption; so is a refcount block used twice or a table
//! entry that is unaligned or points a cluster or more past the end of the file. Unlike
//! qemu, every compressed cluster is also decoded (it must fill exactly one cluster).

use super::Progress;
use super::qcow2_bitmaps;
use super::qcow2_l2::{L2Walk, Layer};
use super::qcow2_snapshots;
use super::refcounts::{StoredRefcounts, UsedCounts};
use super::result::{CheckResult, Kind};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::formats::qcow2::header::{self, Header};
use crate::formats::qcow2::layout::{FLAG_COPIED, MAX_L1_BYTES, MAX_REFTABLE_BYTES, OFFSET_MASK};
use crate::source::{Source, read_vec};

/// Bits 9-55 of an L1 entry: the L2 table's offset (qcow2.txt "Cluster mapping").
const L1E_OFFSET_MASK: u64 = OFFSET_MASK;

/// Check the qcow2 image `src` into `r`. An error means the check could not run.
pub async fn check(
    src: &dyn Source,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let flen = src.len();
    let prefix = read_vec(src, 0, flen.min(Header::PREFIX as u64), "qcow2 header").await?;
    let h = Header::parse(&prefix, src.name())?;
    if !(9..=21).contains(&h.cluster_bits) || h.refcount_order > 6 {
        return Err(Error::unsupported(format!(
            "qcow2 cluster_bits {} / refcount_order {} cannot be checked",
            h.cluster_bits, h.refcount_order
        )));
    }
    let cs = h.cluster_size();
    let head = read_vec(src, 0, flen.min(cs), "qcow2 header cluster").await?;
    let ext = header::parse_extensions(&head, u64::from(h.header_length), h.extensions_end())?;
    let extended = h.incompatible & header::INCOMPAT_EXTL2 != 0;
    let codec = match h.compression_type {
        0 => Codec::Deflate,
        1 => Codec::Zstd,
        t => return Err(Error::unsupported(format!("qcow2 compression type {t}"))),
    };
    let mut used = UsedCounts::new(flen, h.cluster_bits, 1 << h.refcount_order)?;
    r.total_clusters = h.size.div_ceil(cs);

    let snapshots = qcow2_snapshots::read(src, h.snapshots_offset, h.nb_snapshots).await?;
    let reftable = read_reftable(src, &h).await?;
    let mut walk = L2Walk::new(src, &h, extended, codec);
    let active_tables = read_l1(src, h.l1_table_offset, h.l1_size, "active L1 table").await?;
    let l2_count = active_tables
        .iter()
        .filter(|e| **e & L1E_OFFSET_MASK != 0)
        .count() as u64;
    let blocks = used
        .clusters()
        .div_ceil(1 << (h.cluster_bits + 3 - h.refcount_order));
    progress.set_total(l2_count * (2 + snapshots.0.len() as u64) + blocks);

    // What uses clusters, in qemu's order (`calculate_refcounts`).
    used.add(0, cs, "the header", r);
    used.add(
        h.l1_table_offset,
        u64::from(h.l1_size) * 8,
        "the active L1 table",
        r,
    );
    walk_l1(
        &mut walk,
        &active_tables,
        Layer::Active,
        &mut used,
        r,
        progress,
    )
    .await?;
    for (i, s) in snapshots.0.iter().enumerate() {
        let what = format!("snapshot {}'s L1 table", i + 1);
        let table = read_l1(src, s.l1_table_offset, s.l1_size, &what).await?;
        used.add(s.l1_table_offset, u64::from(s.l1_size) * 8, &what, r);
        walk_l1(&mut walk, &table, Layer::Snapshot, &mut used, r, progress).await?;
    }
    used.add(h.snapshots_offset, snapshots.1, "the snapshot table", r);
    let reftable_bytes = u64::from(h.refcount_table_clusters) * cs;
    used.add(
        h.refcount_table_offset,
        reftable_bytes,
        "the refcount table",
        r,
    );
    if let Some((offset, len)) = ext.crypto_header {
        used.add(offset, len, "the encryption header", r);
    }
    qcow2_bitmaps::count(src, &head, &h, &mut used, r).await;
    count_refblocks(&reftable, cs, &mut used, r);

    let mut stored = StoredRefcounts::new(reftable, h.cluster_bits, h.refcount_order);
    let highest = compare(src, &used, &mut stored, r, progress).await?;
    check_copied(&mut walk, &active_tables, &mut stored, r, progress).await?;
    r.image_end_offset = (highest + 1) * cs;
    Ok(())
}

/// An L1 table (the active one or a snapshot's), bounded by qemu's limit and the file.
async fn read_l1(src: &dyn Source, offset: u64, entries: u32, what: &str) -> Result<Vec<u64>> {
    let bytes = u64::from(entries) * 8;
    if bytes > MAX_L1_BYTES {
        return Err(Error::corrupt(format!(
            "qcow2 {what} has {entries} entries (more than qemu allows)"
        )));
    }
    let data = read_vec(src, offset, bytes, what).await?;
    Ok(words(&data))
}

async fn read_reftable(src: &dyn Source, h: &Header) -> Result<Vec<u64>> {
    let bytes = u64::from(h.refcount_table_clusters) << h.cluster_bits;
    if bytes > MAX_REFTABLE_BYTES {
        return Err(Error::corrupt(format!(
            "qcow2 refcount table of {} clusters (more than qemu allows)",
            h.refcount_table_clusters
        )));
    }
    let data = read_vec(src, h.refcount_table_offset, bytes, "qcow2 refcount table").await?;
    Ok(words(&data))
}

pub(super) fn words(data: &[u8]) -> Vec<u64> {
    data.chunks_exact(8)
        .map(|w| u64::from_be_bytes(w.try_into().expect("8 bytes")))
        .collect()
}

/// Count the L2 tables of one L1 table and everything they use (`check_refcounts_l1`).
async fn walk_l1(
    walk: &mut L2Walk<'_>,
    l1: &[u64],
    layer: Layer,
    used: &mut UsedCounts,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let cs = walk.cluster_size();
    for (index, &entry) in l1.iter().enumerate() {
        let l2 = entry & L1E_OFFSET_MASK;
        if l2 == 0 {
            continue;
        }
        used.add(l2, cs, "an L2 table", r);
        if l2 & (cs - 1) != 0 {
            r.note(
                Kind::Corruption,
                format!("L1 entry {index}: L2 table offset {l2:#x} is not cluster aligned"),
            );
        }
        walk.count(index as u64, l2, layer, used, r).await;
        progress.step(1)?;
    }
    Ok(())
}

/// Refcount blocks: aligned, inside the file, used once (`check_refblocks`).
fn count_refblocks(reftable: &[u64], cs: u64, used: &mut UsedCounts, r: &mut CheckResult) {
    for (i, &offset) in reftable.iter().enumerate() {
        if offset & (cs - 1) != 0 {
            r.note(
                Kind::Corruption,
                format!("refcount block {i} at {offset:#x} is not cluster aligned"),
            );
            continue;
        }
        let cluster = offset / cs;
        if cluster >= used.clusters() {
            r.note(
                Kind::Corruption,
                format!("refcount block {i} at {offset:#x} lies outside the file"),
            );
            continue;
        }
        if offset != 0 {
            used.add(offset, cs, "a refcount block", r);
            let n = used.get(cluster);
            if n != 1 {
                r.note(
                    Kind::Corruption,
                    format!("refcount block {i} at {offset:#x} is used {n} times"),
                );
            }
        }
    }
}

/// Compare every cluster's stored refcount with its use (`compare_refcounts`); returns the
/// highest cluster either counts.
async fn compare(
    src: &dyn Source,
    used: &UsedCounts,
    stored: &mut StoredRefcounts,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<u64> {
    let mut highest = 0;
    let mut leaked = 0u64;
    let mut unreadable_reported = false;
    let per_block = 1u64 << stored.block_bits();
    for i in 0..used.clusters() {
        let have = match stored.get(src, i).await {
            Ok(n) => n,
            Err(e) => {
                r.check_errors += 1;
                if !unreadable_reported {
                    r.keep(format!("cannot read the refcount of cluster {i}: {}", e.0));
                    unreadable_reported = true;
                }
                continue;
            }
        };
        let want = used.get(i);
        if have > 0 || want > 0 {
            highest = i;
        }
        if have < want {
            r.note(
                Kind::Corruption,
                format!("cluster {i}: refcount {have}, but used {want} times"),
            );
        } else if have > want {
            r.leaks += 1;
            if leaked < 10 {
                r.keep(format!(
                    "leaked cluster {i}: refcount {have}, used {want} times"
                ));
            }
            leaked += 1;
        }
        if (i + 1) % per_block == 0 {
            progress.step(1)?;
        }
    }
    if leaked > 10 {
        r.keep(format!("... {} leaked clusters in all", leaked));
    }
    Ok(highest)
}

/// The COPIED flag of active L1 and L2 entries must say whether the refcount is one
/// (`check_oflag_copied`).
async fn check_copied(
    walk: &mut L2Walk<'_>,
    l1: &[u64],
    stored: &mut StoredRefcounts,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let src = walk.source();
    let bits = walk.cluster_bits();
    for (index, &entry) in l1.iter().enumerate() {
        let l2 = entry & L1E_OFFSET_MASK;
        if l2 == 0 {
            continue;
        }
        if let Ok(n) = stored.get(src, l2 >> bits).await
            && (n == 1) != (entry & FLAG_COPIED != 0)
        {
            r.note(
                Kind::Corruption,
                format!(
                    "L1 entry {index}: the COPIED flag disagrees with the L2 table's refcount {n}"
                ),
            );
        }
        for (i, offset, copied) in walk.allocated(l2).await {
            let n = match walk.data_file() {
                true => 1,
                false => match stored.get(src, offset >> bits).await {
                    Ok(n) => n,
                    Err(_) => continue,
                },
            };
            if (n == 1) != copied {
                r.note(
                    Kind::Corruption,
                    format!(
                        "L2 table {l2:#x} entry {i}: the COPIED flag disagrees with cluster {:#x}'s refcount {n}",
                        offset
                    ),
                );
            }
        }
        progress.step(1)?;
    }
    Ok(())
}
