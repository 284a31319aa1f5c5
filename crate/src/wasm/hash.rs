//! `hash(files, onProgress?)`: the checksums glance records of an upload, as `vmdisk info
//! --hash` adds them to the report's `glance` record (see [`crate::glance`]).

use super::{JsResult, call_progress, hook, open_files, settle, sources, to_js};
use crate::package::Options;
use js_sys::Function;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use wasm_bindgen::prelude::*;

/// The names are glance's own image properties (and the report's `glance` keys).
#[derive(Serialize)]
struct Checksums {
    checksum: String,
    os_hash_algo: &'static str,
    os_hash_value: String,
}

/// `hash(files, onProgress?) -> Promise<{checksum, os_hash_algo, os_hash_value}>`: MD5 and
/// SHA-512 of the main file of the set (for a package, the package file: what is uploaded),
/// in one read. `onProgress(done, total, "hashing")` in bytes after each chunk; returning false
/// cancels (an `AbortError`), and so does throwing (it rejects with what was thrown).
#[wasm_bindgen]
pub async fn hash(files: JsValue, on_progress: Option<Function>) -> JsResult {
    hook();
    let mut thrown: Option<JsValue> = None;
    let result = async {
        // Only the main file is read whole: a compressed tarball's walk need not list it all.
        let opts = Options {
            list_all: false,
            ..Options::default()
        };
        let opened = open_files(sources(&files)?, &opts).await?;
        let src = opened.set.file(opened.main).clone();
        let cancel = AtomicBool::new(false);
        let mut progress = |done: u64, total: u64| {
            if !call_progress(&on_progress, "hashing", done, total, &mut thrown) {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let h = crate::glance::hash(&*src, &mut progress, &cancel).await?;
        // The algorithm glance names by default, as `Glance::set_hashes` records it.
        let done = Checksums {
            checksum: h.md5,
            os_hash_algo: "sha512",
            os_hash_value: h.sha512,
        };
        to_js(&done)
    }
    .await;
    settle(result, thrown)
}
