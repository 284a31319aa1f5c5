//! Raw output: guest byte N at file offset N; zero blocks become holes.

use super::Writer;
use crate::codec::Pool;
use crate::error::Result;
use crate::sink::{Chunk, Copied, Sink};
use crate::source::{Reads, Source};
use crate::zero::is_zero;
use async_trait::async_trait;

/// Holes are made at this granularity (qemu-img's default `-S 4k`).
const BLOCK: usize = 4096;

pub struct RawWriter {
    size: u64,
    sized: bool,
}

impl RawWriter {
    pub fn new(size: u64) -> Self {
        RawWriter { size, sized: false }
    }
}

#[async_trait(?Send)]
impl Writer for RawWriter {
    fn granularity(&self) -> u64 {
        BLOCK as u64
    }

    /// Raw output is the guest bytes themselves: a composed output references the input's.
    fn reads_data(&self) -> bool {
        false
    }

    async fn write(
        &mut self,
        sink: &mut dyn Sink,
        _pool: &dyn Pool,
        offset: u64,
        data: Chunk<'_>,
    ) -> Result<()> {
        if !self.sized {
            // Writes inside the file's length are cheaper than writes that extend it.
            sink.set_len(self.size).await?;
            self.sized = true;
        }
        if !sink.composes() && !data.unread {
            return write_nonzero(sink, offset, data.bytes).await;
        }
        let pieces = data.pieces();
        for (i, &(s, e, run)) in pieces.iter().enumerate() {
            let at = offset + s as u64;
            match run {
                Some(r) if sink.composes() => sink.write_ref(at, r.src, r.at, r.len as u64).await?,
                Some(_) => {
                    // The output stopped taking references (its part budget): read the rest
                    // of the chunk at once rather than copy each reference on its own.
                    let rest = read_rest(&data, &pieces[i..]).await?;
                    return write_nonzero(sink, at, &rest).await;
                }
                None => write_nonzero(sink, at, &data.bytes[s..e]).await?,
            }
        }
        Ok(())
    }

    async fn finish(&mut self, sink: &mut dyn Sink) -> Result<()> {
        sink.set_len(self.size).await
    }
}

/// Write the maximal runs of non-zero blocks of `data`, one call each: zero blocks stay holes.
async fn write_nonzero(sink: &mut dyn Sink, offset: u64, data: &[u8]) -> Result<()> {
    let mut run: Option<usize> = None;
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let pos = i * BLOCK;
        match (is_zero(block), run) {
            (false, None) => run = Some(pos),
            (true, Some(start)) => {
                sink.write_at(offset + start as u64, &data[start..pos])
                    .await?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run {
        sink.write_at(offset + start as u64, &data[start..]).await?;
    }
    Ok(())
}

/// The bytes of `pieces` (the tail of `data`'s, back to back), their copied runs read in one
/// batch per input file.
async fn read_rest(
    data: &Chunk<'_>,
    pieces: &[(usize, usize, Option<Copied<'_>>)],
) -> Result<Vec<u8>> {
    let base = pieces.first().map_or(0, |p| p.0);
    let mut buf = data.bytes[base..].to_vec();
    let mut batches: Vec<(&dyn Source, Reads)> = vec![];
    for &(s, e, run) in pieces {
        let Some(r) = run else { continue };
        let read = (r.at, s - base..e - base);
        match batches
            .iter_mut()
            .find(|(src, _)| std::ptr::addr_eq(*src, r.src))
        {
            Some((_, reads)) => reads.push(read),
            None => batches.push((r.src, vec![read])),
        }
    }
    for (src, reads) in batches {
        buf = src.read_into(reads, buf).await?;
    }
    Ok(buf)
}
