//! The browser host's tests under node (Blob and File are node globals): no OPFS here.
#![cfg(target_arch = "wasm32")]

mod wasm_common;
