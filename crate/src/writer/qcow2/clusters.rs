//! Writing guest clusters: the merged write buffer, the current L2 table, and laying out a
//! piece of guest data as standard or compressed clusters.

use super::Qcow2Writer;
use crate::codec::Pool;
use crate::error::{Error, Result};
use crate::formats::qcow2::layout::FLAG_COPIED;
use crate::sink::{Chunk, Sink, put};
use crate::zero::is_zero;

/// The write buffer is flushed when it reaches this size.
const FLUSH_AT: usize = 4 << 20;

impl Qcow2Writer {
    /// Queue `bytes` for offset `at`, merging with what is queued when contiguous.
    pub(super) async fn push(&mut self, sink: &mut dyn Sink, at: u64, bytes: &[u8]) -> Result<()> {
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

    pub(super) async fn flush(&mut self, sink: &mut dyn Sink) -> Result<()> {
        if !self.pending.is_empty() {
            sink.write_at(self.pending_at, &self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Make the L2 table of guest cluster `g` the current one.
    pub(super) async fn enter_l2(&mut self, sink: &mut dyn Sink, g: u64) -> Result<()> {
        let index = (g / (self.cs / 8)) as usize;
        if self.l2_index != Some(index) {
            self.flush_l2(sink).await?;
            self.l2_index = Some(index);
        }
        Ok(())
    }

    /// Append the current L2 table and point the L1 table at it.
    pub(super) async fn flush_l2(&mut self, sink: &mut dyn Sink) -> Result<()> {
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
    pub(super) async fn store(
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
}
