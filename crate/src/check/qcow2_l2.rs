//! qcow2 L2 tables for the check (qemu `check_refcounts_l2`): each entry's cluster counted as
//! used, its alignment and flags checked, the active layer's allocation statistics kept, and
//! each compressed cluster decoded once.

use super::refcounts::UsedCounts;
use super::result::{CheckResult, Kind};
use crate::codec::{Codec, decompress};
use crate::formats::qcow2::header::{Header, INCOMPAT_DATA_FILE};
use crate::formats::qcow2::layout::{
    FLAG_COMPRESSED, FLAG_COPIED, FLAG_ZERO, OFFSET_MASK, compressed_offset_bits,
};
use crate::source::{Source, read_vec};
use std::collections::HashSet;

/// Which L1 table an L2 table belongs to: the active one also counts allocation statistics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Active,
    Snapshot,
}

/// The low half of an extended L2 bitmap: which subclusters are allocated.
const ALL_ALLOCATED: u64 = 0xffff_ffff;

pub struct L2Walk<'a> {
    src: &'a dyn Source,
    cluster_bits: u32,
    /// log2 of the guest bytes one L2 table maps.
    span_bits: u32,
    extended: bool,
    data_file: bool,
    codec: Codec,
    /// L2 tables whose compressed clusters were already decoded (snapshots share tables).
    decoded: HashSet<u64>,
    unit: Vec<u8>,
}

impl<'a> L2Walk<'a> {
    pub fn new(src: &'a dyn Source, h: &Header, extended: bool, codec: Codec) -> Self {
        let l2_bits = h.cluster_bits - 3 - u32::from(extended);
        L2Walk {
            src,
            cluster_bits: h.cluster_bits,
            span_bits: h.cluster_bits + l2_bits,
            extended,
            data_file: h.incompatible & INCOMPAT_DATA_FILE != 0,
            codec,
            decoded: HashSet::new(),
            unit: vec![0; 1 << h.cluster_bits],
        }
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
    pub fn cluster_bits(&self) -> u32 {
        self.cluster_bits
    }
    pub fn source(&self) -> &'a dyn Source {
        self.src
    }
    pub fn data_file(&self) -> bool {
        self.data_file
    }

    /// The table at `offset` as (entry, bitmap) pairs. What lies past the end of the file reads
    /// as zeros, as qemu's reads do.
    async fn table(&self, offset: u64) -> Vec<(u64, u64)> {
        let cs = self.cluster_size();
        let inside = self.src.len().saturating_sub(offset).min(cs);
        let mut data = read_vec(self.src, offset, inside, "qcow2 L2 table")
            .await
            .unwrap_or_default();
        data.resize(cs as usize, 0);
        let words = super::qcow2::words(&data);
        if self.extended {
            words.chunks_exact(2).map(|p| (p[0], p[1])).collect()
        } else {
            words.into_iter().map(|e| (e, 0)).collect()
        }
    }

    /// Count everything L2 table `l2` (L1 entry `l1_index`) uses, and check its entries.
    pub async fn count(
        &mut self,
        l1_index: u64,
        l2: u64,
        layer: Layer,
        used: &mut UsedCounts,
        r: &mut CheckResult,
    ) {
        let cs = self.cluster_size();
        let decode = self.decoded.insert(l2);
        let mut next_contiguous = 0u64;
        for (i, (entry, bitmap)) in self.table(l2).await.into_iter().enumerate() {
            let guest = (l1_index << self.span_bits) + ((i as u64) << self.cluster_bits);
            if entry & FLAG_COMPRESSED != 0 {
                self.compressed(guest, entry, bitmap, layer, decode, used, r)
                    .await;
                continue;
            }
            let offset = entry & OFFSET_MASK;
            let zero = entry & FLAG_ZERO != 0 && !self.extended;
            let allocated = offset != 0 || (!zero && self.data_file && entry & FLAG_COPIED != 0);
            if !allocated {
                if self.extended && bitmap & ALL_ALLOCATED != 0 {
                    r.note(
                        Kind::Corruption,
                        format!("guest offset {guest:#x}: unallocated cluster with allocated subclusters"),
                    );
                }
                continue;
            }
            if self.extended && (bitmap >> 32) & bitmap != 0 {
                r.note(
                    Kind::Corruption,
                    format!("guest offset {guest:#x}: subclusters both allocated and zero"),
                );
            }
            if offset & (cs - 1) != 0 {
                r.note(
                    Kind::Corruption,
                    format!(
                        "guest offset {guest:#x}: cluster offset {offset:#x} is not cluster aligned"
                    ),
                );
            }
            if layer == Layer::Active {
                r.allocated_clusters += 1;
                if next_contiguous != 0 && offset != next_contiguous {
                    r.fragmented_clusters += 1;
                }
                next_contiguous = offset + cs;
            }
            if !self.data_file {
                used.add(offset, cs, "a data cluster", r);
            }
        }
    }

    /// A compressed cluster: counted by the sectors it spans, and decoded.
    #[allow(clippy::too_many_arguments)]
    async fn compressed(
        &mut self,
        guest: u64,
        entry: u64,
        bitmap: u64,
        layer: Layer,
        decode: bool,
        used: &mut UsedCounts,
        r: &mut CheckResult,
    ) {
        if self.extended && bitmap != 0 {
            r.note(
                Kind::Corruption,
                format!("guest offset {guest:#x}: compressed cluster with a subcluster bitmap"),
            );
        }
        if entry & FLAG_COPIED != 0 {
            r.note(
                Kind::Corruption,
                format!("guest offset {guest:#x}: compressed cluster with the COPIED flag"),
            );
        }
        if self.data_file {
            r.note(
                Kind::Corruption,
                format!("guest offset {guest:#x}: compressed cluster in an image with a data file"),
            );
            return;
        }
        // qcow2.txt "Compressed Clusters Descriptor": x bits of offset, then the count of
        // 512-byte sectors after the first; the data runs to the end of the last sector.
        let x = compressed_offset_bits(self.cluster_bits);
        let offset = entry & ((1 << x) - 1);
        let sectors = ((entry & !FLAG_COPIED & !FLAG_COMPRESSED) >> x) + 1;
        let len = sectors * 512 - (offset & 511);
        used.add(offset, len, "a compressed cluster", r);
        if layer == Layer::Active {
            r.allocated_clusters += 1;
            r.compressed_clusters += 1;
            // qemu counts every compressed cluster as fragmented.
            r.fragmented_clusters += 1;
        }
        if !decode || offset >= self.src.len() {
            return;
        }
        let inside = (self.src.len() - offset).min(len);
        let result = match read_vec(self.src, offset, inside, "a compressed cluster").await {
            Ok(input) => decompress(self.codec, &input, &mut self.unit),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            r.note(
                Kind::Corruption,
                format!(
                    "guest offset {guest:#x}: the compressed cluster at {offset:#x} does not decode to one cluster ({e})"
                ),
            );
        }
    }

    /// The allocated (standard) entries of L2 table `l2`: index, host offset, COPIED flag.
    pub async fn allocated(&self, l2: u64) -> Vec<(usize, u64, bool)> {
        let mut out = vec![];
        for (i, (entry, _)) in self.table(l2).await.into_iter().enumerate() {
            let offset = entry & OFFSET_MASK;
            if entry & FLAG_COMPRESSED != 0 {
                continue;
            }
            if offset != 0 || (self.data_file && entry & FLAG_COPIED != 0) {
                out.push((i, offset, entry & FLAG_COPIED != 0));
            }
        }
        out
    }
}
