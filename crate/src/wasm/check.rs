//! `check(files, options?, onProgress?, scratch?)`: the full consistency check `vmdisk check`
//! runs (see [`crate::check`]), resolving to the object `vmdisk check --json` prints.

use super::{JsResult, call_progress, hook, io, settle, sources, to_js};
use crate::error::{Error, Result};
use crate::package::Options as PackageOptions;
use crate::sink::{MemScratch, Scratch};
use crate::source::ImageSet;
use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

/// `check(files, options?, onProgress?, scratch?) -> Promise<CheckResult>`: qemu-img check's
/// JSON shape (counters, `problems`, a package's `disks`) as `vmdisk check --json` prints it,
/// plus `exit-code`, the status that command exits with (0 clean, 1 the check could not run, 2
/// corruptions, 3 leaks only). A damaged image is a result with corruptions, not a rejection.
///
/// `options.verify` (default true): read a package through against its manifest digests and
/// stream checksums first, as `vmdisk check` does without `--no-verify`. `onProgress(done,
/// total, "checking")` in bytes of the file being checked; returning false cancels (an
/// `AbortError`), and so does throwing (it rejects with what was thrown). `scratch(name)`
/// returns a `FileSystemSyncAccessHandle` for a compressed disk that must be decompressed to be
/// checked (without it, memory).
#[wasm_bindgen]
pub async fn check(
    files: JsValue,
    options: JsValue,
    on_progress: Option<Function>,
    scratch: Option<Function>,
) -> JsResult {
    hook();
    let mut thrown: Option<JsValue> = None;
    let result = async {
        let opts = crate::check::Options {
            verify: verify_option(&options)?,
        };
        let pkg = PackageOptions {
            now: Some((js_sys::Date::now() / 1000.0) as i64),
            ..PackageOptions::default()
        };
        let js_scratch = scratch.map(io::JsScratch::new);
        let mem_scratch = MemScratch;
        let scratch: &dyn Scratch = match &js_scratch {
            Some(s) => s,
            None => &mem_scratch,
        };
        let mut progress = |done: u64, total: u64| {
            call_progress(&on_progress, "checking", done, total, &mut thrown)
        };
        let set = ImageSet::new(sources(&files)?);
        let found = crate::check::check_files(set, &pkg, &opts, scratch, &mut progress).await?;
        let value = to_js(&found)?;
        // The status `vmdisk check` exits with, so that hosts need not count it again.
        let code = JsValue::from(found.exit_code());
        Reflect::set(&value, &"exit-code".into(), &code).map_err(|e| super::error_from_js(&e))?;
        Ok(value)
    }
    .await;
    settle(result, thrown)
}

/// `options.verify`: a boolean, true when absent.
fn verify_option(options: &JsValue) -> Result<bool> {
    if options.is_null() || options.is_undefined() {
        return Ok(true);
    }
    let v = Reflect::get(options, &"verify".into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_null() || v.is_undefined() {
        return Ok(true);
    }
    v.as_bool()
        .ok_or_else(|| Error::invalid(format!("bad verify option {v:?}: true or false")))
}
