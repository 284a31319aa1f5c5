//! The browser host's tests in a dedicated worker in headless Chromium, where vmdisk runs in
//! the web app, plus the OPFS sync-access-handle sink (workers only).
#![cfg(target_arch = "wasm32")]

mod wasm_common;

use js_sys::Array;
use vmdisk::codec::Codec;
use vmdisk::wasm::{self, SyncHandleSink};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_common::*;
use web_sys::FileSystemSyncAccessHandle;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

async fn sync_handle(handle: &web_sys::FileSystemFileHandle) -> FileSystemSyncAccessHandle {
    JsFuture::from(handle.create_sync_access_handle())
        .await
        .unwrap()
        .unchecked_into()
}

#[wasm_bindgen_test]
async fn opfs_sink_writes_at_offsets_and_truncates() {
    let handle = opfs_file("vmdisk-test-sync").await;
    let access = sync_handle(&handle).await;
    let mut sink = SyncHandleSink::new(access.clone());
    let expected = exercise_sink(&mut sink).await;
    assert_eq!(access.get_size().unwrap(), expected.len() as f64);
    access.close();
    assert_eq!(file_bytes(&handle).await, expected);
}

#[wasm_bindgen_test]
async fn js_convert_into_an_opfs_file() {
    let data = disk(DISK_LEN);
    for (options, expected) in [
        (
            r#"{"format":"qcow2","compression":"zlib"}"#,
            make_image(&data, &qcow2(Some(Codec::Deflate))).await,
        ),
        (r#"{"format":"raw"}"#, data.clone()),
    ] {
        let qcow2_in = make_image(&data, &qcow2(None)).await;
        let handle = opfs_file("vmdisk-test-convert-sync").await;
        let access = sync_handle(&handle).await;
        // The output made on demand, once the image is known to be readable.
        let made = access.clone();
        let make = Closure::<dyn Fn(JsValue) -> js_sys::Promise>::new(move |info: JsValue| {
            assert_eq!(get(&info, "input").as_string().unwrap(), "disk.qcow2");
            assert_eq!(get(&info, "virtualSize").as_f64(), Some(DISK_LEN as f64));
            js_sys::Promise::resolve(&JsValue::from(made.clone()))
        });
        let result = wasm::convert(
            Array::of1(&file("disk.qcow2", &qcow2_in)).into(),
            js_sys::JSON::parse(options).unwrap(),
            make.into_js_value(),
            None,
            local_pool(2),
            None,
        )
        .await
        .unwrap();
        access.close();
        assert_eq!(get(&result, "input").as_string().unwrap(), "disk.qcow2");
        assert!(file_bytes(&handle).await == expected, "{options}");
    }
}

/// In a worker a picked file reads synchronously (`FileReaderSync`), and a compressed qcow2 is
/// decompressed into a scratch file the JS side hands over (an OPFS sync access handle) before
/// it converts.
#[wasm_bindgen_test]
async fn compressed_qcow2_converts_through_an_opfs_scratch_file() {
    let data = disk(DISK_LEN);
    let src = vmdisk::wasm::BlobSource::new(file("d.raw", &data).into());
    let mut buf = vec![0u8; 5000];
    vmdisk::Source::read_blocking(&src, 70_000, &mut buf).unwrap();
    assert!(buf == data[70_000..75_000]);

    let packed = gzip(&make_image(&data, &qcow2(Some(Codec::Zstd))).await);
    let out = opfs_file("vmdisk-test-scratch-out").await;
    let out_access = sync_handle(&out).await;
    let scratch = opfs_file("vmdisk-test-scratch").await;
    let scratch_access = sync_handle(&scratch).await;
    let asked = std::rc::Rc::new(std::cell::Cell::new(0));
    let a = asked.clone();
    let handed = scratch_access.clone();
    let make_scratch = Closure::<dyn Fn(JsValue) -> js_sys::Promise>::new(move |name: JsValue| {
        assert_eq!(name.as_string().unwrap(), "disk.qcow2");
        a.set(a.get() + 1);
        js_sys::Promise::resolve(&JsValue::from(handed.clone()))
    });
    let result = wasm::convert(
        Array::of1(&file("disk.qcow2.gz", &packed)).into(),
        js_sys::JSON::parse(r#"{"format":"raw"}"#).unwrap(),
        out_access.clone().into(),
        None,
        local_pool(2),
        Some(make_scratch.into_js_value().unchecked_into()),
    )
    .await
    .unwrap();
    assert_eq!(asked.get(), 1, "one scratch file");
    assert_eq!(get(&result, "input").as_string().unwrap(), "disk.qcow2");
    out_access.close();
    scratch_access.close();
    assert!(file_bytes(&out).await == data);
}

/// `convert` into a composed output (`{compose}`): parts as the worker gets them, put together
/// here as www/worker.js does (numbers are zero runs, `[start, end]` ranges of the spill file).
async fn composed(input: &[u8], name: &str, options: &str) -> (Vec<u8>, Array, bool) {
    let spill = opfs_file(&format!("vmdisk-test-spill-{name}")).await;
    let access: std::rc::Rc<std::cell::RefCell<Option<FileSystemSyncAccessHandle>>> =
        Default::default();
    let make = {
        let (spill, access) = (spill.clone(), access.clone());
        Closure::<dyn FnMut(JsValue) -> js_sys::Promise>::new(move |_name: JsValue| {
            let (spill, access) = (spill.clone(), access.clone());
            wasm_bindgen_futures::future_to_promise(async move {
                let h = sync_handle(&spill).await;
                *access.borrow_mut() = Some(h.clone());
                Ok(h.into())
            })
        })
    };
    let target = js_sys::Object::new();
    js_sys::Reflect::set(&target, &"compose".into(), make.as_ref()).unwrap();
    let result = wasm::convert(
        Array::of1(&file(name, input)).into(),
        js_sys::JSON::parse(options).unwrap(),
        target.into(),
        None,
        JsValue::UNDEFINED,
        None,
    )
    .await
    .unwrap();
    let spilled = access.borrow().is_some();
    if let Some(a) = access.borrow_mut().take() {
        a.close();
    }
    let spill_file: web_sys::Blob = JsFuture::from(spill.get_file())
        .await
        .unwrap()
        .unchecked_into();
    let parts: Array = get(&result, "parts").unchecked_into();
    let blob_parts = Array::new();
    for p in parts.iter() {
        if let Some(n) = p.as_f64() {
            blob_parts.push(&js_sys::Uint8Array::new_with_length(n as u32));
        } else if Array::is_array(&p) {
            let r: Array = p.unchecked_into();
            let (s, e) = (r.get(0).as_f64().unwrap(), r.get(1).as_f64().unwrap());
            blob_parts.push(&spill_file.slice_with_f64_and_f64(s, e).unwrap());
        } else {
            blob_parts.push(&p);
        }
    }
    let whole = web_sys::Blob::new_with_blob_sequence(&blob_parts).unwrap();
    (blob_bytes(&whole).await, parts, spilled)
}

#[wasm_bindgen_test]
async fn composed_outputs_reference_the_input_and_spill_what_was_produced() {
    let data = disk(DISK_LEN);
    // qcow2 -> raw: the data clusters are slices of the picked file, nothing produced.
    let image = make_image(&data, &qcow2(None)).await;
    let (out, parts, spilled) = composed(&image, "d.qcow2", r#"{"format":"raw"}"#).await;
    assert!(out == data, "qcow2 -> raw composed differs");
    assert!(!spilled, "nothing to spill");
    assert!(
        parts.iter().any(|p| p.is_instance_of::<web_sys::Blob>()),
        "input slices"
    );
    // raw -> qcow2: the same bytes as a written output.
    let (out, _, spilled) = composed(&data, "d.raw", r#"{"format":"qcow2"}"#).await;
    assert!(
        out == image,
        "raw -> qcow2 composed differs from the written output"
    );
    assert!(!spilled);
    // Compressed clusters are inflated: produced bytes (in memory at this size), with slices
    // for the clusters that stayed uncompressed.
    let packed = make_image(&data, &qcow2(Some(Codec::Deflate))).await;
    let (out, parts, _) = composed(&packed, "c.qcow2", r#"{"format":"raw"}"#).await;
    assert!(out == data, "compressed qcow2 -> raw composed differs");
    assert!(
        parts
            .iter()
            .any(|p| p.is_instance_of::<js_sys::Uint8Array>()),
        "produced bytes"
    );
}
