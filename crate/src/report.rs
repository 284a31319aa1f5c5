//! What `vmdisk info` prints: the same object as JSON for the CLI and as a JS object in the browser.

use crate::probe::Format;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; does not make the image unsafe.
    Info,
    /// Suspicious or likely to be refused by a cloud; the image is still safe to read.
    Warning,
    /// The image must not be uploaded as it is (it can read host files, is damaged, is disguised).
    Critical,
}

/// One safety finding. `code` is a stable identifier dashboards match on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(code: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Safety {
    pub safe: bool,
    pub findings: Vec<Finding>,
}

impl Safety {
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        let safe = findings.iter().all(|f| f.severity < Severity::Critical);
        Safety { safe, findings }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    /// What the file is in this set: "image", "backing", "extent", ... or "unused".
    pub role: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub format: Format,
    pub virtual_size: u64,
    pub actual_size: u64,
    /// Every format whose signature the main file carries (more than one: a polyglot).
    pub detected: Vec<Format>,
    /// Whether `convert` can read this image.
    pub convertible: bool,
    pub files: Vec<FileInfo>,
    pub format_specific: serde_json::Value,
    pub safety: Safety,
}
