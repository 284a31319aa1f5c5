//! Random-access input: the only way format code sees bytes.

use crate::error::{Error, Result};
use async_trait::async_trait;
use std::ops::Range;
use std::rc::Rc;

/// One file of an image set. `read_at` is async so the browser's `Blob.slice().arrayBuffer()`
/// fits; native hosts complete it immediately.
#[async_trait(?Send)]
pub trait Source {
    /// The plain file name (no directory), used to resolve companions.
    fn name(&self) -> &str;
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` from `offset`. Callers check bounds first (see [`read_exact`]); a short read is an error.
    /// Hosts whose reads complete at once (files, memory) implement only `read_blocking`.
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_blocking(offset, buf)
    }
    /// Fill `buf[range]` from `offset` for each of `reads` (ascending, disjoint ranges, already
    /// bounds-checked). The buffer is handed over and back so a host can do the reads elsewhere
    /// (another thread natively, concurrent Blob slices in the browser) while the engine is
    /// still writing the previous chunk.
    async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        for (offset, range) in reads {
            self.read_at(offset, &mut buf[range]).await?;
        }
        Ok(buf)
    }
    /// Fill `buf` from `offset` without yielding, for decoders that pull their input (gzip,
    /// xz and zstd streams). Every host has it: native files, memory, and in a browser worker
    /// `FileReaderSync` and OPFS sync access handles.
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let _ = (offset, buf);
        Err(Error::unsupported(format!(
            "{} cannot be read synchronously here (compressed packages are read in a worker)",
            self.name()
        )))
    }
    /// True when reading far from the last read is costly (a decompressed stream): detection
    /// then skips the file's tail.
    fn sequential(&self) -> bool {
        false
    }
    /// Get ready to read at `offset`: a decompressed stream decodes its way there in steps,
    /// giving the host its turn between them (a browser worker then hears a cancel), instead of
    /// in one long synchronous read. Nothing to do for other sources.
    async fn advance(&self, offset: u64) -> Result<()> {
        let _ = offset;
        Ok(())
    }
    /// Where `[at, at + len)` of this source is stored unchanged in a file of the host (a
    /// picked `File`): that file and the offset there. A composed output references such
    /// ranges instead of copying them. Windows of a file (package members) answer for it;
    /// decoded streams and scratch copies do not.
    fn host_range(&self, at: u64, len: u64) -> Option<(HostFile, u64)> {
        let _ = (at, len);
        None
    }
    /// Bytes the file occupies on its storage, when the host knows (sparse files).
    fn allocated_size(&self) -> Option<u64> {
        None
    }
    /// The ranges of `[start, start + len)` that hold data, when the host can tell a sparse
    /// file's holes (which read as zeros); None when it cannot, and everything counts as data.
    async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let _ = (start, len);
        None
    }
}

/// A file of the host, opaque to the engine (a `Blob` in a browser); two are the same file
/// when they are the same allocation.
pub type HostFile = Rc<dyn std::any::Any>;

/// Reads into one buffer: `(file offset, range of the buffer)`, ascending and disjoint.
pub type Reads = Vec<(u64, Range<usize>)>;

/// Read `buf.len()` bytes at `offset`, failing with a `Truncated` error naming `what` when the range
/// is not inside the file. Every read of image metadata goes through here.
pub async fn read_exact(src: &dyn Source, offset: u64, buf: &mut [u8], what: &str) -> Result<()> {
    check_range(src, offset, buf.len() as u64, what)?;
    src.read_at(offset, buf).await
}

/// Like [`read_exact`] into a new buffer. `len` must already be bounded by the caller's logic
/// (it is also bounded by the file length here, so an absurd size fails before allocating).
pub async fn read_vec(src: &dyn Source, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
    check_range(src, offset, len, what)?;
    let mut buf = vec![0; len as usize];
    src.read_at(offset, &mut buf).await?;
    Ok(buf)
}

/// Fails unless `[offset, offset + len)` lies inside the file, without overflow.
pub fn check_range(src: &dyn Source, offset: u64, len: u64, what: &str) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= src.len() => Ok(()),
        _ => Err(Error::truncated(format!(
            "{what} at offset {offset} (+{len} bytes) lies past the end of {} ({} bytes)",
            src.name(),
            src.len()
        ))),
    }
}

/// The `buf[range]` of each read as separate mutable slices, for hosts that fill them
/// concurrently. The ranges must be ascending and disjoint, as [`Source::read_into`] promises.
pub fn split_reads(reads: Reads, buf: &mut [u8]) -> Result<Vec<(u64, &mut [u8])>> {
    let mut out = Vec::with_capacity(reads.len());
    let mut rest = buf;
    let mut base = 0;
    for (offset, range) in reads {
        if range.start < base || range.end < range.start || range.end - base > rest.len() {
            return Err(Error::io("reads out of order or outside the buffer"));
        }
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(range.start - base);
        let (part, tail) = tail.split_at_mut(range.len());
        out.push((offset, part));
        rest = tail;
        base = range.end;
    }
    Ok(out)
}

/// An in-memory source, for tests and small inputs.
pub struct MemSource {
    name: String,
    data: Vec<u8>,
}

impl MemSource {
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Self {
        MemSource {
            name: name.into(),
            data,
        }
    }
}

#[async_trait(?Send)]
impl Source for MemSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::io("offset too large"))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.data.get(start..end))
            .ok_or_else(|| Error::io(format!("short read from {}", self.name)))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// `impl Source for $ty`, for a test source that holds a [`MemSource`] in `inner` and changes
/// only some of its answers: its name, length and reads come from `inner`, the methods given
/// in the braces change the rest.
#[cfg(test)]
macro_rules! mem_backed_source {
    ($ty:ty { $($changed:tt)* }) => {
        #[async_trait::async_trait(?Send)]
        impl $crate::source::Source for $ty {
            fn name(&self) -> &str {
                self.inner.name()
            }
            fn len(&self) -> u64 {
                self.inner.len()
            }
            async fn read_at(&self, offset: u64, buf: &mut [u8]) -> $crate::error::Result<()> {
                self.inner.read_at(offset, buf).await
            }
            $($changed)*
        }
    };
}
#[cfg(test)]
pub(crate) use mem_backed_source;

/// All files the user supplied together. Companions (backing files, extents, OVA members) are
/// found here by plain file name only: a path written inside an image never opens anything.
#[derive(Clone)]
pub struct ImageSet {
    files: Vec<Rc<dyn Source>>,
    /// How many of `files` the user picked; the rest are package members.
    picked: usize,
}

impl ImageSet {
    pub fn new(files: Vec<Rc<dyn Source>>) -> Self {
        let picked = files.len();
        ImageSet { files, picked }
    }

    /// Every file: the picked ones, then the members packages added.
    pub fn files(&self) -> &[Rc<dyn Source>] {
        &self.files
    }

    /// The files the user picked.
    pub fn picked(&self) -> &[Rc<dyn Source>] {
        &self.files[..self.picked]
    }

    /// Add a package member; it is found by name like a picked file, after them.
    pub fn add(&mut self, member: Rc<dyn Source>) -> crate::FileId {
        self.files.push(member);
        crate::FileId(self.files.len() - 1)
    }

    pub fn file(&self, id: crate::FileId) -> &Rc<dyn Source> {
        &self.files[id.0]
    }

    /// Resolve a reference written inside an image (backing file name, extent name) among the
    /// supplied files by its base name. Returns the file's id, or None when it was not supplied.
    pub fn find(&self, reference: &str) -> Option<crate::FileId> {
        let base = base_name(reference);
        if base.is_empty() || base == "." || base == ".." {
            return None;
        }
        self.files
            .iter()
            .position(|f| f.name() == base)
            .map(crate::FileId)
    }
}

/// The last component of a path written by any OS (`/` or `\` separators).
pub fn base_name(reference: &str) -> &str {
    reference.rsplit(['/', '\\']).next().unwrap_or(reference)
}

/// True when a reference is a bare file name: no directory, not absolute, no `..`, no drive
/// letter, no URL. Anything else is a safety finding even when we resolve its base name.
pub fn is_plain_name(reference: &str) -> bool {
    !reference.is_empty()
        && !reference.contains(['/', '\\', ':'])
        && reference != "."
        && reference != ".."
}
