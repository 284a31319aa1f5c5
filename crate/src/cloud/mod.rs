//! Would a cloud accept this image as it is? One verdict a target, computed from the report
//! alone (its format, subformat, findings, files, disks and sizes), with a reason for every
//! refusal: what is wrong in plain words and what to do about it.
//!
//! Each target's rules live in its own file and cite where they come from.

mod aws;
mod azure;
mod gce;
mod openstack;
mod text;

pub use text::text;

use crate::format::Format;
use crate::report::{DiskReport, Report};
use serde::Serialize;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Openstack,
    Aws,
    Azure,
    Gce,
}

impl Target {
    pub const ALL: &'static [Target] =
        &[Target::Openstack, Target::Aws, Target::Azure, Target::Gce];

    pub fn name(self) -> &'static str {
        match self {
            Target::Openstack => "openstack",
            Target::Aws => "aws",
            Target::Azure => "azure",
            Target::Gce => "gce",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.iter().copied().find(|t| t.name() == name)
    }
}

/// Why a target refuses the image. `code` is stable (kebab-case) for dashboards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    pub message: String,
    pub fix: String,
    /// The vmdisk conversion `fix` names, as data for hosts that offer to run it (they key
    /// on this, never on the fix's text); absent when the fix names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convert: Option<Conversion>,
}

impl Reason {
    pub fn new(code: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
            fix: fix.into(),
            convert: None,
        }
    }

    /// The same reason, its fix being (or starting with) `conversion`.
    pub fn converting(self, conversion: Conversion) -> Self {
        Reason {
            convert: Some(conversion),
            ..self
        }
    }
}

/// A `vmdisk convert -O FORMAT [--disk N] -o OUTPUT` a fix names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Conversion {
    /// "raw" or "qcow2".
    pub format: &'static str,
    /// A package's disk, 0-based as in the report's `disks` (the CLI's `--disk` is this + 1);
    /// None: the image, or the package's default disk.
    pub disk: Option<usize>,
    /// The output file's name.
    pub output: String,
    /// The fix goes on with other tools (qemu-img, tar) after the conversion.
    pub first_step: bool,
}

impl Conversion {
    /// The whole fix: convert the image (or default disk) to `format` into `output`.
    pub fn to(format: &'static str, output: impl Into<String>) -> Self {
        Conversion {
            format,
            disk: None,
            output: output.into(),
            first_step: false,
        }
    }

    /// The conversion is the first step of the fix.
    pub fn then_more(self) -> Self {
        Conversion {
            first_step: true,
            ..self
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub target: Target,
    pub accepted: bool,
    pub reasons: Vec<Reason>,
}

/// The verdict of each of `targets` on the image `r` describes.
pub fn assess(r: &Report, targets: &[Target]) -> Vec<Verdict> {
    targets
        .iter()
        .map(|&target| {
            let mut reasons: Vec<Reason> = damaged(r).into_iter().collect();
            reasons.extend(match target {
                Target::Openstack => openstack::reasons(r),
                Target::Aws => aws::reasons(r),
                Target::Azure => azure::reasons(r),
                Target::Gce => gce::reasons(r),
            });
            Verdict {
                target,
                accepted: reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// A damaged image (data lost past the end, or stored over other data) is refused by every
/// target: its header may pass an upload check, but every importer that reads the disk fails
/// on it (glance's image conversion runs `qemu-img convert`, glance
/// `async_/flows/plugins/image_conversion.py`; AWS VM Import and the Azure/GCE boot read the
/// whole disk), and a VM booted from it sees missing data.
fn damaged(r: &Report) -> Option<Reason> {
    use crate::FindingCode::{Corrupt, Truncated};
    use crate::report::Severity;
    let f = r
        .safety
        .findings
        .iter()
        .find(|f| matches!(f.code, Truncated | Corrupt) && f.severity == Severity::Critical)?;
    Some(Reason::new(
        "damaged",
        format!("the image is damaged ({}): {}", f.code.code(), f.message),
        "get a whole copy of the image (download or export it again); `vmdisk check` lists what is wrong",
    ))
}

/// The name the user gave the image (or package), for the commands in a fix.
pub fn input_name(r: &Report) -> &str {
    r.files
        .iter()
        .find(|f| matches!(f.role.as_str(), "image" | "package" | "descriptor"))
        .map_or("IMAGE", |f| f.name.as_str())
}

/// The output file a suggested `vmdisk convert` writes: `disk.vmdk` -> `disk.qcow2`, and
/// `disk.qcow2` -> `disk-flat.qcow2` (never the input's own name).
pub fn output_name(input: &str, ext: &str) -> String {
    let stem = match input.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => input,
    };
    let out = format!("{stem}.{ext}");
    if out == input {
        format!("{stem}-flat.{ext}")
    } else {
        out
    }
}

/// A string field of a format-specific object.
pub fn detail<'a>(details: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    details.get(key).and_then(serde_json::Value::as_str)
}

/// The VMDK create type (`streamOptimized`, `monolithicSparse`, ...).
pub fn create_type(details: &serde_json::Value) -> Option<&str> {
    detail(details, "create-type")
}

/// The VHD disk type (`fixed`, `dynamic`, `differencing`).
pub fn vhd_type(details: &serde_json::Value) -> Option<&str> {
    detail(details, "disk-type")
}

/// Whether the report (or a disk of it) has a finding of that code.
pub fn has(r: &Report, code: crate::FindingCode) -> bool {
    r.safety.findings.iter().any(|f| f.code == code)
}

/// The disks a package holds, or None for a lone image.
pub fn package_disks(r: &Report) -> Option<&[DiskReport]> {
    matches!(
        r.format,
        Format::Ova | Format::Ovf | Format::Uec | Format::Gce | Format::Compressed
    )
    .then_some(r.disks.as_slice())
}

/// The "too-large" refusal of a disk of `size` bytes where a cloud takes at most `max`
/// (`what` names the limit: "an EBS volume", "a generation 1 VM's OS disk").
pub fn too_large(size: u64, max: u64, what: &str, fix: &str) -> Option<Reason> {
    (size > max).then(|| {
        Reason::new(
            "too-large",
            format!(
                "the disk is {}; {what} holds at most {}",
                bytes(size),
                bytes(max)
            ),
            fix,
        )
    })
}

/// The guest disk's partition table (`mbr`, `gpt`), as the report read it through the image
/// (`guest`); for raw content the probe's own reading of the file stands in when the guest was
/// not read. `Some(None)`: read, and no table; `None`: not known (the guest was not readable).
pub fn partition_table<'a>(
    guest: Option<&'a serde_json::Value>,
    format: Format,
    details: &'a serde_json::Value,
) -> Option<Option<&'a str>> {
    match guest {
        Some(g) => Some(detail(g, "partition-table")),
        None if format.is_raw_content() => Some(detail(details, "partition-table")),
        None => None,
    }
}

/// Bytes in binary units for messages: `3 GiB`, `1.5 MiB`, `1000 bytes`.
pub fn bytes(n: u64) -> String {
    for (unit, size) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB)] {
        if n >= size {
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.2} {unit} ({n} bytes)", n as f64 / size as f64)
            };
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests;
