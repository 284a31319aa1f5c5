//! Raw output: guest byte N at file offset N; zero blocks become holes.

use super::Writer;
use crate::codec::Pool;
use crate::error::Result;
use crate::sink::Sink;
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

    async fn write(
        &mut self,
        sink: &mut dyn Sink,
        _pool: &dyn Pool,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        if !self.sized {
            // Writes inside the file's length are cheaper than writes that extend it.
            sink.set_len(self.size).await?;
            self.sized = true;
        }
        // Write maximal runs of non-zero blocks in one call each.
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

    async fn finish(&mut self, sink: &mut dyn Sink) -> Result<()> {
        sink.set_len(self.size).await
    }
}
