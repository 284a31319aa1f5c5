//! The browser host: the core's entry points for JS (`www/worker.js` drives them in a Web
//! Worker), Blob input, OPFS / writable-stream output and a pool of compression sub-workers.
//!
//! Values cross as plain JS objects: the report is the object `vmdisk info --json` prints,
//! map rows are those of `vmdisk map --json`. A failure is a JS `Error` whose message is the
//! CLI's one-line message, with `kind` ("io", "corrupt", "cancelled", ...) and `detail` (the
//! message without the kind's prefix) added for programs.

mod callback;
mod check;
mod codes;
mod hash;
pub mod io;
pub mod pool;

pub use callback::CallbackSink;
pub use io::{BlobSource, SyncHandleSink, WritableSink};
pub use pool::{WorkerPool, compress_batch, decompress_batch};

use crate::codec::{Codec, Pool, Serial};
use crate::compose::{Composed, ComposedSink, Part};
use crate::error::{Error, ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::package::Options;
use crate::sink::Scratch;
use crate::sink::Sink;
use crate::source::{ImageSet, Source};
use crate::writer::{OutputFormat, Qcow2Compat, WriteOptions};
use crate::{Image, OpenedImage};
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use serde::Serialize;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, FileSystemSyncAccessHandle, FileSystemWritableFileStream};

/// What an exported async function resolves to, or rejects with.
type JsResult = std::result::Result<JsValue, JsValue>;

/// Panics print their message to the console instead of "unreachable executed".
fn hook() {
    console_error_panic_hook::set_once();
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

/// The stable name of an error's kind, and its message without the kind's prefix.
pub fn error_parts(e: &Error) -> (&'static str, String) {
    (e.kind.name(), e.message.clone())
}

fn error_from_parts(kind: &str, detail: String) -> Error {
    match ErrorKind::from_name(kind) {
        Some(ErrorKind::Cancelled) => Error::cancelled(),
        Some(kind) => Error::new(kind, detail),
        None => Error::io(detail),
    }
}

/// A JS `Error` with the CLI's message, plus `kind` and `detail`; cancellation is an `AbortError`.
pub fn to_js_error(e: &Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let (kind, detail) = error_parts(e);
    if e.is_cancelled() {
        err.set_name("AbortError");
    }
    set(&err, "kind", &kind.into());
    set(&err, "detail", &detail.into());
    err.into()
}

/// The reverse of [`to_js_error`]; anything else thrown becomes an I/O error.
pub fn error_from_js(e: &JsValue) -> Error {
    let get = |k: &str| Reflect::get(e, &k.into()).ok().and_then(|v| v.as_string());
    match (get("kind"), get("detail")) {
        (Some(kind), Some(detail)) => error_from_parts(&kind, detail),
        _ => Error::io(io::js_message(e)),
    }
}

/// A plain JS value for `v`, shaped like its JSON: objects for maps, null for None, numbers
/// for u64. A number beyond 2^53 (only a hostile image has one) goes through JSON instead,
/// which rounds it rather than failing the whole report.
pub fn to_js<T: Serialize>(v: &T) -> Result<JsValue> {
    let ser = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_missing_as_null(true);
    if let Ok(value) = v.serialize(&ser) {
        return Ok(value);
    }
    let json = serde_json::to_string(v).map_err(|e| Error::io(e.to_string()))?;
    js_sys::JSON::parse(&json).map_err(|e| Error::io(io::js_message(&e)))
}

/// The picked files as sources: an array (or FileList, or any iterable) of `File`s, or one.
pub fn sources(files: &JsValue) -> Result<Vec<Rc<dyn Source>>> {
    let list: Vec<JsValue> = if files.is_instance_of::<Blob>() {
        vec![files.clone()]
    } else {
        Array::from(files).iter().collect()
    };
    let mut out: Vec<Rc<dyn Source>> = vec![];
    for f in list {
        let blob = f
            .dyn_into::<Blob>()
            .map_err(|_| Error::invalid("expected File objects"))?;
        let src = BlobSource::new(blob);
        if out.iter().any(|s| s.name() == src.name()) {
            return Err(Error::invalid(format!(
                "two files are named {}: companions are matched by name",
                src.name()
            )));
        }
        out.push(Rc::new(src));
    }
    Ok(out)
}

/// The image the conversion reads, or why it cannot be read (the CLI's messages).
pub fn readable(opened: &OpenedImage) -> Result<&dyn Image> {
    opened.target(None)
}

/// `inspect(files) -> Promise<Report>`: what `vmdisk info --json` prints, as a JS object (the
/// guest's partition table read through the image, as the CLI reads it).
#[wasm_bindgen]
pub async fn inspect(files: JsValue) -> JsResult {
    hook();
    let run = async {
        let opened = open_files(sources(&files)?, &Options::default()).await?;
        to_js(&crate::inspect_guest(&opened).await)
    };
    run.await.map_err(|e| to_js_error(&e))
}

/// Open picked files, with the clock's time for certificate validity.
async fn open_files(files: Vec<Rc<dyn Source>>, opts: &Options) -> Result<OpenedImage> {
    let opts = Options {
        now: Some((js_sys::Date::now() / 1000.0) as i64),
        ..opts.clone()
    };
    crate::image::open_with(ImageSet::new(files), &opts).await
}

/// What a verification found, and the cloud verdicts judged again with it.
#[derive(Serialize)]
struct Verified {
    findings: Vec<crate::Finding>,
    clouds: Vec<crate::cloud::Verdict>,
}

/// `verify(files, onProgress?) -> Promise<{findings, clouds}>`: read a package through (every
/// manifest digest, every compressed stream's checksums) and return what that found, as `vmdisk
/// info` adds it to its report (no findings for a file that is not a package), with the report's
/// cloud verdicts recomputed over them as `vmdisk info` does. `onProgress(done, total)` in
/// bytes; returning false cancels (an `AbortError`).
#[wasm_bindgen]
pub async fn verify(files: JsValue, on_progress: Option<Function>) -> JsResult {
    hook();
    let mut thrown: Option<JsValue> = None;
    let result = async {
        let opened = open_files(sources(&files)?, &Options::default()).await?;
        let mut report = crate::inspect_guest(&opened).await;
        let mut found = vec![];
        if let Some(pkg) = &opened.package {
            let mut progress = |done: u64, total: u64| {
                call_progress(&on_progress, "verifying", done, total, &mut thrown)
            };
            found = crate::package::verify(&opened.set, pkg, None, &mut progress).await?;
            report.add_findings(found.clone());
        }
        to_js(&Verified {
            findings: found,
            clouds: report.clouds,
        })
    }
    .await;
    settle(result, thrown)
}

/// A promise's outcome: a cancel that a throwing progress callback caused rejects with what it
/// threw; any other error rejects with its JS form.
fn settle(result: Result<JsValue>, thrown: Option<JsValue>) -> JsResult {
    match result {
        Ok(v) => Ok(v),
        Err(e) if e.is_cancelled() && thrown.is_some() => Err(thrown.unwrap_or_default()),
        Err(e) => Err(to_js_error(&e)),
    }
}

/// Call a JS progress callback `(done, total, phase)`: false (or a throw, kept in `thrown`)
/// cancels. Phases: `verifying` (manifest digests), `decompressing` (into a scratch file; total
/// 0 when unknown), `converting`.
fn call_progress(
    f: &Option<Function>,
    phase: &str,
    done: u64,
    total: u64,
    thrown: &mut Option<JsValue>,
) -> bool {
    let Some(f) = f else {
        return true;
    };
    let args = [
        (done as f64).into(),
        (total as f64).into(),
        JsValue::from(phase),
    ];
    match f.apply(&JsValue::NULL, &args.iter().collect::<Array>()) {
        Ok(v) => v.as_bool() != Some(false),
        Err(e) => {
            *thrown = Some(e);
            false
        }
    }
}

/// Map rows handed to `onRows` at a time.
const MAP_BATCH: u32 = 4096;

/// `map(files, onRows?) -> Promise<MapEntry[] | number>`: the rows of `vmdisk map --json`. With
/// `onRows(rows)`, they go there in batches as the map is walked (a fragmented image has
/// millions) and the promise resolves to how many there were.
#[wasm_bindgen]
pub async fn map(files: JsValue, on_rows: Option<Function>) -> JsResult {
    hook();
    let run = async {
        let opened = crate::open(ImageSet::new(sources(&files)?)).await?;
        let image = readable(&opened)?;
        let mut rows = Array::new();
        let mut count = 0u64;
        let mut failed = None;
        let flush = |rows: &mut Array| -> Result<()> {
            if let Some(f) = &on_rows
                && rows.length() > 0
            {
                f.call1(&JsValue::NULL, rows)
                    .map_err(|e| error_from_js(&e))?;
                *rows = Array::new();
            }
            Ok(())
        };
        crate::engine::map(&opened.set, image, &mut |row| {
            count += 1;
            match to_js(&row) {
                Ok(v) => {
                    rows.push(&v);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            if rows.length() >= MAP_BATCH
                && let Err(e) = flush(&mut rows)
            {
                failed.get_or_insert(e);
            }
        })
        .await?;
        if let Some(e) = failed {
            return Err(e);
        }
        if on_rows.is_none() {
            return Ok(rows.into());
        }
        flush(&mut rows)?;
        Ok(JsValue::from(count as f64))
    };
    run.await.map_err(|e| to_js_error(&e))
}

/// Conversion options as JS passes them: `{format, compression, clusterSize, compat}`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JsOptions {
    format: Option<String>,
    compression: Option<String>,
    cluster_size: Option<f64>,
    compat: Option<String>,
}

/// Parse and validate `{format: "qcow2"|"raw", compression: null|"zlib"|"zstd", clusterSize?,
/// compat?: "0.10"|"1.1"}` (format defaults to qcow2).
pub fn write_options(options: &JsValue) -> Result<WriteOptions> {
    let o: JsOptions = if options.is_null() || options.is_undefined() {
        JsOptions::default()
    } else {
        serde_wasm_bindgen::from_value(options.clone())
            .map_err(|e| Error::invalid(format!("bad conversion options: {e}")))?
    };
    let defaults = WriteOptions::default();
    let opts = WriteOptions {
        format: pick(
            o.format.as_deref(),
            OutputFormat::Qcow2,
            &[("qcow2", OutputFormat::Qcow2), ("raw", OutputFormat::Raw)],
            "output format",
            "raw or qcow2",
        )?,
        compression: pick(
            o.compression.as_deref(),
            None,
            &[
                ("none", None),
                ("zlib", Some(Codec::Deflate)),
                ("deflate", Some(Codec::Deflate)),
                ("zstd", Some(Codec::Zstd)),
            ],
            "compression",
            "zlib or zstd",
        )?,
        cluster_size: match o.cluster_size {
            None => defaults.cluster_size,
            Some(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => n as u32,
            Some(n) => return Err(Error::invalid(format!("bad cluster size {n}"))),
        },
        compat: pick(
            o.compat.as_deref(),
            Qcow2Compat::V1_1,
            &[("1.1", Qcow2Compat::V1_1), ("0.10", Qcow2Compat::V0_10)],
            "qcow2 compat",
            "0.10 or 1.1",
        )?,
    };
    opts.validate()?;
    Ok(opts)
}

/// The value an option names among `names`; `default` when it is not given.
fn pick<T: Copy>(
    given: Option<&str>,
    default: T,
    names: &[(&str, T)],
    what: &str,
    hint: &str,
) -> Result<T> {
    let Some(given) = given else {
        return Ok(default);
    };
    names
        .iter()
        .find(|(name, _)| *name == given)
        .map(|&(_, value)| value)
        .ok_or_else(|| Error::invalid(format!("unknown {what} {given:?} ({hint})")))
}

/// What a finished conversion tells its caller.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Converted {
    /// The main input file's name (the image the user means, not a companion).
    pub input: String,
    pub format: &'static str,
    pub virtual_size: u64,
}

/// Open `files` for a conversion of `disk` (0-based, a package's; None: its default disk or
/// the image): fails, before any output exists, when it cannot be read. A tarball's walk stops
/// at that disk.
pub async fn open_for_convert(
    files: Vec<Rc<dyn Source>>,
    disk: Option<usize>,
) -> Result<OpenedImage> {
    let opts = Options {
        list_all: false,
        disk,
        now: None,
    };
    let opened = open_files(files, &opts).await?;
    match opened.disk_index(disk)? {
        Some(n) if opened.disks[n].needs_scratch => {}
        _ => {
            opened.target(disk)?;
        }
    }
    Ok(opened)
}

/// What a conversion of `opened` to `opts` makes (known before it starts): named after the
/// disk it converts.
pub fn describe(opened: &OpenedImage, disk: Option<usize>, opts: &WriteOptions) -> Converted {
    let index = opened.disk_index(disk).ok().flatten();
    let input = match (index, &opened.package) {
        (Some(n), Some(pkg)) => crate::source::base_name(&pkg.disks[n].name).to_string(),
        _ => opened.set.file(opened.main).name().to_string(),
    };
    let virtual_size = match index {
        Some(n) => opened.disks[n]
            .probe
            .as_ref()
            .and_then(|p| p.primary().virtual_size)
            .or_else(|| opened.disks[n].image.as_ref().map(|i| i.virtual_size()))
            .unwrap_or(0),
        None => readable(opened).map_or(0, |i| i.virtual_size()),
    };
    Converted {
        input,
        format: match opts.format {
            OutputFormat::Raw => "raw",
            OutputFormat::Qcow2 => "qcow2",
        },
        virtual_size,
    }
}

/// Convert disk `disk` of an opened image set to `opts` into `sink` and finish the sink: the
/// manifest digests of what it reads are checked first, and a compressed disk that its driver
/// reads at random is decompressed into a file from `scratch`.
pub async fn convert_opened(
    opened: &mut OpenedImage,
    disk: Option<usize>,
    opts: &WriteOptions,
    sink: &mut dyn Sink,
    pool: &dyn Pool,
    scratch: &dyn Scratch,
    progress: &mut dyn FnMut(&'static str, u64, u64) -> bool,
) -> Result<Converted> {
    opts.validate()?;
    if let Some(n) = opened.disk_index(disk)? {
        let pkg = opened.package.as_ref().expect("a package");
        let members = pkg.disks[n].members.clone();
        if pkg.checks.digests.iter().any(|d| members.contains(&d.file)) {
            let found = crate::package::verify(&opened.set, pkg, Some(&members), &mut |d, t| {
                progress("verifying", d, t)
            })
            .await?;
            if let Some(bad) = found.iter().find(|f| f.code == FindingCode::DigestMismatch) {
                return Err(Error::corrupt(bad.message.clone()));
            }
        }
        let total = pkg.disks[n]
            .stream
            .as_ref()
            .and_then(|s| s.known_len())
            .unwrap_or(0);
        opened
            .prepare(Some(n), scratch, &mut |done| {
                progress("decompressing", done, total)
            })
            .await?;
    }
    let info = describe(opened, disk, opts);
    let image = opened.target(disk)?;
    let mut writer = crate::writer::new_writer(opts, image.virtual_size())?;
    crate::engine::convert(&opened.set, image, &mut *writer, sink, pool, &mut |d, t| {
        progress("converting", d, t)
    })
    .await?;
    sink.finish().await?;
    Ok(Converted {
        virtual_size: image.virtual_size(),
        ..info
    })
}

/// Open `files` and convert them into `sink`: the host-neutral part of the JS `convert`, which
/// tests drive with in-memory sinks (scratch files in memory too).
pub async fn convert_sources(
    files: Vec<Rc<dyn Source>>,
    opts: &WriteOptions,
    sink: &mut dyn Sink,
    pool: &dyn Pool,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<Converted> {
    opts.validate()?;
    let mut opened = open_for_convert(files, None).await?;
    let scratch = crate::sink::MemScratch;
    let mut converting = |phase: &str, done, total| phase != "converting" || progress(done, total);
    convert_opened(
        &mut opened,
        None,
        opts,
        sink,
        pool,
        &scratch,
        &mut converting,
    )
    .await
}

/// The JS output: an OPFS `FileSystemSyncAccessHandle`, a `FileSystemWritableFileStream`, or a
/// [`CallbackSink`] object.
pub fn sink_from_js(sink: JsValue) -> Result<Box<dyn Sink>> {
    if sink.is_instance_of::<FileSystemSyncAccessHandle>() {
        return Ok(Box::new(SyncHandleSink::new(sink.unchecked_into())));
    }
    if sink.is_instance_of::<FileSystemWritableFileStream>() {
        return Ok(Box::new(WritableSink::new(sink.unchecked_into())));
    }
    let has_write = Reflect::get(&sink, &"writeAt".into()).is_ok_and(|f| f.is_function());
    if has_write {
        return Ok(Box::new(CallbackSink::new(sink)));
    }
    Err(Error::invalid(
        "the output must be a FileSystemSyncAccessHandle, a FileSystemWritableFileStream or an object with writeAt",
    ))
}

/// A composed output has about this many parts at most by default: each `File.slice()` costs
/// the browser most of a millisecond (measured: 1,000 parts in 0.9 s, 10,000 in 7 s, 100,000
/// in 73 s, with a CI run beside it), about what copying half a MiB costs. Past it the rest is
/// read and spilled.
const COMPOSED_PARTS: usize = 4096;

/// Where a conversion goes: a sink, or an output composed of parts (see [`crate::compose`]).
enum Output {
    Sink(Box<dyn Sink>),
    Composed(ComposedSink),
}

impl Output {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Output::Sink(s) => &mut **s,
            Output::Composed(c) => c,
        }
    }
}

/// `{compose: (name) => FileSystemSyncAccessHandle | Promise, maxParts?}`: compose the output,
/// spilling what has to be produced into the file `compose` opens (on first need).
fn composed_from_js(target: &JsValue, name: &str) -> Result<Option<ComposedSink>> {
    let Ok(make) = Reflect::get(target, &"compose".into()) else {
        return Ok(None);
    };
    let Some(make) = make.dyn_ref::<Function>() else {
        return Ok(None);
    };
    let max_parts = Reflect::get(target, &"maxParts".into())
        .ok()
        .and_then(|v| v.as_f64())
        .filter(|n| *n >= 3.0 && n.fract() == 0.0)
        .map_or(COMPOSED_PARTS, |n| n.min(1e7) as usize);
    let scratch = Box::new(io::JsScratch::new(make.clone()));
    Ok(Some(ComposedSink::new(scratch, name, max_parts)))
}

/// The output: a sink (see [`sink_from_js`]), a composed output (see [`composed_from_js`]), or a
/// function that makes one of them from what is about to be converted (`{input, format,
/// virtualSize}`), possibly through a promise; called only once the image opened and can be
/// read, so a conversion that cannot start creates no file.
async fn output(sink: JsValue, info: &Converted) -> Result<Output> {
    let made = match sink.dyn_ref::<Function>() {
        None => sink,
        Some(make) => {
            let err = |e: JsValue| error_from_js(&e);
            let mut made = make.call1(&JsValue::NULL, &to_js(info)?).map_err(err)?;
            if let Some(p) = made.dyn_ref::<js_sys::Promise>() {
                made = JsFuture::from(p.clone()).await.map_err(err)?;
            }
            made
        }
    };
    if let Some(c) = composed_from_js(&made, &info.input)? {
        return Ok(Output::Composed(c));
    }
    Ok(Output::Sink(sink_from_js(made)?))
}

/// A composed output's parts for `new Blob(parts)`: a `Blob` slice of an input, a `Uint8Array`
/// of generated bytes, a number for that many zeros, `[start, end]` for a range of the spill
/// file.
fn parts_to_js(composed: Composed) -> Result<Array> {
    let out = Array::new();
    for (len, part) in composed.parts {
        let v: JsValue = match part {
            Part::Bytes(b) => Uint8Array::from(&b[..]).into(),
            Part::Zero => (len as f64).into(),
            Part::Spill { at } => {
                Array::of2(&(at as f64).into(), &((at + len) as f64).into()).into()
            }
            Part::Input { file, at } => {
                let blob = file
                    .downcast_ref::<Blob>()
                    .ok_or_else(|| Error::invalid("a composed part of an unknown file"))?;
                blob.slice_with_f64_and_f64(at as f64, (at + len) as f64)
                    .map_err(|e| error_from_js(&e))?
                    .into()
            }
        };
        out.push(&v);
    }
    Ok(out)
}

/// `convert(files, options, output, onProgress?, pool?, scratch?) -> Promise<{input, format,
/// virtualSize}>`.
///
/// `options.disk` picks a package's disk (0-based, as in the report's `disks`; default: its
/// first disk, or a UEC tarball's machine image). `onProgress(done, total, phase)`: see
/// [`call_progress`]. `output` is a sink (see [`sink_from_js`]) or
/// a function returning one (see [`output`]). `onProgress(done, total)` is called after each
/// chunk of guest data; returning `false` cancels (the promise rejects with an `AbortError`),
/// and so does throwing (it rejects with what was thrown). `pool` is `{workers, dispatch}` (see
/// [`pool`]); without it compression runs in this worker. `scratch(name)` returns a
/// `FileSystemSyncAccessHandle` for a compressed disk that must be decompressed first (without
/// it, memory). The sink is finished on success (a writable stream closed; a sync handle is
/// left unflushed for its owner to close); on failure the caller discards the output.
#[wasm_bindgen]
pub async fn convert(
    files: JsValue,
    options: JsValue,
    output: JsValue,
    on_progress: Option<Function>,
    pool: JsValue,
    scratch: Option<Function>,
) -> JsResult {
    hook();
    let mut thrown: Option<JsValue> = None;
    let result = async {
        let opts = write_options(&options)?;
        let disk = disk_option(&options)?;
        let workers = WorkerPool::from_js(&pool)?;
        let mut opened = open_for_convert(sources(&files)?, disk).await?;
        let mut out = self::output(output, &describe(&opened, disk, &opts)).await?;
        let pool: &dyn Pool = match &workers {
            Some(p) => p,
            None => &Serial,
        };
        let js_scratch = scratch.map(io::JsScratch::new);
        let mem_scratch = crate::sink::MemScratch;
        let scratch: &dyn Scratch = match &js_scratch {
            Some(s) => s,
            None => &mem_scratch,
        };
        let mut progress = |phase: &'static str, done: u64, total: u64| {
            call_progress(&on_progress, phase, done, total, &mut thrown)
        };
        let done = convert_opened(
            &mut opened,
            disk,
            &opts,
            out.sink(),
            pool,
            scratch,
            &mut progress,
        )
        .await?;
        let value = to_js(&done)?;
        if let Output::Composed(c) = out {
            let parts = parts_to_js(c.into_composed())?;
            Reflect::set(&value, &"parts".into(), &parts).map_err(|e| error_from_js(&e))?;
        }
        Ok::<_, Error>(value)
    }
    .await;
    settle(result, thrown)
}

/// `options.disk`: a package's disk, 0-based.
fn disk_option(options: &JsValue) -> Result<Option<usize>> {
    if options.is_null() || options.is_undefined() {
        return Ok(None);
    }
    let v = Reflect::get(options, &"disk".into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_null() || v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e9 => Ok(Some(n as usize)),
        _ => Err(Error::invalid(format!(
            "bad disk {v:?}: a disk index from 0"
        ))),
    }
}

/// Let the worker's event loop run (its messages: a cancel) without the 4 ms clamp of a
/// nested `setTimeout`: a message through a fresh channel is a task of its own.
pub async fn yield_now() {
    let Ok(channel) = web_sys::MessageChannel::new() else {
        return;
    };
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        channel.port2().set_onmessage(Some(&resolve));
    });
    let _ = channel.port1().post_message(&JsValue::NULL);
    let _ = JsFuture::from(promise).await;
}
