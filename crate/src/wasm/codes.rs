//! The finding codes' table, for the page and the JS API: what each code means in plain words.

use super::{to_js, to_js_error};
use crate::finding_code::FindingCode;
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[derive(Serialize)]
struct CodeInfo {
    code: &'static str,
    title: &'static str,
    explanation: &'static str,
}

/// `findingCodes() -> [{code, title, explanation}]`: every code a finding can carry.
#[wasm_bindgen(js_name = findingCodes)]
pub fn finding_codes() -> std::result::Result<JsValue, JsValue> {
    let list: Vec<CodeInfo> = FindingCode::ALL
        .iter()
        .map(|&c| CodeInfo {
            code: c.code(),
            title: c.title(),
            explanation: c.explanation(),
        })
        .collect();
    to_js(&list).map_err(|e| to_js_error(&e))
}
