//! Packages: the files a cloud user downloads that hold disks rather than being one (OVA and
//! unpacked OVF, UEC and GCE tarballs, gzip/xz/zstd-compressed images).
//!
//! Containers produce files; disk drivers consume them. A package driver turns its input into
//! member sources ([`member::Window`] for a tar member read in place, [`member::Spans`] for a
//! chunked or sparse one, [`compressed::Stream`] for a decompressed one) that join the image
//! set, where the format drivers open them unchanged. A name written inside a package (a
//! member path, an OVF `href`) is matched against the package's own members or the picked
//! files, never opened on the host; one that is absolute, climbs out with `..` or is a URL is
//! a critical finding and resolves to nothing.
//!
//! ## Finding codes raised here
//! `digest-mismatch` (a manifest digest that does not match), `manifest` (manifest problems:
//! absent files, unreadable lines, no manifest; and what verification checked),
//! `unsafe-member-name` (absolute, `..` or URL names, links, two members of one name),
//! `ova-layout`, `missing-member`, `capacity-mismatch`, `format-label` (the OVF names another
//! format than the disk's bytes), `name-mismatch` (a UEC member named like a kernel holds
//! something else), `compressed-disk` (checked in full only when converted), `truncated`,
//! `corrupt`. The signature's codes are [`cert`]'s (`signed`, `bad-signature`,
//! `certificate-expired`, ...), the descriptor's [`ovf`]'s (`ovf-*`); `not-a-disk` (a kernel
//! or ramdisk) comes from the raw-content driver.

pub mod cert;
pub mod compressed;
pub mod manifest;
pub mod member;
pub mod ovf;
pub mod tar;

mod ova;
mod single;
mod tarball;
mod verify;

pub use ova::check_disk;
pub use single::materialize;
pub use verify::{Progress, verify};

use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::report::{Finding, Severity};
use crate::source::ImageSet;
use compressed::Compression;
use serde::Serialize;
use serde_json::{Map, Value};
use std::rc::Rc;

/// What a disk of a package is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A virtual disk (of an OVF, a GCE tarball, a compressed image).
    Disk,
    /// A UEC tarball's machine image, kernel and ramdisk, in glance's words.
    Ami,
    Aki,
    Ari,
    /// Anything else a tarball holds (a README, a floppy image).
    Other,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Disk => "disk",
            Role::Ami => "ami",
            Role::Aki => "aki",
            Role::Ari => "ari",
            Role::Other => "other",
        }
    }
}

/// One disk of a package (for a UEC tarball, one member).
pub struct Disk {
    /// The member name or `href`, as the package writes it.
    pub name: String,
    pub role: Role,
    /// Its source in the image set; None when it cannot be read (see `problem`).
    pub file: Option<FileId>,
    /// The package members it is made of (what a manifest's digests cover).
    pub members: Vec<FileId>,
    pub problem: Option<Error>,
    /// Stored compressed in the package: reading it decodes a stream.
    pub compression: Option<Compression>,
    /// When the disk is a whole decompressed stream: what a conversion of a format other than
    /// raw content decompresses into a scratch file first ([`materialize`]).
    pub stream: Option<Rc<compressed::Stream>>,
    /// From an OVF descriptor.
    pub ovf: Option<OvfDisk>,
    pub findings: Vec<Finding>,
}

impl Disk {
    fn new(name: impl Into<String>, role: Role, file: Option<FileId>) -> Self {
        Disk {
            name: name.into(),
            role,
            file,
            members: vec![],
            problem: None,
            compression: None,
            stream: None,
            ovf: None,
            findings: vec![],
        }
    }
}

/// What an OVF descriptor says about a disk.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OvfDisk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// The `ovf:format` URI of the Disk element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_format: Option<String>,
}

/// A package opened: its disks (each a file of the image set, or why not), what the report
/// shows of it, and what a verification pass must check.
pub struct Package {
    pub format: Format,
    pub disks: Vec<Disk>,
    /// Files of the set the package uses, with their roles (`member`, `descriptor`,
    /// `manifest`, `certificate`, `disk`).
    pub files: Vec<(FileId, &'static str)>,
    pub details: Map<String, Value>,
    pub findings: Vec<Finding>,
    pub checks: verify::Checks,
}

impl Package {
    fn new(format: Format) -> Self {
        Package {
            format,
            disks: vec![],
            files: vec![],
            details: Map::new(),
            findings: vec![],
            checks: verify::Checks::default(),
        }
    }

    /// The disk `convert` takes when none is named: a UEC tarball's machine image, else the
    /// first disk.
    pub fn default_disk(&self) -> Option<usize> {
        self.disks
            .iter()
            .position(|d| d.role == Role::Ami)
            .or_else(|| self.disks.iter().position(|d| d.role == Role::Disk))
    }
}

/// How far to open a package.
#[derive(Clone, Debug)]
pub struct Options {
    /// Walk a compressed tarball to its end, listing every member (inspection). Otherwise the
    /// walk stops at the disk to convert, so a conversion decodes the stream once.
    pub list_all: bool,
    /// The disk to convert (0-based), when not the default.
    pub disk: Option<usize>,
    /// Seconds since the Unix epoch, from the host, for certificate validity.
    pub now: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            list_all: true,
            disk: None,
            now: None,
        }
    }
}

/// Formats that are packages.
pub fn is_package(format: Format) -> bool {
    matches!(
        format,
        Format::Ova | Format::Ovf | Format::Uec | Format::Gce | Format::Compressed
    )
}

/// Open the package in file `id`, whose probe named it `format`: its member sources join
/// `set`.
pub async fn open(
    set: &mut ImageSet,
    id: FileId,
    format: Format,
    opts: &Options,
) -> Result<Package> {
    match format {
        Format::Ova => ova::open_ova(set, id, opts).await,
        Format::Ovf => ova::open_ovf(set, id, opts).await,
        Format::Uec | Format::Gce => tarball::open(set, id, format, opts).await,
        Format::Compressed => single::open(set, id).await,
        other => Err(Error::invalid(format!("{other} is not a package"))),
    }
}

/// Why a name written in a package must not be followed, if it must not: an absolute path, a
/// `..` component, a drive letter or a URL.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.contains("://") || name.starts_with("file:") {
        Some("is a URL")
    } else if name.starts_with(['/', '\\']) || name.get(1..2) == Some(":") {
        Some("is an absolute path")
    } else if name.split(['/', '\\']).any(|c| c == "..") {
        Some("climbs out of the package with ..")
    } else {
        None
    }
}

/// The finding for a name that is not followed.
fn unsafe_name_finding(what: &str, name: &str, why: &str) -> Finding {
    Finding::new(
        FindingCode::UnsafeMemberName,
        Severity::Critical,
        format!(
            "{what} {name:?} {why}: vmdisk never follows it, and an extracting tool might write or read outside its folder"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names() {
        for bad in [
            "/etc/passwd",
            "..\\x.vmdk",
            "a/../../b",
            "C:\\disk.vmdk",
            "http://x/disk.vmdk",
            "file:///etc/shadow",
        ] {
            assert!(unsafe_name(bad).is_some(), "{bad}");
        }
        for ok in [
            "disk1.vmdk",
            "dir/disk.vmdk",
            "a..b.vmdk",
            "disk.vmdk.000000000",
        ] {
            assert_eq!(unsafe_name(ok), None, "{ok}");
        }
    }
}
