//! The browser host's tests on a page in headless Chromium, plus the writable-stream sink
//! (`createWritable`, what a `showSaveFilePicker` target gives).
#![cfg(target_arch = "wasm32")]

mod wasm_common;

use js_sys::Array;
use vmdisk::codec::Codec;
use vmdisk::wasm::{self, WritableSink};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_common::*;
use web_sys::FileSystemWritableFileStream;

wasm_bindgen_test_configure!(run_in_browser);

async fn writable(handle: &web_sys::FileSystemFileHandle) -> FileSystemWritableFileStream {
    JsFuture::from(handle.create_writable())
        .await
        .unwrap()
        .unchecked_into()
}

#[wasm_bindgen_test]
async fn writable_stream_sink_writes_at_offsets_and_truncates() {
    let handle = opfs_file("vmdisk-test-writable").await;
    let mut sink = WritableSink::new(writable(&handle).await);
    let expected = exercise_sink(&mut sink).await;
    assert_eq!(file_bytes(&handle).await, expected);
}

#[wasm_bindgen_test]
async fn js_convert_into_a_writable_stream() {
    let data = disk(DISK_LEN);
    let expected = make_image(&data, &qcow2(Some(Codec::Zstd))).await;
    let handle = opfs_file("vmdisk-test-convert-writable").await;
    let options = js_sys::JSON::parse(r#"{"format":"qcow2","compression":"zstd"}"#).unwrap();
    wasm::convert(
        Array::of1(&file("disk.raw", &data)).into(),
        options,
        writable(&handle).await.into(),
        None,
        wasm_bindgen::JsValue::UNDEFINED,
        None,
    )
    .await
    .unwrap();
    assert!(file_bytes(&handle).await == expected);
}
