//! What `vmdisk info` prints: the same object as JSON for the CLI and as a JS object in the browser.

use crate::finding_code::FindingCode;
use crate::format::Format;
use serde::Serialize;

mod text;

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
    pub code: FindingCode,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(code: FindingCode, severity: Severity, message: impl Into<String>) -> Self {
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

impl Report {
    /// Add findings learnt after inspection (a verification pass), keeping the verdict right.
    pub fn add_findings(&mut self, more: Vec<Finding>) {
        let mut all = std::mem::take(&mut self.safety.findings);
        all.extend(more);
        self.safety = Safety::from_findings(all);
        // The cloud verdicts read the findings: keep them in step.
        let targets: Vec<_> = self.clouds.iter().map(|v| v.target).collect();
        self.clouds = crate::cloud::assess(self, &targets);
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
    /// A package's disks in package order (for a UEC tarball, every member); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskReport>,
    pub safety: Safety,
    /// Whether each cloud would accept the file as it is, and why not.
    pub clouds: Vec<crate::cloud::Verdict>,
    /// The glance record of the file (None when glance has no disk_format for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glance: Option<crate::glance::Glance>,
    /// What the guest disk's first sectors hold, read through the image (`partition-table`:
    /// `mbr` or `gpt`, `partitions`, `mbr-problem`, `filesystem`); None for a package (each
    /// disk has its own) and when the guest cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<serde_json::Value>,
    /// The file's digests, when asked for (`info --hash`), glance record or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<crate::glance::FileHashes>,
}

/// One disk of a package.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskReport {
    /// The member name (or OVF href).
    pub name: String,
    /// What its bytes are; None when it cannot be read.
    pub format: Option<Format>,
    pub virtual_size: Option<u64>,
    /// `disk`, or a UEC member's `ami`, `aki`, `ari`, `other`.
    pub role: String,
    pub convertible: bool,
    /// Why it cannot be read or converted, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Decompressed from the package (`gzip`, `xz`, `zstd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The OVF's capacity, VM and controller for this disk.
    #[serde(flatten)]
    pub ovf: Option<crate::package::OvfDisk>,
    pub format_specific: serde_json::Value,
    pub findings: Vec<Finding>,
    /// What the disk's first sectors hold, read through its image (as [`Report::guest`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<serde_json::Value>,
}
