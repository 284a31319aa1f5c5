//! The native host: files on disk and a thread pool for (de)compression.

use crate::codec::{self, Codec, Compressed, Decompress, Pool};
use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::source::{Reads, Source};
use async_trait::async_trait;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

pub struct FileSource {
    name: String,
    file: Arc<File>,
    len: u64,
    allocated: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(format!("{}: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::from_file(name, file, path)
    }

    fn from_file(name: String, file: File, path: &Path) -> Result<Self> {
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(Error::invalid(format!("{} is a directory", path.display())));
        }
        // Block devices report length 0 in metadata; seek to the end instead.
        let len = if meta.is_file() {
            meta.len()
        } else {
            std::io::Seek::seek(&mut &file, std::io::SeekFrom::End(0))?
        };
        Ok(FileSource {
            name,
            file: Arc::new(file),
            len,
            allocated: meta.blocks() * 512,
        })
    }
}

#[async_trait(?Send)]
impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(format!("reading {}: {e}", self.name)))
    }
    /// The reads run on the reader thread, so the kernel's copy out of the page cache (most of
    /// an uncompressed conversion's time) overlaps the engine's zero checks and writes.
    async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        let (done, result) = futures::channel::oneshot::channel();
        let file = self.file.clone();
        on_reader_thread(Box::new(move || {
            let read = reads
                .into_iter()
                .try_for_each(|(offset, range)| match buf.get_mut(range) {
                    Some(part) => file.read_exact_at(part, offset),
                    None => Err(std::io::Error::other("read outside the buffer")),
                });
            // The receiver is gone only when the conversion was abandoned.
            let _ = done.send(read.map(|()| buf));
        }));
        result
            .await
            .map_err(|_| Error::io(format!("reading {}: the read was abandoned", self.name)))?
            .map_err(|e| Error::io(format!("reading {}: {e}", self.name)))
    }
    fn allocated_size(&self) -> Option<u64> {
        Some(self.allocated)
    }

    async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        // Only a regular file with fewer allocated blocks than its length can have holes.
        if self.allocated >= self.len {
            return None;
        }
        let fd = self.file.as_raw_fd();
        let end = start + len;
        let mut ranges = vec![];
        let mut pos = start;
        while pos < end {
            let data = seek(fd, pos, libc::SEEK_DATA);
            if data < 0 {
                // ENXIO: no data after pos. Anything else: the file system cannot tell.
                return (std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO))
                    .then_some(ranges);
            }
            let data = data as u64;
            if data >= end {
                break;
            }
            let hole = seek(fd, data, libc::SEEK_HOLE);
            if hole < 0 {
                return None;
            }
            let hole = (hole as u64).min(end);
            ranges.push((data, hole));
            pos = hole;
        }
        Some(ranges)
    }
}

/// `lseek(fd, pos, whence)` for SEEK_DATA / SEEK_HOLE: the new position, or negative with
/// errno set. The one place vmdisk needs `unsafe` (std has no hole queries).
#[allow(unsafe_code)]
fn seek(fd: std::os::fd::RawFd, pos: u64, whence: libc::c_int) -> libc::off_t {
    // SAFETY: lseek on a file descriptor we own; reads use pread, so moving the shared file
    // position is harmless.
    unsafe { libc::lseek(fd, pos as libc::off_t, whence) }
}

type Job = Box<dyn FnOnce() + Send>;

/// Run `job` on the one reader thread, started on first use. A dedicated thread rather than
/// the compression pool: waking a pool worker per chunk costs dozens of context switches.
fn on_reader_thread(job: Job) {
    static READER: std::sync::OnceLock<std::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    let sender = READER.get_or_init(|| {
        let (sender, jobs) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("vmdisk-reader".into())
            .spawn(move || jobs.into_iter().for_each(|job| job()))
            .expect("spawning the reader thread");
        sender
    });
    // The thread never exits while the sender lives (it is static), so sending cannot fail.
    let _ = sender.send(job);
}

pub struct FileSink {
    file: File,
}

impl FileSink {
    pub fn new(file: File) -> Self {
        FileSink { file }
    }
}

#[async_trait(?Send)]
impl Sink for FileSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        Ok(self.file.write_all_at(data, offset)?)
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        Ok(self.file.set_len(len)?)
    }
    async fn finish(&mut self) -> Result<()> {
        // No fsync: like qemu-img convert, durability is the OS's business; the rename into
        // place is what makes a finished output visible.
        Ok(())
    }
}

/// Scratch files in the system's temporary directory (`TMPDIR`), unlinked as soon as they are
/// made: the kernel frees them when the last handle closes, even if vmdisk is killed.
pub struct TempScratch;

#[async_trait(?Send)]
impl crate::sink::Scratch for TempScratch {
    async fn create(&self, _name: &str) -> Result<Box<dyn crate::sink::ScratchFile>> {
        let file = tempfile::tempfile()
            .map_err(|e| Error::io(format!("creating a temporary file: {e}")))?;
        Ok(Box::new(FileSink { file }))
    }
}

impl crate::sink::ScratchFile for FileSink {
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn Source>> {
        Ok(std::rc::Rc::new(FileSource::from_file(
            name.to_string(),
            self.file,
            Path::new(name),
        )?))
    }
}

/// Spreads each batch over every core. rayon's threads persist across batches, so each keeps
/// its (de)compressor state; its work stealing balances batches that mix random and text data.
#[derive(Default)]
pub struct ThreadPool;

impl ThreadPool {
    pub fn new() -> Self {
        ThreadPool
    }
}

#[async_trait(?Send)]
impl Pool for ThreadPool {
    async fn compress_all(&self, codec: Codec, inputs: &[&[u8]], limit: usize) -> Compressed {
        use rayon::prelude::*;
        inputs
            .par_iter()
            .map(|i| codec::compress(codec, i, limit))
            .collect()
    }

    async fn decompress_all(&self, jobs: &mut [Decompress<'_>]) -> Result<()> {
        use rayon::prelude::*;
        jobs.par_iter_mut()
            .try_for_each(|(c, i, o)| codec::decompress(*c, i, o).map(drop))
    }
}

/// Run a core future to completion on this thread: native sources never pend.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
