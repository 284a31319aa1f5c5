//! The copy engine: turns any image's extent map into output through a writer, a window of
//! guest data at a time, so memory stays bounded whatever the image size.

use crate::codec::Pool;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::sink::{Chunk, Copied, Sink};
use crate::source::ImageSet;
use crate::writer::Writer;
use fill::fill;
use plan::{ChunkBuf, Plan, total};

/// Guest bytes whose extent map is asked for at once: few calls even for a huge sparse disk,
/// and a bounded extent list even for a fragmented one (at worst one extent per 512-byte
/// cluster: ~10 MiB of list per 64 MiB). A chunk takes the stored runs of one window, so the
/// browser's 32 MiB chunks need wider windows to fill up on a disk that is mostly zeros
/// (qcow2 -> raw on the benchmark disk: 4.8 s with 64 MiB windows, 3.9 s with 256 MiB).
#[cfg(not(target_arch = "wasm32"))]
pub const MAP_WINDOW: u64 = 64 << 20;
#[cfg(target_arch = "wasm32")]
pub const MAP_WINDOW: u64 = 256 << 20;

/// Guest bytes read and written per step; two chunks are held (one being read, one being
/// written). Natively, 1 MiB stays in a core's cache between reading, zero-checking and
/// writing (measured on the benchmark: 1 MiB 0.49 s, 2 MiB 0.54 s, 4 MiB 1.3-2.4 s for
/// qcow2 -> raw). In the browser each `Blob.slice` read has a fixed cost, and larger reads are
/// faster up to 32 MiB and more (16 MiB ~650 MiB/s, 32 MiB ~770 MiB/s).
#[cfg(not(target_arch = "wasm32"))]
pub const CHUNK: u64 = 1 << 20;
#[cfg(target_arch = "wasm32")]
pub const CHUNK: u64 = 32 << 20;

mod fill;
mod map;
mod plan;
#[cfg(test)]
mod tests;

pub use crate::chain::{Resolved, check_readable, resolved_map};
pub use map::{MapEntry, map};

/// Copy the whole guest disk of `image` into `writer`. `progress(done, total)` is called after
/// each chunk and each empty window; returning false cancels with [`Error::cancelled`].
///
/// Reading is pipelined: the next chunk's read is in flight while this chunk is zero-checked,
/// compressed and written, so the host's read copies overlap the rest of the work.
pub async fn convert(
    set: &ImageSet,
    image: &dyn Image,
    writer: &mut dyn Writer,
    sink: &mut dyn Sink,
    pool: &dyn Pool,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<()> {
    check_readable(image)?;
    let size = image.virtual_size();
    let gran = writer.granularity();
    // A composed output references what the writer passes through: nothing to read for it.
    let writer_reads = writer.reads_data();
    let reads = |sink: &dyn Sink| writer_reads || !sink.composes();
    let mut plan = Plan::new(image, gran);
    let mut done = 0;
    let mut report = |pos: u64| {
        done = done.max(pos);
        if progress(done, size) {
            Ok(())
        } else {
            Err(Error::cancelled())
        }
    };
    let mut spare = ChunkBuf::new(plan.chunk);
    let mut current = match plan.next(&mut report).await? {
        Some(segments) => {
            let first = ChunkBuf::new(plan.chunk).with_len(total(&segments));
            let read = reads(sink);
            let filled = fill(set, pool, &plan.extents, &segments, first, read).await?;
            Some((filled, read, segments))
        }
        None => None,
    };
    while let Some(((buf, copied), read, segments)) = current {
        let next = plan.next(&mut report).await?;
        let next_read = reads(sink);
        let write = async {
            let copied: Vec<Copied> = copied
                .iter()
                .map(|&(buf, len, file, at)| Copied {
                    buf,
                    len,
                    src: &**set.file(file),
                    at,
                })
                .collect();
            let chunk = Chunk::new(buf.bytes(), &copied, !read);
            let mut at = 0;
            for &(pos, n) in &segments {
                writer
                    .write(sink, pool, pos, chunk.slice(at, at + n))
                    .await?;
                at += n;
            }
            Ok::<(), Error>(())
        };
        current = match next {
            Some(next) => {
                let read = fill(
                    set,
                    pool,
                    &plan.extents,
                    &next,
                    spare.with_len(total(&next)),
                    next_read,
                );
                let (filled, written) = futures::future::join(read, write).await;
                written?;
                Some((filled?, next_read, next))
            }
            None => {
                write.await?;
                None
            }
        };
        if let Some(&(pos, n)) = segments.last() {
            report(pos + n as u64)?;
        }
        // A browser worker hears a cancel between chunks even when its reads are synchronous
        // (a decompressed stream).
        crate::yield_now().await;
        spare = buf;
    }
    report(size)?;
    writer.finish(sink).await
}

/// The guest bytes `[offset, offset + len)` of `image`, read as [`convert`] reads them: through
/// the flattened chain's extent map, zeros where nothing is stored. `len` must already be
/// bounded by the caller (this allocates it); a range past the disk's end is an error.
pub async fn read_guest(
    set: &ImageSet,
    image: &dyn Image,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= image.virtual_size() => {}
        _ => {
            return Err(Error::truncated(format!(
                "guest bytes at {offset} (+{len}) lie past the end of the disk"
            )));
        }
    }
    let extents = resolved_map(image, offset, len as u64).await?;
    let buf = ChunkBuf::new(len as u64).with_len(len);
    let segments = vec![(offset, len)];
    let (buf, _) = fill(set, &crate::codec::Serial, &extents, &segments, buf, true).await?;
    Ok(buf.bytes().to_vec())
}
