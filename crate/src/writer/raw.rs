//! Raw output: guest byte N at file offset N; zero blocks become holes.

use super::Writer;
use crate::codec::Pool;
use crate::error::Result;
use crate::sink::{Chunk, Sink};
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
        if !sink.composes() {
            return write_nonzero(sink, offset, data.bytes).await;
        }
        for (s, e, run) in data.pieces() {
            let at = offset + s as u64;
            match run {
                Some(r) => sink.write_ref(at, r.src, r.at, r.len as u64).await?,
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
