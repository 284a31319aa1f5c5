//! qcow2 output: version 3 (compat 1.1) by default, version 2 (compat 0.10) on request, 16-bit
//! refcounts, clusters of 512 B to 2 MiB, optionally compressed (deflate or zstd), in one
//! forward pass with memory bounded by the cluster size, not the image size.
//!
//! Spec: qemu's `docs/interop/qcow2.txt` (sections cited as "spec: ...").
//!
//! # Layout: append-only
//! The engine hands us guest data in increasing order, so the file is laid out as it comes, and
//! nothing is ever read back:
//! - cluster 0: the header, written last (it points at tables only known at the end);
//! - then data clusters and L2 tables as they come: only the current L2 table is in memory; it
//!   is appended (after its data) when the guest offset leaves its range or at the end; an L2
//!   range holding only zeros gets no table at all;
//! - refcount blocks inline: refcount block k covers host clusters `[k*E, (k+1)*E)` (E = entries
//!   per block); when the append pointer enters that range, block k is allocated right there, as
//!   the range's first cluster (so it covers itself). Only the current block's counts are in
//!   memory; it is written when the pointer leaves its range;
//! - compressed clusters are packed byte after byte (spec: "Compressed Clusters Descriptor"),
//!   as qemu does: the next one goes on in the partly filled host cluster even after standard
//!   clusters or L2 tables were appended behind it, when it fits there; it may also run into
//!   the next host cluster when that one is the next to allocate and is not the first of a new
//!   refcount range (that cluster holds the range's block); else packing restarts at a fresh
//!   cluster. Every host cluster a compressed cluster touches gets +1, which is what
//!   `qemu-img check` counts;
//! - at the end: the last L2 table, then the L1 table, then the refcount table, then the
//!   refcount blocks for the ranges those two tables reach into (they lie after the tables,
//!   outside the contiguous tables), then the header. The refcount table's size depends on the
//!   file's end, which depends on the refcount table and blocks: a small fixed-point iteration
//!   settles it. Everything at the end is allocated, so the final refcounts are simply 1 there.
//!
//! In memory: one L2 table and one refcount block (a cluster each), the L1 table (8 bytes per
//! `cluster_size^2 / 8` guest bytes), the refcount table (8 bytes per `cluster_size^2 / 2` host
//! bytes), and a write buffer of a few MiB that merges small contiguous writes.
//!
//! The file ends at the end of its last allocated cluster, so every cluster lies wholly inside it.

use super::{Qcow2Compat, WriteOptions, Writer};
use crate::codec::{Codec, Pool};
use crate::error::{Error, Result};
use crate::formats::qcow2::layout::MAX_L1_BYTES;
use crate::sink::{Chunk, Sink};
use async_trait::async_trait;

mod clusters;
mod header;
mod refcount;
#[cfg(test)]
mod tests;

/// Uncompressed data is zero-checked and written this much at a time (about a core's L2 cache).
const PIECE: usize = 1 << 20;

pub struct Qcow2Writer {
    cluster_bits: u32,
    cs: u64,
    /// The guest size the engine copies (the header says it rounded up to whole sectors).
    size: u64,
    compat: Qcow2Compat,
    codec: Option<Codec>,
    /// The whole L1 table: host offset (with [`FLAG_COPIED`]) of each L2 table, 0 when none.
    l1: Vec<u64>,
    /// The L1 index of the L2 table in `l2`, if one has data.
    l2_index: Option<usize>,
    l2: Vec<u64>,
    /// The first host cluster never allocated (the append pointer).
    next: u64,
    /// Where the next compressed cluster may start: a byte offset inside a partly used host
    /// cluster of the current refcount range, or 0 when there is none. Standard allocations
    /// leave it be, like qemu, so mixed compressible and incompressible data wastes no space.
    tail: u64,
    /// Refcounts of the host clusters of range `block_range`; that block lies at `block_at`.
    block: Vec<u16>,
    block_range: u64,
    block_at: u64,
    /// The host offset of the refcount block of every range so far.
    reftable: Vec<u64>,
    /// Bytes waiting to be written at `pending_at` (small contiguous writes merged).
    pending: Vec<u8>,
    pending_at: u64,
    /// The lowest guest offset the next write may start at.
    guest_pos: u64,
}

impl Qcow2Writer {
    pub fn new(opts: &WriteOptions, virtual_size: u64) -> Result<Self> {
        let cs = u64::from(opts.cluster_size);
        if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
            return Err(Error::invalid(format!(
                "cluster size {cs} is not a power of two from 512 to 2 MiB"
            )));
        }
        match (opts.compression, opts.compat) {
            (Some(Codec::Zstd), Qcow2Compat::V0_10) => {
                return Err(Error::invalid("zstd compression needs qcow2 compat 1.1"));
            }
            (Some(Codec::Zlib), _) => {
                return Err(Error::invalid("qcow2 compresses with deflate or zstd"));
            }
            _ => {}
        }
        let l2_entries = cs / 8;
        let l1_len = virtual_size.div_ceil(cs).div_ceil(l2_entries);
        if l1_len * 8 > MAX_L1_BYTES {
            return Err(Error::invalid(format!(
                "a {virtual_size}-byte disk needs a larger qcow2 cluster size than {cs}"
            )));
        }
        let rbe = cs / 2;
        let mut block = vec![0u16; rbe as usize];
        // Cluster 0 holds the header, cluster 1 the first refcount block.
        block[0] = 1;
        block[1] = 1;
        Ok(Qcow2Writer {
            cluster_bits: cs.trailing_zeros(),
            cs,
            size: virtual_size,
            compat: opts.compat,
            codec: opts.compression,
            l1: vec![0; l1_len as usize],
            l2_index: None,
            l2: vec![0; l2_entries as usize],
            next: 2,
            tail: 0,
            block,
            block_range: 0,
            block_at: 1,
            reftable: vec![cs],
            pending: Vec::new(),
            pending_at: 0,
            guest_pos: 0,
        })
    }
}

#[async_trait(?Send)]
impl Writer for Qcow2Writer {
    fn granularity(&self) -> u64 {
        self.cs
    }

    async fn write(
        &mut self,
        sink: &mut dyn Sink,
        pool: &dyn Pool,
        offset: u64,
        data: Chunk<'_>,
    ) -> Result<()> {
        let cs = self.cs as usize;
        let end = offset + data.len() as u64;
        if !offset.is_multiple_of(self.cs)
            || offset < self.guest_pos
            || end > self.size
            || (!data.len().is_multiple_of(cs) && end != self.size)
        {
            return Err(Error::invalid(format!(
                "qcow2 writer given {} bytes at guest offset {offset} out of order or alignment",
                data.len()
            )));
        }
        self.guest_pos = end;
        // Without compression, go a piece at a time: the zero check and the copy into the
        // sink then find the bytes still in the CPU cache, which a 16 MiB window is not.
        let cs = self.cs as usize;
        let piece = match self.codec {
            Some(_) => data.len().max(1),
            None => (PIECE / cs).max(1) * cs,
        };
        for k in 0..data.len().div_ceil(piece) {
            let (s, e) = (k * piece, ((k + 1) * piece).min(data.len()));
            self.store(sink, pool, offset + s as u64, data.slice(s, e))
                .await?;
        }
        Ok(())
    }

    async fn finish(&mut self, sink: &mut dyn Sink) -> Result<()> {
        self.flush_l2(sink).await?;
        self.tail = 0;
        let (cs, rbe) = (self.cs, self.rbe());
        let p = self.next;
        let cur = self.block_range;
        let l1_clusters = (self.l1.len() as u64 * 8).div_ceil(cs);
        let l1_at = p;
        let rt_at = p + l1_clusters;
        // Fixed point: the refcount table must cover every cluster up to the end, which
        // includes the table itself and the blocks of the ranges it all reaches into.
        let mut rt_clusters = ((cur + 1) * 8).div_ceil(cs).max(1);
        let (blocks_at, fresh, end) = loop {
            let blocks_at = rt_at + rt_clusters;
            let mut fresh = 0;
            loop {
                let need = ((blocks_at + fresh - 1) / rbe).saturating_sub(cur);
                if need == fresh {
                    break;
                }
                fresh = need;
            }
            let end = blocks_at + fresh;
            let want = (((end - 1) / rbe + 1) * 8).div_ceil(cs);
            if want <= rt_clusters {
                break (blocks_at, fresh, end);
            }
            rt_clusters = want;
        };
        refcount::check_reftable(rt_clusters * cs, cs)?;
        refcount::check_end(end * cs)?;
        // Every cluster from p to the end is allocated now.
        for c in p..end.min((cur + 1) * rbe) {
            self.block[(c % rbe) as usize] = 1;
        }
        self.write_block(sink).await?;
        let mut block = vec![0u8; cs as usize];
        for j in 0..fresh {
            let start = (cur + 1 + j) * rbe;
            let used = (end.min(start + rbe) - start) as usize;
            block.fill(0);
            for e in block[..used * 2].chunks_exact_mut(2) {
                e.copy_from_slice(&1u16.to_be_bytes());
            }
            sink.write_at((blocks_at + j) * cs, &block).await?;
            self.reftable.push((blocks_at + j) * cs);
        }
        debug_assert_eq!(self.reftable.len() as u64, (end - 1) / rbe + 1);
        let l1: Vec<u8> = self.l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.push(sink, l1_at * cs, &l1).await?;
        let rt: Vec<u8> = self.reftable.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.push(sink, rt_at * cs, &rt).await?;
        self.flush(sink).await?;
        sink.write_at(0, &self.header(l1_at * cs, rt_at * cs, rt_clusters))
            .await?;
        sink.set_len(end * cs).await
    }
}
