//! qcow2 refcounts: the counts rebuilt from what the metadata uses, and the counts the image
//! stores (qcow2.txt "Host cluster management"), read one refcount block at a time.

use super::result::{CheckResult, Kind};
use crate::error::{Error, Result};
use crate::source::{Source, read_vec};
use std::collections::HashMap;

/// The most host clusters a check counts (16-bit counters: 512 MiB of memory). A file with
/// more clusters than this is not checked (a 64 KiB-cluster image up to 16 TiB fits).
pub const MAX_CLUSTERS: u64 = 256 << 20;

/// Bits 9-63 of a refcount table entry: the refcount block's offset (qcow2.txt).
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;

/// How many times each host cluster of the file is used, rebuilt from the metadata. Sized by
/// the file's clusters, plus one for a last cluster that is only partly in the file.
pub struct UsedCounts {
    counts: Vec<u16>,
    /// Counts that do not fit in 16 bits (a cluster shared by that many snapshots).
    big: HashMap<u64, u64>,
    cluster_bits: u32,
    file_len: u64,
    /// qemu's limit of one refcount entry (2^refcount_bits - 1).
    refcount_max: u64,
}

impl UsedCounts {
    pub fn new(file_len: u64, cluster_bits: u32, refcount_bits: u32) -> Result<Self> {
        let clusters = file_len.div_ceil(1 << cluster_bits);
        if clusters > MAX_CLUSTERS {
            return Err(Error::unsupported(format!(
                "the file holds {clusters} clusters; vmdisk check counts at most {MAX_CLUSTERS} (512 MiB of counters)"
            )));
        }
        Ok(UsedCounts {
            counts: vec![0; clusters as usize],
            big: HashMap::new(),
            cluster_bits,
            file_len,
            refcount_max: if refcount_bits >= 64 {
                u64::MAX
            } else {
                (1 << refcount_bits) - 1
            },
        })
    }

    /// Host clusters the comparison covers.
    pub fn clusters(&self) -> u64 {
        self.counts.len() as u64
    }

    pub fn get(&self, cluster: u64) -> u64 {
        match self.counts.get(cluster as usize) {
            Some(&u16::MAX) => self.big.get(&cluster).copied().unwrap_or(u16::MAX.into()),
            Some(&n) => n.into(),
            None => 0,
        }
    }

    /// Count one use of every cluster `[offset, offset + size)` touches. Like qemu
    /// (`qcow2_inc_refcounts_imrt`), a range may run less than a cluster past the end of the
    /// file (the last cluster can be short); one that runs further is a corruption.
    pub fn add(&mut self, offset: u64, size: u64, what: &str, r: &mut CheckResult) {
        if size == 0 {
            return;
        }
        let cs = 1u64 << self.cluster_bits;
        let end = offset.saturating_add(size);
        if end >= self.file_len.saturating_add(cs) {
            r.note(
                Kind::Corruption,
                format!(
                    "{what} at offset {offset:#x} (+{size:#x} bytes) runs a cluster or more past the end of the file ({} bytes)",
                    self.file_len
                ),
            );
            return;
        }
        let (first, last) = (offset >> self.cluster_bits, (end - 1) >> self.cluster_bits);
        for k in first..=last {
            if k >= self.clusters() {
                self.counts.resize(k as usize + 1, 0);
            }
            let n = self.get(k);
            if n >= self.refcount_max {
                r.note(
                    Kind::Corruption,
                    format!("cluster {k} ({what}) is used more often than its refcount can count"),
                );
                continue;
            }
            let slot = &mut self.counts[k as usize];
            if n + 1 >= u64::from(u16::MAX) {
                *slot = u16::MAX;
                self.big.insert(k, n + 1);
            } else {
                *slot += 1;
            }
        }
    }
}

/// The refcounts stored in the image: the refcount table, and the last refcount block read.
pub struct StoredRefcounts {
    pub table: Vec<u64>,
    cluster_bits: u32,
    refcount_order: u32,
    /// log2 of the refcount entries in one block.
    block_bits: u32,
    cached: Option<(u64, Vec<u8>)>,
}

/// Why a stored refcount could not be read (qemu counts a check error per cluster).
pub struct Unreadable(pub String);

impl StoredRefcounts {
    pub fn new(table: Vec<u64>, cluster_bits: u32, refcount_order: u32) -> Self {
        StoredRefcounts {
            table,
            cluster_bits,
            refcount_order,
            block_bits: cluster_bits + 3 - refcount_order,
            cached: None,
        }
    }

    /// log2 of the refcount entries in one block.
    pub fn block_bits(&self) -> u32 {
        self.block_bits
    }

    /// The stored refcount of host cluster `cluster`: zero where no refcount block covers it.
    pub async fn get(
        &mut self,
        src: &dyn Source,
        cluster: u64,
    ) -> std::result::Result<u64, Unreadable> {
        let index = cluster >> self.block_bits;
        let Some(&entry) = self.table.get(index as usize) else {
            return Ok(0);
        };
        let block = entry & REFT_OFFSET_MASK;
        if block == 0 {
            return Ok(0);
        }
        let cs = 1u64 << self.cluster_bits;
        if block & (cs - 1) != 0 {
            return Err(Unreadable(format!(
                "refcount block {index} at {block:#x} is not cluster aligned"
            )));
        }
        if self.cached.as_ref().is_none_or(|(at, _)| *at != block) {
            self.cached = Some((block, read_block(src, block, cs).await));
        }
        let data = &self.cached.as_ref().expect("just cached").1;
        Ok(entry_at(
            data,
            self.refcount_order,
            cluster & ((1 << self.block_bits) - 1),
        ))
    }
}

/// A refcount block: what of it lies in the file, zeros after (qemu's reads past the end of
/// the file give zeros too).
async fn read_block(src: &dyn Source, at: u64, cs: u64) -> Vec<u8> {
    let inside = src.len().saturating_sub(at).min(cs);
    let mut data = read_vec(src, at, inside, "qcow2 refcount block")
        .await
        .unwrap_or_default();
    data.resize(cs as usize, 0);
    data
}

/// Entry `i` of a refcount block of `2^order`-bit entries: big-endian from 8 bits up, and
/// below that packed from the low bits of each byte (qemu's `get_refcount_ro0..2`).
pub fn entry_at(block: &[u8], order: u32, i: u64) -> u64 {
    let bits = 1u64 << order;
    if bits < 8 {
        let per_byte = 8 / bits;
        let byte = block[(i / per_byte) as usize];
        let shift = (i % per_byte) * bits;
        return u64::from(byte >> shift) & ((1 << bits) - 1);
    }
    let width = (bits / 8) as usize;
    let at = i as usize * width;
    block[at..at + width]
        .iter()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b))
}
