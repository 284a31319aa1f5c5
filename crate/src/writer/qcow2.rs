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
use crate::formats::qcow2::layout::{
    FLAG_COMPRESSED, FLAG_COPIED, MAGIC, MAX_L1_BYTES, MAX_OFFSET, MAX_REFTABLE_BYTES,
    compressed_offset_bits,
};
use crate::sink::{Chunk, Sink, put};
use crate::zero::is_zero;
use async_trait::async_trait;

/// 16-bit refcounts (the only width version 2 knows).
const REFCOUNT_ORDER: u32 = 4;
/// Header length of version 3 with the compression type byte, padded to 8 (spec: "Header").
const V3_HEADER_LEN: usize = 112;
const V2_HEADER_LEN: usize = 72;
/// Uncompressed data is zero-checked and written this much at a time (about a core's L2 cache).
const PIECE: usize = 1 << 20;
/// The write buffer is flushed when it reaches this size.
const FLUSH_AT: usize = 4 << 20;

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

    /// Refcount entries per refcount block.
    fn rbe(&self) -> u64 {
        self.cs / 2
    }

    /// Allocate one whole host cluster at the append pointer; returns its offset.
    async fn alloc(&mut self, sink: &mut dyn Sink) -> Result<u64> {
        if self.next / self.rbe() != self.block_range {
            self.next_block(sink).await?;
        }
        let c = self.next;
        let off = c * self.cs;
        if off + self.cs > MAX_OFFSET {
            return Err(Error::unsupported("the qcow2 output would pass 64 PiB"));
        }
        self.next += 1;
        let i = (c % self.rbe()) as usize;
        self.block[i] = 1;
        Ok(off)
    }

    /// The append pointer entered a new range: write the finished block and put the new
    /// range's block at the range's first cluster.
    async fn next_block(&mut self, sink: &mut dyn Sink) -> Result<()> {
        self.write_block(sink).await?;
        let c = self.next;
        debug_assert_eq!(c % self.rbe(), 0, "ranges are entered at their start");
        if (self.reftable.len() as u64 + 1) * 8 > MAX_REFTABLE_BYTES {
            return Err(Error::unsupported(format!(
                "the qcow2 output outgrows qemu's refcount table limit at cluster size {}",
                self.cs
            )));
        }
        self.block_range = c / self.rbe();
        self.tail = 0;
        self.block.fill(0);
        self.block[0] = 1;
        self.block_at = c;
        self.reftable.push(c * self.cs);
        self.next = c + 1;
        Ok(())
    }

    async fn write_block(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let bytes: Vec<u8> = self.block.iter().flat_map(|c| c.to_be_bytes()).collect();
        sink.write_at(self.block_at * self.cs, &bytes).await
    }

    /// Append a compressed cluster's bytes; returns the L2 entry.
    async fn place_compressed(&mut self, sink: &mut dyn Sink, bytes: &[u8]) -> Result<u64> {
        let (cs, rbe) = (self.cs, self.rbe());
        let n = bytes.len() as u64;
        debug_assert!(n > 0 && n < cs);
        let t = self.tail;
        let (c0, c1) = (t / cs, (t + n - 1) / cs);
        // Go on in the partly used cluster c0 (its range's block is the one in memory): within
        // it, or into the next cluster when c0 is the last one allocated and the next one
        // belongs to the same range (else it holds a new range's refcount block). Never past
        // the largest refcount.
        let packs = t != 0
            && self.block[(c0 % rbe) as usize] < u16::MAX
            && (c1 == c0 || (c1 == c0 + 1 && c1 == self.next && c1 / rbe == c0 / rbe));
        let at = if packs {
            self.block[(c0 % rbe) as usize] += 1;
            if c1 > c0 {
                self.next += 1;
                self.block[(c1 % rbe) as usize] = 1;
            }
            t
        } else {
            self.alloc(sink).await?
        };
        self.tail = if (at + n).is_multiple_of(cs) {
            0
        } else {
            at + n
        };
        self.push(sink, at, bytes).await?;
        let x = compressed_offset_bits(self.cluster_bits);
        let sectors = (at + n - 1) / 512 - at / 512;
        if at >= 1 << x || sectors >= 1 << (self.cluster_bits - 8) {
            return Err(Error::unsupported(format!(
                "compressed data at offset {at} is out of reach of a qcow2 descriptor"
            )));
        }
        Ok(FLAG_COMPRESSED | sectors << x | at)
    }

    /// Queue `bytes` for offset `at`, merging with what is queued when contiguous.
    async fn push(&mut self, sink: &mut dyn Sink, at: u64, bytes: &[u8]) -> Result<()> {
        if !self.pending.is_empty() && self.pending_at + self.pending.len() as u64 != at {
            self.flush(sink).await?;
        }
        if self.pending.is_empty() {
            self.pending_at = at;
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= FLUSH_AT {
            self.flush(sink).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, sink: &mut dyn Sink) -> Result<()> {
        if !self.pending.is_empty() {
            sink.write_at(self.pending_at, &self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Make the L2 table of guest cluster `g` the current one.
    async fn enter_l2(&mut self, sink: &mut dyn Sink, g: u64) -> Result<()> {
        let index = (g / (self.cs / 8)) as usize;
        if self.l2_index != Some(index) {
            self.flush_l2(sink).await?;
            self.l2_index = Some(index);
        }
        Ok(())
    }

    /// Append the current L2 table and point the L1 table at it.
    async fn flush_l2(&mut self, sink: &mut dyn Sink) -> Result<()> {
        if let Some(index) = self.l2_index.take() {
            let at = self.alloc(sink).await?;
            let bytes: Vec<u8> = self.l2.iter().flat_map(|e| e.to_be_bytes()).collect();
            self.push(sink, at, &bytes).await?;
            self.l1[index] = at | FLAG_COPIED;
            self.l2.fill(0);
        }
        Ok(())
    }

    /// Lay out `data` (whole clusters from guest `offset`, or the disk's tail).
    async fn store(
        &mut self,
        sink: &mut dyn Sink,
        pool: &dyn Pool,
        offset: u64,
        chunk: Chunk<'_>,
    ) -> Result<()> {
        let data = chunk.bytes;
        let cs = self.cs as usize;
        let first = offset / self.cs;
        let clusters: Vec<(usize, &[u8])> = data
            .chunks(cs)
            .enumerate()
            .filter(|(_, c)| !is_zero(c))
            .collect();
        if clusters.is_empty() {
            return Ok(());
        }
        // Compress the whole batch at once so the host can spread it over every core. A short
        // last cluster (the disk ends inside it) is compressed padded: readers inflate whole
        // clusters.
        let mut packed: Vec<Option<Vec<u8>>> = vec![];
        if let Some(codec) = self.codec {
            let padded: Vec<u8> = match clusters.last() {
                Some((_, c)) if c.len() < cs => {
                    let mut p = c.to_vec();
                    p.resize(cs, 0);
                    p
                }
                _ => vec![],
            };
            let inputs: Vec<&[u8]> = clusters
                .iter()
                .map(|&(_, c)| if c.len() < cs { &padded[..] } else { c })
                .collect();
            packed = pool.compress_all(codec, &inputs, cs).await?;
            if packed.len() != inputs.len() {
                return Err(Error::io("compression pool lost results"));
            }
        }
        // Standard clusters that follow each other in guest and host go out in one write.
        let mut run: Option<(usize, u64, usize)> = None; // (data index, host offset, length)
        for (j, &(i, cluster)) in clusters.iter().enumerate() {
            let g = first + i as u64;
            self.enter_l2(sink, g).await?;
            let entry = match packed.get(j).and_then(|p| p.as_deref()) {
                Some(bytes) if !bytes.is_empty() && bytes.len() < cs => {
                    self.place_compressed(sink, bytes).await?
                }
                _ => {
                    let host = self.alloc(sink).await?;
                    let d = i * cs;
                    match &mut run {
                        Some((rd, rh, len)) if *rd + *len == d && *rh + *len as u64 == host => {
                            *len += cluster.len();
                        }
                        _ => {
                            if let Some((rd, rh, len)) = run.take() {
                                put(sink, rh, chunk.slice(rd, rd + len)).await?;
                            }
                            run = Some((d, host, cluster.len()));
                        }
                    }
                    host | FLAG_COPIED
                }
            };
            self.l2[(g % (self.cs / 8)) as usize] = entry;
        }
        if let Some((rd, rh, len)) = run {
            put(sink, rh, chunk.slice(rd, rd + len)).await?;
        }
        Ok(())
    }

    fn header(&self, l1_at: u64, reftable_at: u64, reftable_clusters: u64) -> Vec<u8> {
        let v3 = self.compat == Qcow2Compat::V1_1;
        let zstd = self.codec == Some(Codec::Zstd);
        let mut h = Vec::with_capacity(V3_HEADER_LEN);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&(if v3 { 3u32 } else { 2 }).to_be_bytes());
        h.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset
        h.extend_from_slice(&0u32.to_be_bytes()); // backing_file_size
        h.extend_from_slice(&self.cluster_bits.to_be_bytes());
        // qemu drops a partial last sector of a qcow2 disk (and reads a raw file's as a whole
        // sector, zero-padded): round up like `qemu-img convert`.
        h.extend_from_slice(&self.size.next_multiple_of(512).to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
        h.extend_from_slice(&(self.l1.len() as u32).to_be_bytes());
        h.extend_from_slice(&l1_at.to_be_bytes());
        h.extend_from_slice(&reftable_at.to_be_bytes());
        h.extend_from_slice(&(reftable_clusters as u32).to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
        h.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
        debug_assert_eq!(h.len(), V2_HEADER_LEN);
        if v3 {
            // Incompatible bit 3: a compression type other than zlib.
            let incompatible: u64 = if zstd { 1 << 3 } else { 0 };
            h.extend_from_slice(&incompatible.to_be_bytes());
            h.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
            h.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
            h.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
            h.extend_from_slice(&(V3_HEADER_LEN as u32).to_be_bytes());
            h.push(u8::from(zstd)); // compression_type: 0 zlib, 1 zstd
            h.resize(V3_HEADER_LEN, 0);
        }
        // What follows is zero: the end of the (empty) header extension area.
        h
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
        if rt_clusters * cs > MAX_REFTABLE_BYTES {
            return Err(Error::unsupported(format!(
                "the qcow2 output outgrows qemu's refcount table limit at cluster size {cs}"
            )));
        }
        if end * cs > MAX_OFFSET {
            return Err(Error::unsupported("the qcow2 output would pass 64 PiB"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Serial, decompress};
    use crate::sink::MemSink;

    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }
    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// A tiny independent reader: checks the refcounts the way `qemu-img check` does and
    /// returns the guest disk.
    fn read_back(file: &[u8]) -> Vec<u8> {
        check(file, true)
    }

    fn check(file: &[u8], inflate: bool) -> Vec<u8> {
        assert_eq!(&file[..4], MAGIC);
        let bits = be32(file, 20);
        let cs = 1u64 << bits;
        assert_eq!(file.len() as u64 % cs, 0, "file ends on a cluster boundary");
        let size = be64(file, 24);
        let l1_len = be32(file, 36) as usize;
        let l1_at = be64(file, 40) as usize;
        let rt_at = be64(file, 48) as usize;
        let rt_clusters = be32(file, 56) as u64;
        let zstd = be32(file, 4) == 3 && file[104] == 1;
        let codec = if zstd { Codec::Zstd } else { Codec::Deflate };
        let nclusters = file.len() as u64 / cs;
        let mut want = vec![0u64; nclusters as usize];
        let mut inc = |off: u64, len: u64| {
            for c in off / cs..=(off + len - 1) / cs {
                want[c as usize] += 1;
            }
        };
        inc(0, cs);
        if l1_len > 0 {
            inc(l1_at as u64, l1_len as u64 * 8);
        }
        inc(rt_at as u64, rt_clusters * cs);
        let rbe = cs / 2;
        let mut rt = vec![];
        for i in 0..(rt_clusters * cs / 8) as usize {
            let b = be64(file, rt_at + i * 8);
            if b != 0 {
                inc(b, cs);
            }
            rt.push(b);
        }
        let x = 62 - (bits - 8);
        let mut disk = vec![0u8; if inflate { size.div_ceil(cs) * cs } else { cs } as usize];
        for i in 0..l1_len {
            let e = be64(file, l1_at + i * 8);
            if e == 0 {
                continue;
            }
            assert_ne!(e & FLAG_COPIED, 0);
            let l2 = e & !FLAG_COPIED;
            inc(l2, cs);
            for j in 0..(cs / 8) as usize {
                let e = be64(file, l2 as usize + j * 8);
                if e == 0 {
                    continue;
                }
                let g = if inflate {
                    (i * (cs as usize / 8) + j) * cs as usize
                } else {
                    0
                };
                let out = &mut disk[g..g + cs as usize];
                if e & FLAG_COMPRESSED != 0 {
                    let off = e & ((1 << x) - 1);
                    let sectors = (e & !(FLAG_COMPRESSED | FLAG_COPIED)) >> x;
                    let len = (sectors + 1) * 512 - (off & 511);
                    inc(off, len);
                    let end = (off + len).min(file.len() as u64);
                    if inflate {
                        decompress(codec, &file[off as usize..end as usize], out).unwrap();
                    }
                } else {
                    assert_ne!(e & FLAG_COPIED, 0);
                    let off = (e & !FLAG_COPIED) as usize;
                    inc(off as u64, cs);
                    out.copy_from_slice(&file[off..off + cs as usize]);
                }
            }
        }
        for (k, &b) in rt.iter().enumerate() {
            for i in 0..rbe {
                let c = k as u64 * rbe + i;
                let have = if b == 0 {
                    0
                } else {
                    let at = (b + i * 2) as usize;
                    u16::from_be_bytes([file[at], file[at + 1]]) as u64
                };
                let expect = want.get(c as usize).copied().unwrap_or(0);
                assert_eq!(have, expect, "refcount of cluster {c}");
                if b == 0 && c >= nclusters {
                    break;
                }
            }
        }
        assert!(
            rt.len() as u64 * rbe >= nclusters,
            "refcounts cover the file"
        );
        disk.truncate(size as usize);
        disk
    }

    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                if (i / 700) % 2 == 0 {
                    b"qcow2 cluster "[i % 14]
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    /// Convert `disk` through the writer the way the engine does (zero runs skipped).
    fn convert(disk: &[u8], opts: &WriteOptions) -> Vec<u8> {
        let mut w = Qcow2Writer::new(opts, disk.len() as u64).unwrap();
        let mut sink = MemSink::default();
        let step = opts.cluster_size as usize * 5;
        pollster::block_on(async {
            for (k, chunk) in disk.chunks(step).enumerate() {
                if !is_zero(chunk) {
                    w.write(&mut sink, &Serial, (k * step) as u64, chunk.into())
                        .await
                        .unwrap();
                }
            }
            w.finish(&mut sink).await.unwrap();
        });
        sink.data
    }

    #[test]
    fn round_trips_in_every_mode() {
        for cs in [512u32, 4096, 65536] {
            for (compression, compat) in [
                (None, Qcow2Compat::V1_1),
                (None, Qcow2Compat::V0_10),
                (Some(Codec::Deflate), Qcow2Compat::V0_10),
                (Some(Codec::Zstd), Qcow2Compat::V1_1),
            ] {
                let opts = WriteOptions {
                    cluster_size: cs,
                    compression,
                    compat,
                    ..WriteOptions::default()
                };
                // Several L2 tables and refcount blocks at 512-byte clusters; a zero gap; a
                // tail inside the last cluster.
                let mut disk = pattern(700_000, u64::from(cs));
                disk.extend_from_slice(&vec![0; 300_000]);
                disk.extend_from_slice(&pattern(100_001, 9));
                let file = convert(&disk, &opts);
                // The header rounds the size up to whole sectors.
                let mut want = disk.clone();
                want.resize(disk.len().next_multiple_of(512), 0);
                assert_eq!(read_back(&file), want, "{cs} {compression:?} {compat:?}");
            }
        }
    }

    #[test]
    fn empty_disk_has_no_data_clusters() {
        let file = convert(&[0; 1 << 20], &WriteOptions::default());
        // Header, refcount block, L1 table and refcount table only.
        assert_eq!(file.len(), 4 * 65536);
        assert_eq!(read_back(&file), vec![0; 1 << 20]);
        let file = convert(&[], &WriteOptions::default());
        assert_eq!(read_back(&file), Vec::<u8>::new());
    }

    /// A pool whose "compressed" clusters are one byte: checks the packing bookkeeping,
    /// including the refcount ceiling of one host cluster.
    struct Tiny;
    #[async_trait(?Send)]
    impl Pool for Tiny {
        async fn compress_all(
            &self,
            _: Codec,
            inputs: &[&[u8]],
            _: usize,
        ) -> Result<Vec<Option<Vec<u8>>>> {
            Ok(inputs.iter().map(|_| Some(vec![0xA5])).collect())
        }
        async fn decompress_all(&self, _: &mut [(Codec, &[u8], &mut [u8])]) -> Result<()> {
            unreachable!()
        }
    }

    #[test]
    fn a_host_cluster_never_passes_the_largest_refcount() {
        // 2 MiB clusters: one L2 table spans more than 65535 clusters.
        let cs = 2 << 20;
        let opts = WriteOptions {
            cluster_size: cs,
            compression: Some(Codec::Deflate),
            ..WriteOptions::default()
        };
        let n = 70_000u64;
        let mut w = Qcow2Writer::new(&opts, n * u64::from(cs)).unwrap();
        let mut sink = MemSink::default();
        let data = vec![1u8; cs as usize];
        pollster::block_on(async {
            for g in 0..n {
                w.write(&mut sink, &Tiny, g * u64::from(cs), data[..].into())
                    .await
                    .unwrap();
            }
            w.finish(&mut sink).await.unwrap();
        });
        let file = sink.data;
        check(&file, false);
        // The first data cluster is full at 65535 one-byte clusters.
        let rt = be64(&file, 48) as usize;
        let block = be64(&file, rt) as usize;
        let count = |c: usize| u16::from_be_bytes([file[block + 2 * c], file[block + 2 * c + 1]]);
        let counts: Vec<u16> = (0..8).map(count).collect();
        assert!(counts.contains(&u16::MAX), "{counts:?}");
        assert!(counts.iter().filter(|&&c| c > 1).count() >= 2, "{counts:?}");
    }

    #[test]
    fn rejects_what_qemu_cannot_read() {
        let bad = |cluster_size, compression, compat| {
            let opts = WriteOptions {
                cluster_size,
                compression,
                compat,
                ..WriteOptions::default()
            };
            Qcow2Writer::new(&opts, 1 << 30).is_err()
        };
        assert!(bad(1000, None, Qcow2Compat::V1_1));
        assert!(bad(4 << 20, None, Qcow2Compat::V1_1));
        assert!(bad(256, None, Qcow2Compat::V1_1));
        assert!(bad(65536, Some(Codec::Zstd), Qcow2Compat::V0_10));
        assert!(!bad(65536, Some(Codec::Deflate), Qcow2Compat::V0_10));
        // 512-byte clusters reach 128 GiB at most (qemu's 32 MiB L1 table).
        let opts = WriteOptions {
            cluster_size: 512,
            ..WriteOptions::default()
        };
        assert!(Qcow2Writer::new(&opts, 128 << 30).is_ok());
        assert!(Qcow2Writer::new(&opts, (128 << 30) + 1).is_err());
    }
}
