//! What a `vmdisk info --json` report says: its safety findings and the roles of its files.

use serde_json::Value;

fn all(info: &Value) -> &Vec<Value> {
    info["safety"]["findings"].as_array().unwrap()
}

/// Every finding's code, in report order.
pub fn codes(info: &Value) -> Vec<String> {
    all(info)
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// Every finding as (code, severity).
pub fn codes_and_severities(info: &Value) -> Vec<(String, String)> {
    all(info)
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether the report has a finding `code` of `severity`.
pub fn has_finding(info: &Value, code: &str, severity: &str) -> bool {
    codes_and_severities(info)
        .iter()
        .any(|(c, s)| c == code && s == severity)
}

/// Every finding as (code, severity, message).
pub fn findings(info: &Value) -> Vec<(String, String, String)> {
    all(info)
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The first of `all` with `code`; panics naming the code when there is none.
pub fn finding<'a>(
    all: &'a [(String, String, String)],
    code: &str,
) -> &'a (String, String, String) {
    all.iter()
        .find(|f| f.0 == code)
        .unwrap_or_else(|| panic!("no {code} finding in {all:?}"))
}

/// Every file of the report as (name, role).
pub fn file_roles(info: &Value) -> Vec<(String, String)> {
    info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The report lists `file` in the role `role` (`image`, `backing`, `extent`).
pub fn assert_has_role(info: &Value, file: &str, role: &str) {
    let roles = file_roles(info);
    assert!(roles.contains(&(file.into(), role.into())), "{roles:?}");
}
