//! Format detection from content alone (never from the file name).
//!
//! Every detector looks at the head and tail of the file; all matches are kept so a polyglot
//! (an ISO whose system area starts with a qcow2 header, say) is reported as such.

use crate::error::{Error, Result};
use crate::report::Finding;
use crate::source::Source;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Qcow2,
    Qcow,
    Qed,
    Vmdk,
    Vdi,
    Vhd,
    Vhdx,
    Parallels,
    Luks,
    Iso,
    Ova,
    /// A bare Linux root filesystem (EC2 machine image): boots only with an AKI and ARI.
    Ami,
    /// A Linux kernel (bzImage).
    Aki,
    /// An initrd / initramfs.
    Ari,
    /// A gzipped tarball holding AMI + AKI + ARI (Ubuntu UEC).
    Uec,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Qed => "qed",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Parallels => "parallels",
            Format::Luks => "luks",
            Format::Iso => "iso",
            Format::Ova => "ova",
            Format::Ami => "ami",
            Format::Aki => "aki",
            Format::Ari => "ari",
            Format::Uec => "uec",
        }
    }

    /// Formats whose bytes are the guest disk itself, read as raw.
    pub fn is_raw_content(self) -> bool {
        matches!(
            self,
            Format::Raw | Format::Iso | Format::Ami | Format::Aki | Format::Ari
        )
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One detector's verdict.
#[derive(Clone, Debug)]
pub struct Detection {
    pub format: Format,
    /// The guest disk size when the header states it.
    pub virtual_size: Option<u64>,
    /// What the detector learnt on the way (subformat, partition table, filesystem, ...).
    pub details: serde_json::Map<String, serde_json::Value>,
    pub findings: Vec<Finding>,
}

impl Detection {
    pub fn new(format: Format) -> Self {
        Detection {
            format,
            virtual_size: None,
            details: Default::default(),
            findings: vec![],
        }
    }
}

/// Everything the detectors found in one file, the most specific match first.
/// `matches` is never empty: anything unrecognised is `raw`.
#[derive(Clone, Debug)]
pub struct Probe {
    pub matches: Vec<Detection>,
    /// Findings about the file as a whole (`format-mismatch` for a polyglot, ...).
    pub findings: Vec<Finding>,
}

impl Probe {
    pub fn primary(&self) -> &Detection {
        &self.matches[0]
    }
}

/// Detect the format of `src`. Errors only when the file cannot be an image at all (empty,
/// a compressed file that is not a known container) or cannot be read.
pub async fn probe(src: &dyn Source) -> Result<Probe> {
    if src.len() == 0 {
        return Err(Error::NotAnImage(format!("{} is empty", src.name())));
    }
    let head_len = src.len().min(4096);
    let head = crate::source::read_vec(src, 0, head_len, "file header").await?;
    let mut matches = vec![];
    if head.starts_with(b"QFI\xfb") {
        let mut d = Detection::new(Format::Qcow2);
        if head.len() >= 32 {
            d.virtual_size = Some(u64::from_be_bytes(head[24..32].try_into().unwrap()));
        }
        matches.push(d);
    }
    if matches.is_empty() {
        matches.push(Detection::new(Format::Raw));
    }
    Ok(Probe {
        matches,
        findings: vec![],
    })
}
