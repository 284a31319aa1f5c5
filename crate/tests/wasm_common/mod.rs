//! Tests of the browser host shared by the node, browser and worker suites (`wasm_*.rs`).
//! Images are made here with vmdisk's own writer (no qemu-img in a browser); the differential
//! tests against qemu-img are the native ones.
#![allow(dead_code)] // each suite uses its own part of the helpers

use js_sys::{Array, Object, Promise, Reflect, Uint8Array, Uint32Array};
use std::rc::Rc;
use vmdisk::codec::{Codec, Serial};
use vmdisk::sink::MemSink;
use vmdisk::source::{MemSource, read_exact};
use vmdisk::wasm::{self, BlobSource};
use vmdisk::writer::{OutputFormat, WriteOptions};
use vmdisk::{ErrorKind, ImageSet, Source};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Blob, File};

pub fn bytes_array(data: &[u8]) -> Array {
    let parts = Array::new();
    parts.push(&Uint8Array::from(data));
    parts
}

pub fn blob(data: &[u8]) -> Blob {
    Blob::new_with_u8_array_sequence(&bytes_array(data)).unwrap()
}

pub fn file(name: &str, data: &[u8]) -> File {
    File::new_with_u8_array_sequence(&bytes_array(data), name).unwrap()
}

pub fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

/// A guest disk with every kind of cluster: text-like (compressible), noise (not), zeros, and a
/// tail that ends inside a 64 KiB cluster.
pub fn disk(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (i, chunk) in out.chunks_mut(65536).enumerate() {
        match i % 4 {
            0 => {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = b"vmdisk cluster text "[(j + i) % 20];
                }
            }
            1 => {
                for b in chunk.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
            }
            2 => {} // zeros
            _ => chunk[100] = i as u8,
        }
    }
    out
}

pub const DISK_LEN: usize = (3 << 20) + 7 * 512;

/// `data` as an image of `opts` made by vmdisk's writer, in memory, without any JS.
pub async fn make_image(data: &[u8], opts: &WriteOptions) -> Vec<u8> {
    let src: Rc<dyn Source> = Rc::new(MemSource::new("disk.raw", data.to_vec()));
    let mut sink = MemSink::default();
    wasm::convert_sources(vec![src], opts, &mut sink, &Serial, &mut |_, _| true)
        .await
        .unwrap();
    sink.data
}

pub fn qcow2(compression: Option<Codec>) -> WriteOptions {
    WriteOptions {
        compression,
        ..WriteOptions::default()
    }
}

pub fn raw() -> WriteOptions {
    WriteOptions {
        format: OutputFormat::Raw,
        ..WriteOptions::default()
    }
}

/// A pool whose "sub-workers" are this instance: the same messages and replies as
/// `www/worker.js` exchanges with `www/compress-worker.js`, minus the postMessage.
pub fn local_pool(workers: u32) -> JsValue {
    let dispatch = Closure::<dyn Fn(JsValue) -> Promise>::new(|msg: JsValue| {
        let u8s = |k: &str| get(&msg, k).unchecked_into::<Uint8Array>().to_vec();
        let u32s = |k: &str| get(&msg, k).unchecked_into::<Uint32Array>().to_vec();
        let op = get(&msg, "op").as_string().unwrap();
        let reply = if op == "compress" {
            wasm::compress_batch(
                &get(&msg, "codec").as_string().unwrap(),
                get(&msg, "limit").as_f64().unwrap() as u32,
                &u8s("data"),
                &u32s("lens"),
            )
            .map(JsValue::from)
        } else {
            wasm::decompress_batch(
                &u8s("codecs"),
                &u8s("data"),
                &u32s("lens"),
                &u32s("outLens"),
            )
            .map(|data| {
                let o = Object::new();
                Reflect::set(&o, &"data".into(), &data).unwrap();
                o.into()
            })
        };
        match reply {
            Ok(v) => Promise::resolve(&v),
            Err(e) => Promise::reject(&e),
        }
    });
    let pool = Object::new();
    Reflect::set(&pool, &"workers".into(), &workers.into()).unwrap();
    Reflect::set(&pool, &"dispatch".into(), &dispatch.into_js_value()).unwrap();
    pool.into()
}

/// A chunk's reads: neighbours in the file (read together), small and large gaps, a part
/// before the previous one, a large part and a large span of several parts (each read as
/// concurrent slices).
#[wasm_bindgen_test]
async fn blob_source_scatters_a_chunks_reads() {
    let data: Vec<u8> = (0..(12 << 20) + 5u32)
        .map(|i| (i ^ (i >> 9)) as u8)
        .collect();
    let mb = 1usize << 20;
    let layout: Vec<(usize, usize)> = vec![
        (100, 10),
        (110, 1000),
        (5000, 7),
        (3, 50),
        (6 * mb + 1, 5 * mb),
        (11 * mb + 300_000, 3),
        (11 * mb + 300_003, 500_000),
        // A span of several parts, over 4 MiB: read as slices whose edges fall inside parts.
        (mb / 2 + 7, mb + 3),
        (mb / 2 + 7 + mb + 3 + 200_000, 3 * mb),
        (4 * mb + 800_000, 11),
        (4 * mb + 800_100, mb + 99),
    ];
    let mut reads = vec![];
    let mut pos = 0;
    for &(at, len) in &layout {
        reads.push((at as u64, pos..pos + len));
        pos += len + 13;
    }
    let src = BlobSource::new(file("disk.img", &data).into());
    let buf = src.read_into(reads.clone(), vec![0xAA; pos]).await.unwrap();
    for (&(at, len), (_, range)) in layout.iter().zip(&reads) {
        assert_eq!(buf[range.clone()], data[at..at + len], "{len} at {at}");
        assert_eq!(
            buf[range.end..range.end + 13],
            [0xAA; 13],
            "past {len} at {at}"
        );
    }
}

#[wasm_bindgen_test]
async fn blob_source_reads_odd_offsets_and_lengths() {
    let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let src = BlobSource::new(file("disk.img", &data).into());
    assert_eq!(src.name(), "disk.img");
    assert_eq!(src.len(), data.len() as u64);
    for (at, len) in [
        (0usize, 1usize),
        (1, 3),
        (4095, 4097),
        (12345, 65537),
        (99_999, 4),
        (100_003, 0),
        (0, 100_003),
    ] {
        let mut buf = vec![0xAA; len];
        src.read_at(at as u64, &mut buf).await.unwrap();
        assert_eq!(buf, &data[at..at + len], "read of {len} at {at}");
    }
    // Large reads go out as concurrent slices: odd offsets and lengths there too.
    let data: Vec<u8> = (0..(9 << 20) + 3u32)
        .map(|i| (i ^ (i >> 11)) as u8)
        .collect();
    let src = BlobSource::new(blob(&data));
    for (at, len) in [
        (5usize, (9 << 20) - 2),
        (0, 4 << 20),
        (1, (4 << 20) + 1),
        (3, 8388607),
    ] {
        let mut buf = vec![0xAA; len];
        src.read_at(at as u64, &mut buf).await.unwrap();
        assert!(buf == data[at..at + len], "read of {len} at {at}");
    }
    // A Blob without a name is still a source.
    let anon = BlobSource::new(blob(&data[..10]));
    assert_eq!((anon.name(), anon.len()), ("blob", 10));
}

#[wasm_bindgen_test]
async fn blob_source_fails_cleanly_past_the_end() {
    let src = BlobSource::new(file("disk.img", &[1u8; 1000]).into());
    let mut buf = vec![0; 10];
    for at in [991u64, 1000, 5000, u64::MAX - 3] {
        let err = src.read_at(at, &mut buf).await.unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Io), "{err}");
        let err = read_exact(&src, at, &mut buf, "header").await.unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Truncated), "{err}");
    }
    assert_eq!(buf, vec![0; 10], "a failed read leaves the buffer alone");
}

#[wasm_bindgen_test]
async fn inspect_reports_a_small_qcow2_like_the_cli() {
    let data = disk(DISK_LEN);
    let image = make_image(&data, &qcow2(None)).await;
    // The same object as `vmdisk info --json`: kebab-case keys, numbers, nested objects.
    let files = Array::new();
    files.push(&file("disk.qcow2", &image));
    let report = wasm::inspect(files.into()).await.unwrap();
    assert_eq!(get(&report, "format").as_string().unwrap(), "qcow2");
    assert_eq!(get(&report, "virtual-size").as_f64(), Some(DISK_LEN as f64));
    assert_eq!(get(&report, "convertible").as_bool(), Some(true));
    let safety = get(&report, "safety");
    assert_eq!(get(&safety, "safe").as_bool(), Some(true));
    assert!(Array::is_array(&get(&safety, "findings")));
    let listed: Array = get(&report, "files").unchecked_into();
    assert_eq!(listed.length(), 1);
    assert_eq!(get(&listed.get(0), "role").as_string().unwrap(), "image");
    assert_eq!(
        get(&listed.get(0), "size").as_f64(),
        Some(image.len() as f64)
    );
    let specific = get(&report, "format-specific");
    assert!(specific.is_object() && !Array::is_array(&specific));
    // Field for field what serde_json makes of the same report.
    let src: Rc<dyn Source> = Rc::new(MemSource::new("disk.qcow2", image.clone()));
    let opened = vmdisk::open(ImageSet::new(vec![src])).await.unwrap();
    let json = serde_json::to_string(&vmdisk::inspect_guest(&opened).await).unwrap();
    let expected = js_sys::JSON::stringify(&js_sys::JSON::parse(&json).unwrap()).unwrap();
    assert_eq!(js_sys::JSON::stringify(&report).unwrap(), expected);
}

#[wasm_bindgen_test]
async fn errors_carry_the_cli_message() {
    // A qcow2 header whose tables lie past the end of the file.
    let image = make_image(&disk(DISK_LEN), &qcow2(None)).await;
    let cut = &image[..4096];
    let src: Rc<dyn Source> = Rc::new(MemSource::new("cut.qcow2", cut.to_vec()));
    let expected = match vmdisk::open(ImageSet::new(vec![src])).await {
        Err(e) => e.to_string(),
        Ok(o) => match wasm::readable(&o) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a cut image opened"),
        },
    };
    let files = Array::of1(&file("cut.qcow2", cut));
    let err = wasm::map(files.into(), None).await.unwrap_err();
    let err: js_sys::Error = err.dyn_into().expect("a JS Error");
    assert_eq!(String::from(err.message()), expected);
    assert!(get(&err, "kind").as_string().is_some());
    // convert fails the same way, before it asks for an output.
    let asked = Closure::<dyn Fn(JsValue) -> JsValue>::new(|_: JsValue| panic!("output requested"));
    let err = wasm::convert(
        Array::of1(&file("cut.qcow2", cut)).into(),
        JsValue::NULL,
        asked.into_js_value(),
        None,
        JsValue::UNDEFINED,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(get(&err, "message").as_string().unwrap(), expected);
    // Two files of one name cannot be told apart.
    let files = Array::of2(&file("a.img", &[0; 512]), &file("a.img", &[0; 512]));
    let err = wasm::inspect(files.into()).await.unwrap_err();
    assert_eq!(
        get(&err, "message").as_string().unwrap(),
        "invalid request: two files are named a.img: companions are matched by name"
    );
    // Options are checked before anything is read.
    let bad = js_sys::JSON::parse(r#"{"format":"raw","compression":"zstd"}"#).unwrap();
    let err = wasm::write_options(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: raw output cannot be compressed"
    );
}

#[wasm_bindgen_test]
async fn map_rows_like_the_cli() {
    let data = disk(DISK_LEN);
    let image = make_image(&data, &qcow2(None)).await;
    let rows: Array = wasm::map(Array::of1(&file("d.qcow2", &image)).into(), None)
        .await
        .unwrap()
        .unchecked_into();
    let mut pos = 0.0;
    for row in rows.iter() {
        assert_eq!(get(&row, "start").as_f64(), Some(pos));
        pos += get(&row, "length").as_f64().unwrap();
        if get(&row, "data").as_bool().unwrap() {
            assert_eq!(get(&row, "file").as_string().unwrap(), "d.qcow2");
            assert!(get(&row, "offset").as_f64().is_some());
        }
    }
    assert_eq!(pos, DISK_LEN as f64);
    // Cluster 2 of every four is zero: it is not allocated.
    assert!(rows.length() >= 12, "{} rows", rows.length());
    // Streamed: the same rows in batches, and their count.
    let streamed = Array::new();
    let batches = std::rc::Rc::new(std::cell::Cell::new(0));
    let on_rows = {
        let (streamed, batches) = (streamed.clone(), batches.clone());
        wasm_bindgen::closure::Closure::<dyn FnMut(Array)>::new(move |batch: Array| {
            batches.set(batches.get() + 1);
            for r in batch.iter() {
                streamed.push(&r);
            }
        })
    };
    let count = wasm::map(
        Array::of1(&file("d.qcow2", &image)).into(),
        Some(on_rows.as_ref().unchecked_ref::<js_sys::Function>().clone()),
    )
    .await
    .unwrap();
    assert_eq!(count.as_f64(), Some(rows.length() as f64));
    assert!(batches.get() >= 1);
    assert_eq!(
        js_sys::JSON::stringify(&streamed).unwrap(),
        js_sys::JSON::stringify(&rows).unwrap()
    );
}

/// qcow2 -> raw and raw -> qcow2 through Blobs give the bytes of the same conversion in memory.
#[wasm_bindgen_test]
async fn converts_qcow2_to_raw_and_back() {
    let data = disk(DISK_LEN);
    for codec in [None, Some(Codec::Deflate), Some(Codec::Zstd)] {
        let image = make_image(&data, &qcow2(codec)).await;
        let files: Vec<Rc<dyn Source>> =
            vec![Rc::new(BlobSource::new(file("disk.qcow2", &image).into()))];
        let mut out = MemSink::default();
        let mut calls = vec![];
        let done = wasm::convert_sources(files, &raw(), &mut out, &Serial, &mut |d, t| {
            calls.push((d, t));
            true
        })
        .await
        .unwrap();
        assert_eq!(out.data, data, "{codec:?}");
        assert_eq!((done.input.as_str(), done.format), ("disk.qcow2", "raw"));
        assert_eq!(calls.last(), Some(&(DISK_LEN as u64, DISK_LEN as u64)));

        let files: Vec<Rc<dyn Source>> =
            vec![Rc::new(BlobSource::new(file("disk.raw", &data).into()))];
        let mut out = MemSink::default();
        wasm::convert_sources(files, &qcow2(codec), &mut out, &Serial, &mut |_, _| true)
            .await
            .unwrap();
        assert_eq!(out.data, image, "{codec:?}");
    }
}

/// The sub-worker protocol: compressing and decompressing through the pool gives the same
/// bytes as doing it inline.
#[wasm_bindgen_test]
async fn worker_pool_protocol_round_trips() {
    // Large enough that the batches leave the inline path.
    let data = disk(4 << 20);
    for codec in [Codec::Deflate, Codec::Zstd] {
        let serial = make_image(&data, &qcow2(Some(codec))).await;
        let pool = wasm::WorkerPool::from_js(&local_pool(3)).unwrap().unwrap();
        let src: Rc<dyn Source> = Rc::new(MemSource::new("disk.raw", data.clone()));
        let mut out = MemSink::default();
        wasm::convert_sources(
            vec![src],
            &qcow2(Some(codec)),
            &mut out,
            &pool,
            &mut |_, _| true,
        )
        .await
        .unwrap();
        assert_eq!(out.data, serial, "{codec:?}: pool and inline differ");

        let src: Rc<dyn Source> = Rc::new(MemSource::new("disk.qcow2", serial));
        let mut back = MemSink::default();
        wasm::convert_sources(vec![src], &raw(), &mut back, &pool, &mut |_, _| true)
            .await
            .unwrap();
        assert!(back.data == data, "{codec:?}: round trip differs");
    }
    // A malformed batch is an error, not a panic.
    assert!(wasm::compress_batch("deflate", 100, &[1, 2, 3], &[2, 2]).is_err());
    assert!(wasm::compress_batch("lz4", 100, &[1, 2, 3], &[3]).is_err());
    assert!(wasm::decompress_batch(&[0], &[1, 2, 3], &[3], &[4096]).is_err());
}

/// A JS object output (`writeAt`, `setLength`, `finish`) and the bytes written to it.
fn js_sink() -> (Object, Rc<std::cell::RefCell<Vec<u8>>>) {
    let written = Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
    let sink = Object::new();
    let w = written.clone();
    let write_at = Closure::<dyn Fn(f64, Uint8Array)>::new(move |at: f64, chunk: Uint8Array| {
        let mut out = w.borrow_mut();
        let (at, end) = (at as usize, at as usize + chunk.length() as usize);
        if out.len() < end {
            out.resize(end, 0);
        }
        chunk.copy_to(&mut out[at..end]);
    });
    let w = written.clone();
    let set_length =
        Closure::<dyn Fn(f64)>::new(move |len: f64| w.borrow_mut().resize(len as usize, 0));
    let finish = Closure::<dyn Fn() -> Promise>::new(|| Promise::resolve(&JsValue::UNDEFINED));
    Reflect::set(&sink, &"writeAt".into(), &write_at.into_js_value()).unwrap();
    Reflect::set(&sink, &"setLength".into(), &set_length.into_js_value()).unwrap();
    Reflect::set(&sink, &"finish".into(), &finish.into_js_value()).unwrap();
    (sink, written)
}

/// The JS `convert` with a JS object as the output, a progress callback, and cancellation.
#[wasm_bindgen_test]
async fn js_convert_reports_progress_and_cancels() {
    let data = disk(DISK_LEN);
    let image = make_image(&data, &qcow2(Some(Codec::Deflate))).await;
    let (sink, written) = js_sink();

    let calls = Rc::new(std::cell::Cell::new(0));
    let c = calls.clone();
    let progress = Closure::<dyn Fn(f64, f64) -> bool>::new(move |done: f64, total: f64| {
        assert!(done <= total);
        c.set(c.get() + 1);
        true
    });
    let options = js_sys::JSON::parse(r#"{"format":"raw","compression":null}"#).unwrap();
    let result = wasm::convert(
        Array::of1(&file("disk.qcow2", &image)).into(),
        options.clone(),
        sink.clone().into(),
        Some(progress.into_js_value().unchecked_into()),
        local_pool(2),
        None,
    )
    .await
    .unwrap();
    assert_eq!(*written.borrow(), data);
    assert!(calls.get() >= 1);
    assert_eq!(get(&result, "input").as_string().unwrap(), "disk.qcow2");
    assert_eq!(get(&result, "format").as_string().unwrap(), "raw");
    assert_eq!(get(&result, "virtualSize").as_f64(), Some(DISK_LEN as f64));

    // Returning false cancels with an AbortError.
    let stop = Closure::<dyn Fn(f64, f64) -> bool>::new(|_: f64, _: f64| false);
    let err = wasm::convert(
        Array::of1(&file("disk.qcow2", &image)).into(),
        options,
        sink.into(),
        Some(stop.into_js_value().unchecked_into()),
        JsValue::UNDEFINED,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(get(&err, "name").as_string().unwrap(), "AbortError");
    assert_eq!(get(&err, "kind").as_string().unwrap(), "cancelled");
    assert_eq!(get(&err, "message").as_string().unwrap(), "cancelled");
}

/// Read back a whole JS Blob (an OPFS file).
pub async fn blob_bytes(blob: &Blob) -> Vec<u8> {
    let buf = JsFuture::from(blob.array_buffer()).await.unwrap();
    Uint8Array::new(&buf).to_vec()
}

/// A fresh, empty file in the Origin Private File System (browser and workers only).
pub async fn opfs_file(name: &str) -> web_sys::FileSystemFileHandle {
    let navigator = get(&js_sys::global(), "navigator");
    let storage: web_sys::StorageManager = get(&navigator, "storage").unchecked_into();
    let root: web_sys::FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await
        .unwrap()
        .unchecked_into();
    let _ = JsFuture::from(root.remove_entry(name)).await;
    let opts = web_sys::FileSystemGetFileOptions::new();
    opts.set_create(true);
    JsFuture::from(root.get_file_handle_with_options(name, &opts))
        .await
        .unwrap()
        .unchecked_into()
}

pub async fn file_bytes(handle: &web_sys::FileSystemFileHandle) -> Vec<u8> {
    let file: Blob = JsFuture::from(handle.get_file())
        .await
        .unwrap()
        .unchecked_into();
    blob_bytes(&file).await
}

/// What the sink tests write: chunks at offsets out of order, a hole, a truncation.
pub async fn exercise_sink(sink: &mut dyn vmdisk::Sink) -> Vec<u8> {
    sink.write_at(10, b"hello").await.unwrap();
    sink.write_at(70_000, &[7u8; 3000]).await.unwrap();
    sink.write_at(0, b"ab").await.unwrap();
    sink.write_at(12, b"LL").await.unwrap();
    sink.set_len(71_000).await.unwrap(); // cuts the run of 7s
    sink.set_len(100_000).await.unwrap(); // extends with zeros
    sink.finish().await.unwrap();
    let mut expected = vec![0u8; 100_000];
    expected[0..2].copy_from_slice(b"ab");
    expected[10..15].copy_from_slice(b"heLLo");
    expected[70_000..71_000].fill(7);
    expected
}

/// The zero check, as compiled for wasm32 (simd128), finds a single set byte anywhere, at
/// lengths around its 16-byte head and 256-byte blocks.
#[wasm_bindgen_test]
fn zero_check_finds_a_single_set_byte() {
    for len in [0usize, 1, 15, 16, 17, 143, 144, 145, 271, 4096, 65536 + 3] {
        let mut buf = vec![0u8; len];
        assert!(vmdisk::zero::is_zero(&buf), "len {len}");
        for pos in 0..len {
            buf[pos] = 0x80;
            assert!(!vmdisk::zero::is_zero(&buf), "len {len} pos {pos}");
            buf[pos] = 0;
        }
    }
}

/// `data` gzip-compressed (as `gzip` would: one member).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An OVA holding `disk` as `disk1.qcow2` (a qcow2 is what oVirt exports), with its OVF
/// descriptor first and a SHA256 manifest last.
pub fn ova(disk: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let ovf = format!(
        r#"<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:href="disk1.qcow2" ovf:id="f1"/></References><DiskSection><Info>d</Info><Disk ovf:capacity="{DISK_LEN}" ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection><VirtualSystem ovf:id="vm"><Info>vm</Info></VirtualSystem></Envelope>"#
    );
    let hex = |d: &[u8]| -> String {
        sha2::Sha256::digest(d)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mf = format!(
        "SHA256(vm.ovf)= {}\nSHA256(disk1.qcow2)= {}\n",
        hex(ovf.as_bytes()),
        hex(disk)
    );
    let mut tar = tar::Builder::new(vec![]);
    for (name, data) in [
        ("vm.ovf", ovf.as_bytes()),
        ("disk1.qcow2", disk),
        ("vm.mf", mf.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// An OVA and a gzip-compressed raw disk convert in memory to the disk that went in; the
/// manifest's digest is checked on the way (a damaged member fails the conversion).
#[wasm_bindgen_test]
async fn packages_convert_in_memory() {
    let data = disk(DISK_LEN);
    let image = make_image(&data, &qcow2(None)).await;
    let package = ova(&image);
    for (name, bytes) in [("vm.ova", package.clone()), ("disk.raw.gz", gzip(&data))] {
        let src: Rc<dyn Source> = Rc::new(MemSource::new(name, bytes));
        let mut out = MemSink::default();
        let done = wasm::convert_sources(vec![src], &raw(), &mut out, &Serial, &mut |_, _| true)
            .await
            .unwrap();
        assert!(out.data == data, "{name}");
        assert_eq!(done.virtual_size, DISK_LEN as u64, "{name}");
    }
    let mut damaged = package;
    let at = damaged.len() / 2;
    damaged[at] ^= 1;
    let src: Rc<dyn Source> = Rc::new(MemSource::new("vm.ova", damaged));
    let err = wasm::convert_sources(
        vec![src],
        &raw(),
        &mut MemSink::default(),
        &Serial,
        &mut |_, _| true,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("disk1.qcow2"), "{err}");
}
