//! Browser I/O: a [`Source`] over a `Blob`/`File`, and [`Sink`]s over the File System Access API.

use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::source::{Reads, Source, split_reads};
use async_trait::async_trait;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, File, FileSystemReadWriteOptions, FileSystemSyncAccessHandle,
    FileSystemWritableFileStream, WriteCommandType, WriteParams,
};

/// Why reading picked file `name` failed. Chromium fails every read of a `File` that changed
/// on disk after it was picked (a `NotReadableError`): say so in words.
pub fn read_error(name: &str, e: &JsValue) -> Error {
    let changed = e
        .dyn_ref::<web_sys::DomException>()
        .is_some_and(|d| d.name() == "NotReadableError");
    if changed {
        return Error::io(format!(
            "{name} changed or became unreadable after it was picked: pick it again"
        ));
    }
    Error::io(format!("reading {name}: {}", js_message(e)))
}

/// The message of a JS exception (an `Error`/`DOMException`, or whatever was thrown).
pub fn js_message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Reads of at least twice this size go out as [`PARTS`] concurrent slices.
const SPLIT_AT: u64 = 2 << 20;
const PARTS: u64 = 4;

/// A `File` (or plain `Blob`) the user picked. Every `read_at` is
/// `blob.slice(a, b).arrayBuffer()`: the copy engine reads 16 MiB at a time, the size at which
/// Blob reads reach their full speed, and such a read goes out as a few concurrent slices.
pub struct BlobSource {
    name: String,
    blob: Blob,
    len: u64,
    /// The blob again, as the host file a composed output references.
    host: crate::source::HostFile,
}

impl BlobSource {
    /// A `File` keeps its name (companions are matched by it); a bare `Blob` is called "blob".
    pub fn new(blob: Blob) -> Self {
        let name = blob
            .dyn_ref::<File>()
            .map(|f| f.name())
            .unwrap_or_else(|| "blob".into());
        Self::with_name(name, blob)
    }

    pub fn with_name(name: impl Into<String>, blob: Blob) -> Self {
        let len = blob.size() as u64;
        BlobSource {
            name: name.into(),
            host: std::rc::Rc::new(blob.clone()),
            blob,
            len,
        }
    }
}

#[async_trait(?Send)]
impl Source for BlobSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                Error::io(format!(
                    "short read from {}: {} bytes at offset {offset} of {}",
                    self.name,
                    buf.len(),
                    self.len
                ))
            })?;
        self.read_parts(vec![(offset, buf)]).await
    }

    fn host_range(&self, at: u64, _len: u64) -> Option<(crate::source::HostFile, u64)> {
        Some((self.host.clone(), at))
    }

    /// All of a chunk's reads go out at once: one Blob read after another waits out each
    /// read's fixed latency (a qcow2 chunk is often a dozen runs).
    async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        self.read_parts(split_reads(reads, &mut buf)?).await?;
        Ok(buf)
    }

    /// `FileReaderSync`, which only dedicated workers have: where the engine runs. Decoders of
    /// compressed packages pull their input this way.
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let io = |e: JsValue| read_error(&self.name, &e);
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| Error::io(format!("short read from {}", self.name)))?;
        let reader = web_sys::FileReaderSync::new().map_err(|_| {
            Error::unsupported(format!(
                "{} is compressed: vmdisk reads compressed packages only in a worker",
                self.name
            ))
        })?;
        let slice = self
            .blob
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(io)?;
        let view = Uint8Array::new(&reader.read_as_array_buffer(&slice).map_err(io)?.into());
        if view.length() as usize != buf.len() {
            return Err(Error::io(format!(
                "short read from {}: the file changed after it was picked",
                self.name
            )));
        }
        view.copy_to(buf);
        Ok(())
    }
}

/// A scratch file in the origin-private file system, read and written through its synchronous
/// access handle. The worker that created the handle closes it and removes the file when the
/// conversion ends, however it ends.
pub struct SyncHandleSource {
    name: String,
    handle: FileSystemSyncAccessHandle,
    len: u64,
}

impl SyncHandleSource {
    pub fn new(name: impl Into<String>, handle: FileSystemSyncAccessHandle) -> Result<Self> {
        let len = handle
            .get_size()
            .map_err(|e| Error::io(format!("a scratch file: {}", js_message(&e))))?;
        Ok(SyncHandleSource {
            name: name.into(),
            handle,
            len: len as u64,
        })
    }
}

#[async_trait(?Send)]
impl Source for SyncHandleSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(offset as f64);
        let n = self
            .handle
            .read_with_u8_array_and_options(buf, &opts)
            .map_err(|e| Error::io(format!("reading {}: {}", self.name, js_message(&e))))?;
        if n as usize != buf.len() {
            return Err(Error::io(format!("short read from {}", self.name)));
        }
        Ok(())
    }
}

impl crate::sink::ScratchFile for SyncHandleSink {
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn Source>> {
        Ok(std::rc::Rc::new(SyncHandleSource::new(name, self.handle)?))
    }
}

/// Scratch files made by a JS function `(name) => Promise<FileSystemSyncAccessHandle>` (the
/// worker's, which also removes them when the conversion ends).
pub struct JsScratch {
    make: js_sys::Function,
}

impl JsScratch {
    pub fn new(make: js_sys::Function) -> Self {
        JsScratch { make }
    }
}

#[async_trait(?Send)]
impl crate::sink::Scratch for JsScratch {
    async fn create(&self, name: &str) -> Result<Box<dyn crate::sink::ScratchFile>> {
        let err = |e: JsValue| Error::io(format!("creating a scratch file: {}", js_message(&e)));
        let mut made = self.make.call1(&JsValue::NULL, &name.into()).map_err(err)?;
        if let Some(p) = made.dyn_ref::<js_sys::Promise>() {
            made = JsFuture::from(p.clone()).await.map_err(err)?;
        }
        let handle = made
            .dyn_into::<FileSystemSyncAccessHandle>()
            .map_err(|_| Error::invalid("a scratch file must be a FileSystemSyncAccessHandle"))?;
        Ok(Box::new(SyncHandleSink::new(handle)))
    }
}

/// One Blob read: file bytes `[start, end)` and the parts it fills.
type Span<'a> = (u64, u64, Vec<(u64, &'a mut [u8])>);

/// Blob reads in flight at once at most.
const IN_FLIGHT: usize = 32;
/// Parts at most this far apart in the file are read together (the gap is read and dropped).
const READ_GAP: u64 = 256 << 10;
/// The longest read made of several parts.
const MAX_READ: u64 = 64 << 20;

impl BlobSource {
    /// Fill each `(offset, part)`, all reads in flight at once.
    ///
    /// Parts that lie close together in the file are one span, read as a whole and copied out
    /// part by part: a qcow2 chunk is often a dozen runs stored back to back, and every read has
    /// a fixed cost, while the copy out of the ArrayBuffer is needed anyway. A large span goes
    /// out as a few slices at once, whatever parts it holds: Chromium serves one read at a time
    /// at about two thirds of the rate of several at once (qcow2 -> raw, whose chunks are one
    /// span each, took 3.4 s unsplit and 2.7 s split).
    async fn read_parts(&self, mut parts: Vec<(u64, &mut [u8])>) -> Result<()> {
        let io = |e: JsValue| read_error(&self.name, &e);
        // In file order, so runs stored back to front (a fragmented image) share reads.
        parts.sort_by_key(|(offset, _)| *offset);
        let mut spans: Vec<Span> = vec![];
        for (offset, part) in parts {
            let end = offset + part.len() as u64;
            match spans.last_mut() {
                Some((s, e, members))
                    if offset >= *e && offset - *e <= READ_GAP && end - *s <= MAX_READ =>
                {
                    *e = end;
                    members.push((offset, part));
                }
                _ => spans.push((offset, end, vec![(offset, part)])),
            }
        }
        // The slices read: file bytes [start, end) of span `i`.
        let mut slices: Vec<(u64, u64, usize)> = vec![];
        for (i, (s, e, _)) in spans.iter().enumerate() {
            let n = if e - s >= 2 * SPLIT_AT { PARTS } else { 1 };
            let step = (e - s).div_ceil(n).max(1);
            let mut at = *s;
            while at < *e {
                let to = (at + step).min(*e);
                slices.push((at, to, i));
                at = to;
            }
        }
        for batch in slices.chunks(IN_FLIGHT) {
            let mut pending = Vec::with_capacity(batch.len());
            for &(s, e, _) in batch {
                let slice = self
                    .blob
                    .slice_with_f64_and_f64(s as f64, e as f64)
                    .map_err(io)?;
                pending.push(JsFuture::from(slice.array_buffer()));
            }
            for (&(s, e, i), read) in batch.iter().zip(pending) {
                let view = Uint8Array::new(&read.await.map_err(io)?);
                if u64::from(view.length()) != e - s {
                    // The file changed on disk after it was picked.
                    return Err(Error::io(format!(
                        "short read from {}: got {} of {} bytes at offset {s}",
                        self.name,
                        view.length(),
                        e - s
                    )));
                }
                // Each part's overlap with this slice.
                for (at, part) in spans[i].2.iter_mut() {
                    let (from, to) = ((*at).max(s), (*at + part.len() as u64).min(e));
                    if from < to {
                        view.subarray((from - s) as u32, (to - s) as u32)
                            .copy_to(&mut part[(from - *at) as usize..(to - *at) as usize]);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Output into an Origin Private File System file through its synchronous access handle
/// (dedicated workers only): seekable, and no copy of the data on the JS side. Whoever created
/// the handle closes it, which is all it takes for `getFile()` to see the data.
///
/// `finish` does not `flush()`: that is an fsync, 0.46 s of the 3.2 s a 4 GiB qcow2 -> raw took,
/// and it buys nothing for a scratch file that is only read back into a download (and that the
/// next start sweeps after a crash). qemu-img convert does not sync its output either (its
/// default cache mode for the target is `unsafe`).
pub struct SyncHandleSink {
    handle: FileSystemSyncAccessHandle,
}

impl SyncHandleSink {
    pub fn new(handle: FileSystemSyncAccessHandle) -> Self {
        SyncHandleSink { handle }
    }
}

fn write_error(e: JsValue) -> Error {
    Error::io(format!("writing the output: {}", js_message(&e)))
}

#[async_trait(?Send)]
impl Sink for SyncHandleSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(offset as f64);
        let written = self
            .handle
            .write_with_u8_array_and_options(data, &opts)
            .map_err(write_error)?;
        // Chromium reports a failed write (its quota for the site reached, say) as a short
        // or nonsensical count rather than an exception.
        if written as usize != data.len() {
            return Err(Error::io(format!(
                "writing the output: the browser stored {} of {} bytes at offset {offset} (its storage for this site is full?)",
                if written as usize > data.len() {
                    0.0
                } else {
                    written
                },
                data.len()
            )));
        }
        Ok(())
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        self.handle
            .truncate_with_f64(len as f64)
            .map_err(write_error)
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Output into a `FileSystemWritableFileStream` (from `showSaveFilePicker` or
/// `FileSystemFileHandle.createWritable`): positioned writes, each handed over as a copy since
/// the stream consumes it later. `finish` closes the stream, which is what makes the file appear;
/// on failure the caller aborts it instead.
pub struct WritableSink {
    stream: FileSystemWritableFileStream,
}

impl WritableSink {
    pub fn new(stream: FileSystemWritableFileStream) -> Self {
        WritableSink { stream }
    }
}

#[async_trait(?Send)]
impl Sink for WritableSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let chunk = Uint8Array::new_with_length(data.len() as u32);
        chunk.copy_from(data);
        let params = WriteParams::new(WriteCommandType::Write);
        params.set_position(Some(offset as f64));
        params.set_data(&chunk);
        let done = self
            .stream
            .write_with_write_params(&params)
            .map_err(write_error)?;
        JsFuture::from(done).await.map_err(write_error)?;
        Ok(())
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        let done = self
            .stream
            .truncate_with_f64(len as f64)
            .map_err(write_error)?;
        JsFuture::from(done).await.map_err(write_error)?;
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        JsFuture::from(self.stream.close())
            .await
            .map_err(write_error)?;
        Ok(())
    }
}
