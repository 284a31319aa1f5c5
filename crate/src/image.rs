//! Opening an image set and inspecting it.

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::formats;
use crate::package::{self, Package};
use crate::probe::{self, Format, Probe};
use crate::report::{DiskReport, FileInfo, Finding, Report, Safety, Severity};
use crate::sink::Scratch;
use crate::source::ImageSet;
use async_trait::async_trait;

/// How deep a backing chain may go before we call it a loop.
pub const MAX_CHAIN_DEPTH: usize = 16;

/// An opened, validated image: answers "where do the bytes of guest range R live?".
/// It never moves bulk data itself; the copy engine does.
#[async_trait(?Send)]
pub trait Image {
    fn format(&self) -> Format;
    fn virtual_size(&self) -> u64;
    /// The extents covering exactly `[start, start + len)` (inside the virtual size), in guest order.
    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>>;
    /// The image's backing (parent) chain.
    fn backing(&self) -> Backing<'_> {
        Backing::None
    }
    /// Format details for `format-specific` in the report.
    fn details(&self) -> serde_json::Value;
    /// Safety findings collected while opening.
    fn findings(&self) -> Vec<Finding> {
        vec![]
    }
    /// The files this image (not its backing) is made of, with their roles ("image", "extent", ...).
    fn files(&self) -> Vec<(FileId, &'static str)>;
    /// Err when the guest data cannot be read (encryption, external data file, ...): checked
    /// before a conversion starts so it fails without writing anything.
    fn readable(&self) -> Result<()> {
        Ok(())
    }
}

pub enum Backing<'a> {
    None,
    /// The image names a backing file that was not supplied (the name as written in the image).
    Missing(String),
    Present(&'a dyn Image),
}

/// Open file `id` of the set as whatever its content says it is. Returns the probe and, for
/// formats vmdisk reads, the image. `depth` counts backing levels (loops end at MAX_CHAIN_DEPTH).
pub async fn open_file(
    set: &ImageSet,
    id: FileId,
    depth: usize,
) -> Result<(Probe, Option<Box<dyn Image>>)> {
    if depth > MAX_CHAIN_DEPTH {
        return Err(Error::corrupt(format!(
            "backing chain deeper than {MAX_CHAIN_DEPTH} levels (a loop?)"
        )));
    }
    let probe = probe::probe(&**set.file(id)).await?;
    let image = open_probed(set, id, &probe, depth).await?;
    Ok((probe, image))
}

/// The image of file `id` whose probe is `probe`; None for formats vmdisk names but does not
/// read as a disk (packages are opened by [`package::open`]).
async fn open_probed(
    set: &ImageSet,
    id: FileId,
    probe: &Probe,
    depth: usize,
) -> Result<Option<Box<dyn Image>>> {
    let src = set.file(id).clone();
    Ok(match probe.primary().format {
        Format::Qcow2 => Some(Box::new(formats::qcow2::Qcow2::open(set, id, depth).await?)),
        Format::Qcow => formats::qcow::open(set, id, depth).await?,
        Format::Qed => formats::qed::open(set, id, depth).await?,
        Format::Vmdk => formats::vmdk::open(set, id, depth).await?,
        Format::Vdi => formats::vdi::open(set, id, depth).await?,
        Format::Vhd => formats::vhd::open(set, id, depth).await?,
        Format::Vhdx => formats::vhdx::open(set, id, depth).await?,
        Format::Parallels => formats::parallels::open(set, id, depth).await?,
        f if f.is_raw_content() => Some(Box::new(formats::raw::RawImage::new(f, id, src))),
        _ => None,
    })
}

/// What opening a file gives: the image, or None for a format vmdisk names but does not read.
type MaybeImage = Option<Box<dyn Image>>;

/// A package's disk, opened.
pub struct OpenedDisk {
    pub probe: Option<Probe>,
    pub image: Option<Box<dyn Image>>,
    /// Why it cannot be read, when it cannot.
    pub error: Option<Error>,
    /// Its format can only be read at random, and it is a decompressed stream: a conversion
    /// decompresses it into a scratch file first ([`OpenedImage::prepare`]).
    pub needs_scratch: bool,
}

/// An image set opened for inspection or conversion.
pub struct OpenedImage {
    pub set: ImageSet,
    /// The file the user means: the one no other supplied file uses as a companion.
    pub main: FileId,
    pub probe: Probe,
    /// The image, when the main file is one vmdisk reads (not a package).
    pub image: Option<Box<dyn Image>>,
    /// The package, when the main file is one, and its disks (in the same order).
    pub package: Option<Package>,
    pub disks: Vec<OpenedDisk>,
}

impl OpenedImage {
    /// The disk a conversion takes: `disk` (0-based) or the package's default.
    pub fn disk_index(&self, disk: Option<usize>) -> Result<Option<usize>> {
        let Some(pkg) = &self.package else {
            return match disk {
                None | Some(0) => Ok(None),
                Some(n) => Err(Error::invalid(format!(
                    "disk {} asked for, but {} is one disk, not a package",
                    n + 1,
                    self.set.file(self.main).name()
                ))),
            };
        };
        match disk {
            Some(n) if n < pkg.disks.len() => Ok(Some(n)),
            Some(n) => Err(Error::invalid(format!(
                "disk {} asked for, but the package holds {}",
                n + 1,
                pkg.disks.len()
            ))),
            None => pkg.default_disk().map(Some).ok_or_else(|| {
                Error::not_an_image(format!(
                    "the {} package holds no disk to convert",
                    pkg.format
                ))
            }),
        }
    }

    /// The image a conversion reads: a package's disk (see [`OpenedImage::disk_index`]) or
    /// the image itself, with why it cannot be read when it cannot.
    pub fn target(&self, disk: Option<usize>) -> Result<&dyn Image> {
        let image = match self.disk_index(disk)? {
            None => self.image.as_deref().ok_or_else(|| {
                Error::unsupported(format!(
                    "reading {} images is not supported yet",
                    self.probe.primary().format
                ))
            })?,
            Some(n) => {
                let d = &self.disks[n];
                let name = &self.package.as_ref().expect("a package").disks[n].name;
                if let Some(e) = &d.error {
                    return Err(e.clone());
                }
                if d.needs_scratch {
                    return Err(Error::invalid(format!(
                        "{name} must be decompressed first (OpenedImage::prepare)"
                    )));
                }
                d.image.as_deref().ok_or_else(|| {
                    Error::unsupported(format!("vmdisk cannot read the disk {name}"))
                })?
            }
        };
        crate::engine::check_readable(image)?;
        Ok(image)
    }

    /// Make disk `disk` of a package readable at random: decompress it once into a scratch file
    /// from `scratch` and open that. Does nothing for a disk that does not need it.
    pub async fn prepare(
        &mut self,
        disk: Option<usize>,
        scratch: &dyn Scratch,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<()> {
        let Some(n) = self.disk_index(disk)? else {
            return Ok(());
        };
        if !self.disks[n].needs_scratch {
            return Ok(());
        }
        let pkg = self.package.as_ref().expect("a package");
        let stream = pkg.disks[n]
            .stream
            .clone()
            .ok_or_else(|| Error::invalid("only a whole stream can be decompressed"))?;
        let file = package::materialize(&mut self.set, &stream, scratch, progress).await?;
        let (probe, image) = open_file(&self.set, file, 0).await?;
        self.disks[n] = OpenedDisk {
            probe: Some(probe),
            image,
            error: None,
            needs_scratch: false,
        };
        Ok(())
    }
}

/// Open all files the user supplied together. The main image is the first file that no other
/// file uses (so "overlay + its backing file" works in any order). Packages among them add
/// their members to the set.
pub async fn open(set: ImageSet) -> Result<OpenedImage> {
    open_with(set, &package::Options::default()).await
}

pub async fn open_with(mut set: ImageSet, opts: &package::Options) -> Result<OpenedImage> {
    let n = set.picked().len();
    if n == 0 {
        return Err(Error::invalid("no files given"));
    }
    let mut used = vec![false; n];
    let mut probes = Vec::with_capacity(n);
    for i in 0..n {
        probes.push(probe::probe(&**set.file(FileId(i))).await);
    }
    // Packages first: they add members to the set, and a loose OVF uses picked files.
    let mut packages: Vec<Option<Result<Package>>> = (0..n).map(|_| None).collect();
    for i in 0..n {
        let Ok(p) = &probes[i] else { continue };
        let format = p.primary().format;
        if package::is_package(format) {
            let pkg = package::open(&mut set, FileId(i), format, opts).await;
            if let Ok(pkg) = &pkg {
                for &(id, _) in &pkg.files {
                    if id.0 < n && id.0 != i {
                        used[id.0] = true;
                    }
                }
            }
            packages[i] = Some(pkg);
        }
    }
    let mut images: Vec<Option<Result<MaybeImage>>> = (0..n).map(|_| None).collect();
    for i in 0..n {
        if packages[i].is_some() {
            continue;
        }
        let Ok(p) = &probes[i] else { continue };
        // A companion that fails to open on its own (a VMDK extent, say) is not the main image.
        let result = open_probed(&set, FileId(i), p, 0).await;
        if let Ok(Some(image)) = &result {
            mark_used(&**image, i, &mut used);
        }
        images[i] = Some(result);
    }
    let main = (0..n).find(|&i| !used[i]).unwrap_or(0);
    let probe = probes.swap_remove(main)?;
    let (image, package) = match (images.swap_remove(main), packages.swap_remove(main)) {
        (Some(image), _) => (image?, None),
        (None, Some(pkg)) => (None, Some(pkg?)),
        (None, None) => (None, None),
    };
    let mut opened = OpenedImage {
        set,
        main: FileId(main),
        probe,
        image,
        package,
        disks: vec![],
    };
    if let Some(pkg) = &mut opened.package {
        for disk in &mut pkg.disks {
            opened.disks.push(open_disk(&opened.set, disk).await);
        }
    }
    Ok(opened)
}

/// Open one disk of a package: probe its member source, open it unless it is a stream that
/// its driver would read at random (then a conversion decompresses it first).
async fn open_disk(set: &ImageSet, disk: &mut package::Disk) -> OpenedDisk {
    let failed = |e: Error| OpenedDisk {
        probe: None,
        image: None,
        error: Some(e),
        needs_scratch: false,
    };
    let Some(file) = disk.file else {
        return failed(
            disk.problem
                .clone()
                .unwrap_or_else(|| Error::missing(format!("{} cannot be read", disk.name))),
        );
    };
    let src = set.file(file).clone();
    if let Some(stream) = &disk.stream
        && stream.known_len().is_none()
        && let Err(e) = stream.measure(&mut |_| true).await
    {
        // A file's length is part of what detection checks: decode the stream once to know it.
        return failed(e);
    }
    let probe = match probe::probe(&*src).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let format = probe.primary().format;
    if package::is_package(format) {
        return failed(Error::unsupported(format!(
            "{} is itself a package ({format}): extract it first",
            disk.name
        )));
    }
    if src.sequential() && !format.is_raw_content() {
        let needs_scratch = disk.stream.is_some();
        return OpenedDisk {
            error: (!needs_scratch).then(|| {
                Error::unsupported(format!(
                    "{} is a {format} image inside a compressed stream that vmdisk can only read front to back",
                    disk.name
                ))
            }),
            probe: Some(probe),
            image: None,
            needs_scratch,
        };
    }
    match open_probed(set, file, &probe, 0).await {
        Ok(image) => {
            if let Some(i) = &image {
                package::check_disk(disk, i.format(), i.virtual_size());
            }
            OpenedDisk {
                probe: Some(probe),
                image,
                error: None,
                needs_scratch: false,
            }
        }
        Err(e) => OpenedDisk {
            probe: Some(probe),
            image: None,
            error: Some(e),
            needs_scratch: false,
        },
    }
}

fn mark_used(image: &dyn Image, owner: usize, used: &mut [bool]) {
    for (id, _) in image.files() {
        if id.0 != owner && id.0 < used.len() {
            used[id.0] = true;
        }
    }
    if let Backing::Present(b) = image.backing() {
        for (id, _) in b.files() {
            if id.0 < used.len() {
                used[id.0] = true;
            }
        }
        mark_used(b, owner, used);
    }
}

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
        // Walk the backing chain: its files and findings belong to this image set too.
        let mut layer: &dyn Image = image;
        loop {
            match layer.backing() {
                Backing::None => break,
                Backing::Missing(_) => {
                    convertible = false;
                    break;
                }
                Backing::Present(b) => {
                    for (id, _) in b.files() {
                        roles[id.0].get_or_insert("backing");
                    }
                    for mut f in b.findings() {
                        f.message = format!("backing image: {}", f.message);
                        findings.push(f);
                    }
                    convertible &= b.readable().is_ok();
                    layer = b;
                }
            }
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
                "unsupported-format",
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
                    "unused-file",
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
    Report {
        format,
        virtual_size,
        actual_size,
        detected: opened.probe.matches.iter().map(|d| d.format).collect(),
        convertible,
        files,
        format_specific,
        disks,
        safety: Safety::from_findings(findings),
    }
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
                "compressed-disk",
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
