//! Reading one chunk: verbatim runs through the host's batched reads, compressed units through
//! the (de)compression pool.

use super::plan::{ChunkBuf, Segments};
use crate::chain::Resolved;
use crate::codec::{Codec, Pool};
use crate::error::{Error, Result};
use crate::extent::{FileId, Mapping};
use crate::source::{ImageSet, Reads, check_range};

/// The largest compressed unit inflated (qcow2 clusters and VMDK grains are at most 2 MiB).
const MAX_UNIT: u64 = 64 << 20;

/// Compressed reads closer than this are fetched in one read (few large reads beat many small
/// ones, above all through `Blob.slice`).
const READ_GAP: u64 = 64 << 10;

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
pub(super) type CopiedRuns = Vec<(usize, usize, FileId, u64)>;

/// Materialise the guest bytes of `segments` into `buf`, one after the other, handing it back
/// with the runs copied from input files. Those runs are left unread unless `read_copied`.
pub(super) async fn fill(
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
