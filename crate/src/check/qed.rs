//! The QED check, with qemu-img check's semantics (qemu block/qed-check.c): every table and
//! data cluster the L1 and L2 tables name must be aligned, past the header and inside the
//! file, and used once; clusters of the file that nothing uses are leaks.

use super::Progress;
use super::result::{CheckResult, Kind};
use crate::error::{Error, Result};
use crate::formats::qed::header::{HEADER_LEN, parse};
use crate::source::{Source, read_vec};

/// L2 entry 1: the cluster reads as zeros (qed_spec.txt "Zero clusters").
const ZERO_CLUSTER: u64 = 1;

struct Qed {
    cluster_size: u64,
    /// Clusters per table.
    table_clusters: u64,
    header_bytes: u64,
    /// The file's length rounded down to whole clusters (qemu's `s->file_size`).
    file_size: u64,
    /// One bit per cluster of the file: used by a table or as data.
    used: Vec<u64>,
}

impl Qed {
    /// `qed_check_cluster_offset`.
    fn valid(&self, offset: u64) -> bool {
        offset & (self.cluster_size - 1) == 0
            && offset >= self.header_bytes
            && offset < self.file_size
    }

    /// `qed_check_table_offset`: both ends of the table are valid.
    fn valid_table(&self, offset: u64) -> bool {
        let end = offset.checked_add((self.table_clusters - 1) * self.cluster_size);
        end.is_some_and(|end| self.valid(offset) && self.valid(end))
    }

    /// Mark `n` clusters from `offset` used; each already used is a corruption. True when
    /// none was.
    fn mark(&mut self, offset: u64, n: u64, r: &mut CheckResult) -> bool {
        let first = offset / self.cluster_size;
        let mut clean = true;
        for c in first..first + n {
            let (word, bit) = ((c / 64) as usize, c % 64);
            let Some(w) = self.used.get_mut(word) else {
                continue;
            };
            if *w & (1 << bit) != 0 {
                r.note(
                    Kind::Corruption,
                    format!("cluster {c} at {:#x} is used twice", c * self.cluster_size),
                );
                clean = false;
            }
            *w |= 1 << bit;
        }
        clean
    }

    fn is_used(&self, c: u64) -> bool {
        self.used[(c / 64) as usize] & (1 << (c % 64)) != 0
    }
}

pub async fn check(
    src: &dyn Source,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let head = read_vec(src, 0, src.len().min(HEADER_LEN), "QED header").await?;
    let (h, problems) = parse(&head);
    if let Some(p) = problems.first() {
        return Err(p.error());
    }
    let cluster_size = u64::from(h.cluster_size.get());
    let table_clusters = u64::from(h.table_size.get());
    if cluster_size == 0 || table_clusters == 0 {
        return Err(Error::corrupt("QED cluster size or table size is zero"));
    }
    let file_size = src.len() / cluster_size * cluster_size;
    let clusters = file_size / cluster_size;
    if clusters > super::MAX_CLUSTERS {
        return Err(Error::unsupported(format!(
            "the file holds {clusters} clusters; vmdisk check counts at most {}",
            super::MAX_CLUSTERS
        )));
    }
    let mut q = Qed {
        cluster_size,
        table_clusters,
        header_bytes: h.header_bytes(),
        file_size,
        used: vec![0; clusters.div_ceil(64) as usize],
    };
    r.total_clusters = h.image_size.get().div_ceil(cluster_size);
    let table_bytes = table_clusters * cluster_size;
    let l1_offset = h.l1_table_offset.get();
    let l1 = le_words(&read_vec(src, l1_offset, table_bytes, "QED L1 table").await?);
    q.mark(l1_offset, table_clusters, r);
    progress.set_total(l1.iter().filter(|&&e| e != 0).count() as u64);
    let mut complete = true;
    for (i, &l2) in l1.iter().enumerate() {
        if l2 == 0 {
            continue;
        }
        progress.step(1)?;
        if !q.valid_table(l2) {
            r.note(
                Kind::Corruption,
                format!("L1 entry {i}: L2 table offset {l2:#x} is invalid"),
            );
            continue;
        }
        if !q.mark(l2, table_clusters, r) {
            continue;
        }
        let table = match read_vec(src, l2, table_bytes, "QED L2 table").await {
            Ok(t) => le_words(&t),
            Err(e) => {
                r.note(Kind::CheckError, format!("L2 table {l2:#x}: {e}"));
                complete = false;
                continue;
            }
        };
        check_l2(&mut q, i as u64, &table, r);
    }
    // qemu counts leaks only when every table could be read.
    if complete {
        let first = h.header_size.get().into();
        let leaked = (first..clusters).filter(|&c| !q.is_used(c)).count() as u64;
        if leaked > 0 {
            r.leaks += leaked;
            r.keep(format!("{leaked} clusters of the file are not used"));
        }
    }
    Ok(())
}

/// `qed_check_l2_table`: allocation statistics, then each data cluster validated and marked.
fn check_l2(q: &mut Qed, l1_index: u64, table: &[u64], r: &mut CheckResult) {
    let mut last = 0u64;
    let per_table = table.len() as u64;
    for (i, &offset) in table.iter().enumerate() {
        if offset == 0 || offset == ZERO_CLUSTER {
            continue;
        }
        r.allocated_clusters += 1;
        if last != 0 && last + q.cluster_size != offset {
            r.fragmented_clusters += 1;
        }
        last = offset;
        if !q.valid(offset) {
            let guest = (l1_index * per_table + i as u64) * q.cluster_size;
            r.note(
                Kind::Corruption,
                format!("guest offset {guest:#x}: data cluster offset {offset:#x} is invalid"),
            );
            last = 0;
            continue;
        }
        q.mark(offset, 1, r);
    }
}

fn le_words(data: &[u8]) -> Vec<u64> {
    data.chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .collect()
}
