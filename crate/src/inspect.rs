//! The report `vmdisk info` prints: what the probe saw and the drivers read, for an image,
//! its backing chain, or a package and each of its disks.

use crate::chain::backing_layers;
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::image::{Image, OpenedDisk, OpenedImage};
use crate::package;
use crate::probe::{Format, Probe};
use crate::report::{DiskReport, FileInfo, Finding, Report, Safety, Severity};
use crate::source::ImageSet;

mod guest;

/// What the report says of one image: from its probe and, when it was opened, its driver.
struct Facts {
    format: Format,
    virtual_size: u64,
    details: serde_json::Value,
    findings: Vec<Finding>,
    convertible: bool,
    /// Roles of the files it uses (indexed like the set).
    roles: Vec<Option<&'static str>>,
}

fn facts(set: &ImageSet, probe: &Probe, image: Option<&dyn Image>, file: FileId) -> Facts {
    let primary = probe.primary();
    let mut findings: Vec<Finding> = probe.findings.clone();
    // A driver that read the image knows better than the detector's first look: where both
    // report the same code, only the driver's finding is kept.
    let driver_findings = image.map(|i| i.findings()).unwrap_or_default();
    findings.extend(
        primary
            .findings
            .iter()
            .filter(|f| !driver_findings.iter().any(|d| d.code == f.code))
            .cloned(),
    );
    let mut roles: Vec<Option<&'static str>> = vec![None; set.files().len()];
    roles[file.0] = Some("image");
    let mut details = serde_json::Value::Object(primary.details.clone());
    let mut virtual_size = primary.virtual_size.unwrap_or_else(|| set.file(file).len());
    let mut convertible = false;
    if let Some(image) = image {
        virtual_size = image.virtual_size();
        details = merge(details, image.details());
        findings.extend(driver_findings);
        for (id, role) in image.files() {
            roles[id.0].get_or_insert(role);
        }
        convertible = image.readable().is_ok();
        // The backing chain's files and findings belong to this image set too.
        let (layers, missing) = backing_layers(image);
        for b in layers {
            for (id, _) in b.files() {
                roles[id.0].get_or_insert("backing");
            }
            for mut f in b.findings() {
                f.message = format!("backing image: {}", f.message);
                findings.push(f);
            }
            convertible &= b.readable().is_ok();
        }
        if missing.is_some() {
            convertible = false;
        }
    }
    Facts {
        format: primary.format,
        virtual_size,
        details,
        findings,
        convertible,
        roles,
    }
}

/// The report `vmdisk info` prints.
pub fn inspect(opened: &OpenedImage) -> Report {
    let set = &opened.set;
    let mut findings;
    let mut roles: Vec<Option<&'static str>>;
    let format;
    let mut virtual_size;
    let convertible;
    let format_specific;
    let mut disks = vec![];
    if let Some(pkg) = &opened.package {
        format = pkg.format;
        findings = opened.probe.findings.clone();
        findings.extend(pkg.findings.iter().cloned());
        roles = vec![None; set.files().len()];
        for &(id, role) in &pkg.files {
            roles[id.0].get_or_insert(role);
        }
        roles[opened.main.0].get_or_insert("package");
        format_specific = merge(
            serde_json::Value::Object(opened.probe.primary().details.clone()),
            serde_json::Value::Object(pkg.details.clone()),
        );
        virtual_size = 0;
        for (i, (disk, d)) in pkg.disks.iter().zip(&opened.disks).enumerate() {
            let report = disk_report(set, disk, d);
            // Every disk's findings count for the package: a dashboard reading only the
            // top-level safety must not miss a critical one inside.
            for f in &report.findings {
                let mut f = f.clone();
                f.message = format!("disk {} ({}): {}", i + 1, disk.name, f.message);
                findings.push(f);
            }
            disks.push(report);
        }
        convertible = pkg.default_disk().is_some_and(|n| disks[n].convertible);
    } else {
        let f = facts(set, &opened.probe, opened.image.as_deref(), opened.main);
        format = f.format;
        virtual_size = f.virtual_size;
        format_specific = f.details;
        findings = f.findings;
        roles = f.roles;
        convertible = f.convertible;
        if opened.image.is_none() {
            findings.push(Finding::new(
                FindingCode::UnsupportedFormat,
                Severity::Warning,
                format!("vmdisk recognises {format} but cannot read its contents yet"),
            ));
        }
    }
    if let Some(n) = opened.package.as_ref().and_then(|p| p.default_disk()) {
        // The disk a conversion takes: an OVA's first disk, a UEC tarball's machine image.
        virtual_size = disks[n].virtual_size.unwrap_or(0);
    }

    let mut files = vec![];
    let mut actual_size = 0;
    for (i, f) in set.picked().iter().enumerate() {
        let size = f.allocated_size().unwrap_or(f.len());
        match roles[i] {
            Some(role) => {
                actual_size += size;
                files.push(FileInfo {
                    name: f.name().to_string(),
                    size: f.len(),
                    role: role.to_string(),
                });
            }
            None => {
                findings.push(Finding::new(
                    FindingCode::UnusedFile,
                    Severity::Info,
                    format!("{} was supplied but the image does not use it", f.name()),
                ));
                files.push(FileInfo {
                    name: f.name().to_string(),
                    size: f.len(),
                    role: "unused".into(),
                });
            }
        }
    }
    let mut report = Report {
        format,
        virtual_size,
        actual_size,
        detected: opened.probe.matches.iter().map(|d| d.format).collect(),
        convertible,
        files,
        format_specific,
        disks,
        safety: Safety::from_findings(findings),
        clouds: vec![],
        glance: None,
        guest: None,
        hashes: None,
    };
    report.clouds = crate::cloud::assess(&report, crate::cloud::Target::ALL);
    report.glance = crate::glance::metadata(&report);
    report
}

/// [`inspect`], and what the guest's first sectors hold (its partition table) for the image
/// and every readable disk of a package, read through each image as `convert` reads it; the
/// cloud verdicts then judge the guest's partition table too.
pub async fn inspect_guest(opened: &OpenedImage) -> Report {
    let set = &opened.set;
    let mut report = inspect(opened);
    if opened.package.is_none() {
        report.guest = guest::layout(set, opened.image.as_deref()).await;
    }
    for (d, od) in report.disks.iter_mut().zip(&opened.disks) {
        if d.error.is_none() && !od.needs_scratch {
            d.guest = guest::layout(set, od.image.as_deref()).await;
        }
    }
    let targets: Vec<_> = report.clouds.iter().map(|v| v.target).collect();
    report.clouds = crate::cloud::assess(&report, &targets);
    report
}

fn disk_report(set: &ImageSet, disk: &package::Disk, d: &OpenedDisk) -> DiskReport {
    let mut report = DiskReport {
        name: disk.name.clone(),
        format: None,
        virtual_size: None,
        role: disk.role.name().into(),
        convertible: false,
        error: d.error.as_ref().map(|e| e.to_string()),
        compression: disk.compression.map(|c| c.name().into()),
        ovf: disk.ovf.clone(),
        format_specific: serde_json::Value::Null,
        findings: disk.findings.clone(),
        guest: None,
    };
    if let (Some(probe), Some(file)) = (&d.probe, disk.file) {
        let f = facts(set, probe, d.image.as_deref(), file);
        report.format = Some(f.format);
        report.virtual_size = Some(f.virtual_size);
        report.format_specific = f.details;
        report.findings.extend(f.findings);
        report.convertible = (f.convertible && d.error.is_none()) || d.needs_scratch;
        if d.needs_scratch {
            report.findings.push(Finding::new(
                FindingCode::CompressedDisk,
                Severity::Info,
                format!(
                    "{} is a compressed {} image: it is checked in full only when converted (vmdisk decompresses it into a temporary file first)",
                    disk.name, f.format
                ),
            ));
        }
    }
    report
}

/// Shallow merge of two JSON objects; the driver's keys win over the detector's.
fn merge(a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    match (a, b) {
        (serde_json::Value::Object(mut a), serde_json::Value::Object(b)) => {
            a.extend(b);
            serde_json::Value::Object(a)
        }
        (a, serde_json::Value::Null) => a,
        (_, b) => b,
    }
}
