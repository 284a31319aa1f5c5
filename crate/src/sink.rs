//! Seekable output. qcow2 needs to patch tables after the data, so a sink is random-access.

use crate::error::{Error, Result};
use crate::source::Source;
use async_trait::async_trait;

/// Bytes copied from an input at most this much at a time when a sink copies a reference.
const COPY_STEP: u64 = 1 << 20;

#[async_trait(?Send)]
pub trait Sink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// The `len` bytes at `offset` are `src`'s bytes from `at`, unchanged. A composing sink
    /// keeps the reference; the others copy.
    async fn write_ref(&mut self, offset: u64, src: &dyn Source, at: u64, len: u64) -> Result<()> {
        let mut steps = CopySteps::new(src, at, len, COPY_STEP);
        while let Some((done, bytes)) = steps.next().await? {
            self.write_at(offset + done, bytes).await?;
        }
        Ok(())
    }
    /// True when [`Sink::write_ref`] is cheaper than writing the bytes (the output is composed
    /// of references to the input): writers then hand over references where they can, and the
    /// engine does not even read what a writer passes through unchanged. Asked again for
    /// every chunk: a composed output past its part budget wants bytes.
    fn composes(&self) -> bool {
        false
    }
    /// Set the final length (extends with a hole when longer: raw output stays sparse).
    async fn set_len(&mut self, len: u64) -> Result<()>;
    /// Make everything durable / visible; called once after the last write.
    async fn finish(&mut self) -> Result<()>;
}

/// The bytes of a reference read a step at a time, for a sink that copies it: `len` bytes of
/// `src` from `at`, in pieces of at most `step` bytes.
pub struct CopySteps<'a> {
    src: &'a dyn Source,
    at: u64,
    len: u64,
    done: u64,
    buf: Vec<u8>,
}

impl<'a> CopySteps<'a> {
    pub fn new(src: &'a dyn Source, at: u64, len: u64, step: u64) -> Self {
        let buf = vec![0; len.min(step) as usize];
        CopySteps {
            src,
            at,
            len,
            done: 0,
            buf,
        }
    }

    /// The next piece and its offset from the start of the reference; None after the last.
    pub async fn next(&mut self) -> Result<Option<(u64, &[u8])>> {
        if self.done >= self.len {
            return Ok(None);
        }
        let n = (self.len - self.done).min(self.buf.len() as u64) as usize;
        let done = self.done;
        self.src.read_at(self.at + done, &mut self.buf[..n]).await?;
        self.done += n as u64;
        Ok(Some((done, &self.buf[..n])))
    }
}

/// A run of a chunk copied unchanged from an input: `len` bytes at `buf` in the chunk are
/// `src`'s bytes from `at`.
#[derive(Clone, Copy)]
pub struct Copied<'a> {
    pub buf: usize,
    pub len: usize,
    pub src: &'a dyn Source,
    pub at: u64,
}

/// Guest bytes as the engine hands them to a writer, with the runs that are input bytes
/// unchanged. When the sink composes and the writer does not look at the data
/// ([`crate::writer::Writer::reads_data`]), the copied runs of `bytes` were never read
/// (`unread`): they must go out as references.
#[derive(Clone, Copy)]
pub struct Chunk<'a> {
    pub bytes: &'a [u8],
    pub unread: bool,
    /// Ascending, disjoint; their `buf` counts from `base` bytes before `bytes` (a slice of a
    /// chunk shares its runs).
    copied: &'a [Copied<'a>],
    base: usize,
}

impl<'a> From<&'a [u8]> for Chunk<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Chunk::new(bytes, &[], false)
    }
}

impl<'a> Chunk<'a> {
    pub fn new(bytes: &'a [u8], copied: &'a [Copied<'a>], unread: bool) -> Self {
        Chunk {
            bytes,
            unread,
            copied,
            base: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `bytes[start..end]`, with its copied runs.
    pub fn slice(&self, start: usize, end: usize) -> Chunk<'a> {
        Chunk {
            bytes: &self.bytes[start..end],
            unread: self.unread,
            copied: self.copied,
            base: self.base + start,
        }
    }

    /// The chunk as pieces `(start, end, run)`: the copied runs clipped to it (`buf` relative
    /// to this chunk), and `None` for the bytes between them.
    pub fn pieces(&self) -> Vec<(usize, usize, Option<Copied<'a>>)> {
        let (lo, hi) = (self.base, self.base + self.bytes.len());
        let first = self.copied.partition_point(|c| c.buf + c.len <= lo);
        let mut out = vec![];
        let mut pos = lo;
        for c in &self.copied[first..] {
            if c.buf >= hi {
                break;
            }
            let (s, e) = (c.buf.max(pos), (c.buf + c.len).min(hi));
            if s > pos {
                out.push((pos - lo, s - lo, None));
            }
            let run = Copied {
                buf: s - lo,
                len: e - s,
                src: c.src,
                at: c.at + (s - c.buf) as u64,
            };
            out.push((s - lo, e - lo, Some(run)));
            pos = e;
        }
        if pos < hi {
            out.push((pos - lo, hi - lo, None));
        }
        out
    }
}

/// Write `chunk` at `offset`: as references where it is input bytes and the sink composes
/// (or they were not read), else as bytes.
pub async fn put(sink: &mut dyn Sink, offset: u64, chunk: Chunk<'_>) -> Result<()> {
    if (!sink.composes() && !chunk.unread) || chunk.copied.is_empty() {
        return sink.write_at(offset, chunk.bytes).await;
    }
    for (s, e, run) in chunk.pieces() {
        match run {
            Some(r) => {
                sink.write_ref(offset + s as u64, r.src, r.at, r.len as u64)
                    .await?
            }
            None => sink.write_at(offset + s as u64, &chunk.bytes[s..e]).await?,
        }
    }
    Ok(())
}

/// Temporary files for a package member that must be decompressed before a driver can read
/// it at random (a qcow2 inside xz, a gzip-compressed OVF disk). The host removes each one
/// when its source is dropped, whatever happens: natively an unlinked temporary file, in a
/// browser an OPFS file.
#[async_trait(?Send)]
pub trait Scratch {
    async fn create(&self, name: &str) -> Result<Box<dyn ScratchFile>>;
}

/// A scratch file: written once from the start (with holes where data is zero), then read.
pub trait ScratchFile: Sink {
    /// What was written, as a source named `name`.
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn crate::Source>>;
}

/// Scratch space in memory, for tests and small members.
pub struct MemScratch;

#[async_trait(?Send)]
impl Scratch for MemScratch {
    async fn create(&self, _name: &str) -> Result<Box<dyn ScratchFile>> {
        Ok(Box::new(MemSink::default()))
    }
}

impl ScratchFile for MemSink {
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn crate::Source>> {
        Ok(std::rc::Rc::new(crate::source::MemSource::new(
            name, self.data,
        )))
    }
}

/// An in-memory sink, for tests and small outputs.
#[derive(Default)]
pub struct MemSink {
    pub data: Vec<u8>,
}

#[async_trait(?Send)]
impl Sink for MemSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::io("offset too large"))?;
        let end = start + data.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(data);
        Ok(())
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        let len = usize::try_from(len).map_err(|_| Error::io("length too large"))?;
        self.data.resize(len, 0);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
