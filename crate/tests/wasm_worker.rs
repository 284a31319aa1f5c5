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
