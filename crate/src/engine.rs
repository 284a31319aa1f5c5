//! The copy engine: turns any image's extent map into output through a writer, a window of
//! guest data at a time, so memory stays bounded whatever the image size.

use crate::codec::{Codec, Pool};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::image::{Backing, Image};
use crate::sink::{Chunk, Copied, Sink};
use crate::source::{ImageSet, Reads, check_range};
use crate::writer::Writer;

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

/// The largest compressed unit inflated (qcow2 clusters and VMDK grains are at most 2 MiB).
const MAX_UNIT: u64 = 64 << 20;

/// Compressed reads closer than this are fetched in one read (few large reads beat many small
/// ones, above all through `Blob.slice`).
const READ_GAP: u64 = 64 << 10;

/// An extent after following the backing chain: `depth` is the layer it was found in
/// (0 = the image itself); `Unallocated` at depth d means no layer down to d stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub extent: Extent,
    pub depth: usize,
}

/// The extents of `[start, start + len)` with backing layers flattened in.
pub async fn resolved_map(image: &dyn Image, start: u64, len: u64) -> Result<Vec<Resolved>> {
    let mut out = vec![];
    resolve_into(image, start, len, 0, &mut out).await?;
    Ok(out)
}

async fn resolve_into(
    image: &dyn Image,
    start: u64,
    len: u64,
    depth: usize,
    out: &mut Vec<Resolved>,
) -> Result<()> {
    let extents = image.map(start, len).await?;
    check_cover(&extents, start, len)?;
    for extent in extents {
        if extent.mapping != Mapping::Unallocated {
            out.push(Resolved { extent, depth });
            continue;
        }
        match image.backing() {
            Backing::None => out.push(Resolved { extent, depth }),
            Backing::Missing(name) => {
                return Err(Error::missing(format!(
                    "backing file {name} was not supplied with the image"
                )));
            }
            Backing::Present(backing) => {
                // The part past the backing image's end reads as zeros of this layer.
                let inside = backing
                    .virtual_size()
                    .saturating_sub(extent.start)
                    .min(extent.len);
                if inside > 0 {
                    Box::pin(resolve_into(backing, extent.start, inside, depth + 1, out)).await?;
                }
                if inside < extent.len {
                    let rest = Extent {
                        start: extent.start + inside,
                        len: extent.len - inside,
                        mapping: Mapping::Unallocated,
                    };
                    out.push(Resolved {
                        extent: rest,
                        depth,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A driver bug must not turn into wrong output: the map must tile the range exactly.
fn check_cover(extents: &[Extent], start: u64, len: u64) -> Result<()> {
    let mut pos = start;
    for e in extents {
        if e.start != pos || e.len == 0 {
            return Err(Error::corrupt(format!(
                "extent map has a gap or overlap at guest offset {pos}"
            )));
        }
        pos = e.end();
    }
    if pos != start + len {
        return Err(Error::corrupt(format!(
            "extent map ends at {pos}, expected {}",
            start + len
        )));
    }
    Ok(())
}

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

/// The guest ranges `(offset, length)` one chunk holds, in increasing order, back to back in
/// its buffer.
type Segments = Vec<(u64, usize)>;

fn total(segments: &Segments) -> usize {
    segments.iter().map(|&(_, n)| n).sum()
}

/// A chunk's buffer, its bytes starting on a page boundary: the kernel copies between the page
/// cache and user memory at under half speed when the two are misaligned (4 GiB of `pread`:
/// 0.75 s against 0.33 s), and malloc hands out large blocks 16 bytes into a page.
struct ChunkBuf {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

const PAGE: usize = 4096;

impl ChunkBuf {
    fn new(capacity: u64) -> Self {
        let vec = vec![0; capacity as usize + PAGE];
        let start = vec.as_ptr().align_offset(PAGE);
        ChunkBuf { vec, start, len: 0 }
    }

    fn with_len(mut self, len: usize) -> Self {
        debug_assert!(self.start + len <= self.vec.len());
        self.len = len;
        self
    }

    fn bytes(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }
}

/// Walks the guest disk a window at a time and hands out the chunks that hold stored data,
/// aligned to the writer's granularity. `extents` is the map of the current window.
struct Plan<'a> {
    image: &'a dyn Image,
    gran: u64,
    chunk: u64,
    /// Where the next window starts.
    mapped: u64,
    extents: Vec<Resolved>,
    runs: std::vec::IntoIter<(u64, u64)>,
    run: (u64, u64),
}

impl<'a> Plan<'a> {
    fn new(image: &'a dyn Image, gran: u64) -> Self {
        Plan {
            image,
            gran,
            // Chunks stay aligned to the writer's granularity (a power of two up to 2 MiB).
            chunk: CHUNK.max(gran),
            mapped: 0,
            extents: vec![],
            runs: vec![].into_iter(),
            run: (0, 0),
        }
    }

    /// The next chunk: stored ranges of one window, up to `chunk` bytes in all, so runs of
    /// data between zeros travel in full chunks (a qcow2 stores them back to back: one read).
    /// Maps further windows as needed; `report` hears of each window passed, so a huge empty
    /// disk still shows progress and cancels.
    async fn next(
        &mut self,
        report: &mut dyn FnMut(u64) -> Result<()>,
    ) -> Result<Option<Segments>> {
        let size = self.image.virtual_size();
        let mut segments = vec![];
        let mut room = self.chunk;
        loop {
            let (pos, end) = self.run;
            if pos < end {
                let n = room.min(end - pos);
                self.run.0 += n;
                room -= n;
                segments.push((pos, n as usize));
                if room == 0 {
                    return Ok(Some(segments));
                }
                continue;
            }
            if let Some(run) = self.runs.next() {
                self.run = run;
                continue;
            }
            if !segments.is_empty() {
                // A chunk's extents are those of one window.
                return Ok(Some(segments));
            }
            if self.mapped >= size {
                return Ok(None);
            }
            if self.mapped > 0 {
                report(self.mapped)?;
            }
            let start = self.mapped;
            let len = MAP_WINDOW.min(size - start);
            self.extents = resolved_map(self.image, start, len).await?;
            self.runs = stored_runs(&self.extents, self.gran, start, start + len).into_iter();
            self.mapped = start + len;
        }
    }
}

/// Fails before anything is written when some layer cannot be read.
pub fn check_readable(image: &dyn Image) -> Result<()> {
    let mut layer = image;
    loop {
        layer.readable()?;
        match layer.backing() {
            Backing::None => return Ok(()),
            Backing::Missing(name) => {
                return Err(Error::missing(format!(
                    "backing file {name} was not supplied with the image"
                )));
            }
            Backing::Present(b) => layer = b,
        }
    }
}

/// The guest ranges that hold stored data, widened to `gran` boundaries (clamped to the
/// window) and merged where they touch.
fn stored_runs(extents: &[Resolved], gran: u64, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = vec![];
    for r in extents {
        if matches!(r.extent.mapping, Mapping::Zero | Mapping::Unallocated) {
            continue;
        }
        let s = (r.extent.start / gran * gran).max(lo);
        let e = r.extent.end().div_ceil(gran).saturating_mul(gran).min(hi);
        match runs.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    runs
}

/// One compressed unit to inflate into `buf[dest..dest + len]`.
struct Inflate {
    file: FileId,
    offset: u64,
    clen: u64,
    codec: Codec,
    unit: u64,
    skip: u64,
    dest: usize,
    len: usize,
}

/// The runs of a chunk that are input bytes unchanged: `(offset in the chunk, length, file,
/// offset in the file)`, ascending, merged where they continue each other.
type CopiedRuns = Vec<(usize, usize, FileId, u64)>;

/// Materialise the guest bytes of `segments` into `buf`, one after the other, handing it back
/// with the runs copied from input files. Those runs are left unread unless `read_copied`.
async fn fill(
    set: &ImageSet,
    pool: &dyn Pool,
    extents: &[Resolved],
    segments: &Segments,
    mut buf: ChunkBuf,
    read_copied: bool,
) -> Result<(ChunkBuf, CopiedRuns)> {
    let mut copied: CopiedRuns = vec![];
    let mut inflates = vec![];
    // Verbatim reads, grouped by file, each group handed to its source at once.
    let mut reads: Vec<(FileId, Reads)> = vec![];
    let mut base = 0;
    for &(seg_start, seg_len) in segments {
        let seg_end = seg_start + seg_len as u64;
        let first = extents.partition_point(|r| r.extent.end() <= seg_start);
        for r in &extents[first..] {
            if r.extent.start >= seg_end {
                break;
            }
            let e = &r.extent;
            let (s, t) = (e.start.max(seg_start), e.end().min(seg_end));
            if s >= t {
                continue;
            }
            let dest = base + (s - seg_start) as usize..base + (t - seg_start) as usize;
            match e.mapping {
                Mapping::Zero | Mapping::Unallocated => buf.bytes_mut()[dest].fill(0),
                Mapping::Data { file, offset } => {
                    let at = offset + (s - e.start);
                    check_range(&**set.file(file), at, t - s, "data")?;
                    match copied.last_mut() {
                        Some((b, n, f, a))
                            if *f == file && *b + *n == dest.start && *a + *n as u64 == at =>
                        {
                            *n += dest.len()
                        }
                        _ => copied.push((dest.start, dest.len(), file, at)),
                    }
                    if !read_copied {
                        continue;
                    }
                    let dest = buf.start + dest.start..buf.start + dest.end;
                    match reads.iter_mut().find(|(f, _)| *f == file) {
                        Some((_, list)) => list.push((at, dest)),
                        None => reads.push((file, vec![(at, dest)])),
                    }
                }
                Mapping::Compressed {
                    file,
                    offset,
                    len,
                    codec,
                    unit,
                    skip,
                } => inflates.push(Inflate {
                    file,
                    offset,
                    clen: len,
                    codec,
                    unit,
                    skip: skip + (s - e.start),
                    dest: dest.start,
                    len: dest.len(),
                }),
            }
        }
        base += seg_len;
    }
    for (file, list) in reads {
        let at = buf.vec.as_ptr();
        buf.vec = set.file(file).read_into(list, buf.vec).await?;
        if buf.vec.as_ptr() != at {
            return Err(Error::io("the host handed back a different read buffer"));
        }
    }
    if !inflates.is_empty() {
        inflate_all(set, pool, &inflates, buf.bytes_mut()).await?;
    }
    Ok((buf, copied))
}

async fn inflate_all(
    set: &ImageSet,
    pool: &dyn Pool,
    jobs: &[Inflate],
    buf: &mut [u8],
) -> Result<()> {
    // Read the compressed bytes in as few reads as possible: jobs are in guest order, which
    // for every known writer is also file order; merge what is close in the same file.
    let mut spans: Vec<(FileId, u64, u64)> = vec![];
    for j in jobs {
        let src = &**set.file(j.file);
        check_range(src, j.offset, j.clen, "compressed data")?;
        if j.unit > MAX_UNIT {
            return Err(Error::corrupt(format!(
                "compressed unit of {} bytes is too large",
                j.unit
            )));
        }
        match spans.last_mut() {
            Some((f, s, e)) if *f == j.file && j.offset >= *s && j.offset <= *e + READ_GAP => {
                *e = (*e).max(j.offset + j.clen);
            }
            _ => spans.push((j.file, j.offset, j.offset + j.clen)),
        }
    }
    let mut data = Vec::with_capacity(spans.len());
    for &(file, s, e) in &spans {
        let mut v = vec![0; (e - s) as usize];
        set.file(file).read_at(s, &mut v).await?;
        data.push((file, s, v));
    }
    let input = |j: &Inflate| -> &[u8] {
        let (_, s, v) = data
            .iter()
            .find(|(f, s, v)| {
                *f == j.file && j.offset >= *s && j.offset + j.clen <= *s + v.len() as u64
            })
            .expect("every job lies in a span");
        &v[(j.offset - s) as usize..(j.offset - s + j.clen) as usize]
    };
    let mut units: Vec<Vec<u8>> = jobs.iter().map(|j| vec![0; j.unit as usize]).collect();
    let mut batch: Vec<(Codec, &[u8], &mut [u8])> = jobs
        .iter()
        .zip(units.iter_mut())
        .map(|(j, u)| (j.codec, input(j), u.as_mut_slice()))
        .collect();
    pool.decompress_all(&mut batch).await?;
    for (j, u) in jobs.iter().zip(&units) {
        let skip = j.skip as usize;
        let part = u
            .get(skip..skip + j.len)
            .ok_or_else(|| Error::corrupt("compressed extent lies outside its unit"))?;
        buf[j.dest..j.dest + j.len].copy_from_slice(part);
    }
    Ok(())
}

/// One row of `vmdisk map --json`, shaped like `qemu-img map --output=json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub depth: usize,
    pub present: bool,
    pub zero: bool,
    pub data: bool,
    pub compressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Which file `offset` is in (qemu-img leaves this implicit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl MapEntry {
    fn from_resolved(set: &ImageSet, r: &Resolved) -> MapEntry {
        let e = &r.extent;
        let (present, zero, data, compressed, offset, file) = match e.mapping {
            Mapping::Zero => (true, true, false, false, None, None),
            Mapping::Unallocated => (false, true, false, false, None, None),
            Mapping::Data { file, offset } => (true, false, true, false, Some(offset), Some(file)),
            Mapping::Compressed { .. } => (true, false, true, true, None, None),
        };
        MapEntry {
            start: e.start,
            length: e.len,
            depth: r.depth,
            present,
            zero,
            data,
            compressed,
            offset,
            file: file.map(|f| set.file(f).name().to_string()),
        }
    }

    /// Extend `self` by `next` when qemu-img would print them as one row.
    fn absorb(&mut self, next: &MapEntry) -> bool {
        let same = (
            self.depth,
            self.present,
            self.zero,
            self.data,
            self.compressed,
            &self.file,
        ) == (
            next.depth,
            next.present,
            next.zero,
            next.data,
            next.compressed,
            &next.file,
        );
        let contiguous = match (self.offset, next.offset) {
            (Some(a), Some(b)) => a + self.length == b,
            (None, None) => true,
            _ => false,
        };
        if same && contiguous && self.start + self.length == next.start {
            self.length += next.length;
            true
        } else {
            false
        }
    }
}

/// The whole map, a window at a time, with rows merged across windows. `emit` receives each
/// finished row, so a huge fragmented image never holds its whole map in memory.
pub async fn map(set: &ImageSet, image: &dyn Image, emit: &mut dyn FnMut(MapEntry)) -> Result<()> {
    let size = image.virtual_size();
    let mut pending: Option<MapEntry> = None;
    let mut start = 0;
    while start < size {
        let len = MAP_WINDOW.min(size - start);
        for r in resolved_map(image, start, len).await? {
            let row = MapEntry::from_resolved(set, &r);
            if pending.as_mut().is_some_and(|p| p.absorb(&row)) {
                continue;
            }
            if let Some(p) = pending.replace(row) {
                emit(p);
            }
        }
        start += len;
    }
    if let Some(p) = pending {
        emit(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Serial;
    use crate::formats::raw::RawImage;
    use crate::probe::Format;
    use crate::sink::MemSink;
    use crate::source::{MemSource, Source};
    use crate::writer::raw::RawWriter;
    use async_trait::async_trait;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A source whose reads finish only after the engine has started writing (each `read_into`
    /// pends once), with a hole map, recording where each chunk's first read lands in memory.
    struct Lagging {
        inner: MemSource,
        holes: Vec<(u64, u64)>,
        misaligned: RefCell<usize>,
    }

    #[async_trait(?Send)]
    impl Source for Lagging {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn len(&self) -> u64 {
            self.inner.len()
        }
        async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            self.inner.read_at(offset, buf).await
        }
        async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
            let mut pended = false;
            std::future::poll_fn(|cx| {
                if pended {
                    return std::task::Poll::Ready(());
                }
                pended = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
            for (offset, range) in reads {
                if !(buf[range.start..].as_ptr() as usize).is_multiple_of(PAGE)
                    && offset % CHUNK == 0
                {
                    *self.misaligned.borrow_mut() += 1;
                }
                self.inner.read_at(offset, &mut buf[range]).await?;
            }
            Ok(buf)
        }
        async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
            let mut out = vec![];
            let mut pos = start;
            for &(s, e) in &self.holes {
                if s > pos && pos < start + len {
                    out.push((pos, s.min(start + len)));
                }
                pos = pos.max(e);
            }
            if pos < start + len {
                out.push((pos, start + len));
            }
            Some(out)
        }
    }

    /// Two windows and an odd tail: data, a whole empty window, data in the last sector.
    fn disk() -> (Vec<u8>, Vec<(u64, u64)>) {
        let size = 2 * MAP_WINDOW + (3 << 20) + 517;
        let mut data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 | 1).collect();
        let holes = vec![(5 << 20, MAP_WINDOW + (7 << 20)), (size - 4096, size - 100)];
        for &(s, e) in &holes {
            data[s as usize..e as usize].fill(0);
        }
        (data, holes)
    }

    fn run(progress: &mut dyn FnMut(u64, u64) -> bool) -> (Vec<u8>, Rc<Lagging>, Result<Vec<u8>>) {
        let (data, holes) = disk();
        let src = Rc::new(Lagging {
            inner: MemSource::new("disk", data.clone()),
            holes,
            misaligned: RefCell::new(0),
        });
        let set = ImageSet::new(vec![src.clone()]);
        let image = RawImage::new(Format::Raw, FileId(0), src.clone());
        let mut writer = RawWriter::new(image.virtual_size());
        let mut sink = MemSink::default();
        let result = pollster::block_on(convert(
            &set,
            &image,
            &mut writer,
            &mut sink,
            &Serial,
            progress,
        ));
        (data, src, result.map(|()| sink.data))
    }

    #[test]
    fn pipelined_reads_copy_every_byte_with_monotonic_progress() {
        let mut seen = vec![];
        let (data, src, out) = run(&mut |done, total| {
            seen.push((done, total));
            true
        });
        assert!(out.unwrap() == data, "output differs from the disk");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last().map(|p| p.0), Some(data.len() as u64));
        assert_eq!(
            *src.misaligned.borrow(),
            0,
            "chunk buffers must be page-aligned"
        );
    }

    #[test]
    fn progress_returning_false_cancels() {
        let mut calls = 0;
        let (_, _, out) = run(&mut |_, _| {
            calls += 1;
            calls < 3
        });
        assert!(
            matches!(&out, Err(e) if e.is_cancelled()),
            "{:?}",
            out.err()
        );
        assert_eq!(calls, 3);
    }
}
