//! The browser host's tests under node (Blob and File are node globals): no OPFS here.
#![cfg(target_arch = "wasm32")]

#[path = "wasm_node/dmg_bzip2.rs"]
mod dmg_bzip2;
mod wasm_common;

use vmdisk::Source;
use vmdisk::wasm::BlobSource;
use wasm_bindgen_test::wasm_bindgen_test;
use wasm_common::file;

/// Synchronous reads (for the decoders of compressed packages) need a worker's
/// `FileReaderSync`: elsewhere they fail with a message that says so.
#[wasm_bindgen_test]
fn blob_sources_read_synchronously_only_in_workers() {
    let src = BlobSource::new(file("disk.raw.gz", &[1, 2, 3]).into());
    let err = src.read_blocking(0, &mut [0u8; 3]).unwrap_err();
    assert!(err.to_string().contains("only in a worker"), "{err}");
}
