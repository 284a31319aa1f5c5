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
