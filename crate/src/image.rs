//! Opening an image set and inspecting it.

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::formats;
use crate::probe::{self, Format, Probe};
use crate::report::{FileInfo, Finding, Report, Safety, Severity};
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
        return Err(Error::Corrupt(format!(
            "backing chain deeper than {MAX_CHAIN_DEPTH} levels (a loop?)"
        )));
    }
    let src = set.file(id).clone();
    let probe = probe::probe(&*src).await?;
    let format = probe.primary().format;
    let image: Option<Box<dyn Image>> = match format {
        Format::Qcow2 => Some(Box::new(formats::qcow2::Qcow2::open(set, id, depth).await?)),
        Format::Qcow => formats::qcow::open(set, id, depth).await?,
        Format::Qed => formats::qed::open(set, id, depth).await?,
        Format::Vmdk => formats::vmdk::open(set, id, depth).await?,
        Format::Vdi => formats::vdi::open(set, id, depth).await?,
        Format::Vhd => formats::vhd::open(set, id, depth).await?,
        Format::Vhdx => formats::vhdx::open(set, id, depth).await?,
        Format::Parallels => formats::parallels::open(set, id, depth).await?,
        f if f.is_raw_content() => Some(Box::new(formats::raw::RawImage::new(f, id, src.clone()))),
        _ => None,
    };
    Ok((probe, image))
}

/// An image set opened for inspection or conversion.
pub struct OpenedImage {
    pub set: ImageSet,
    /// The file the user means: the one no other supplied file uses as a companion.
    pub main: FileId,
    pub probe: Probe,
    /// None for formats vmdisk can name but not read yet.
    pub image: Option<Box<dyn Image>>,
}

/// Open all files the user supplied together. The main image is the first file that no other
/// file uses (so "overlay + its backing file" works in any order).
pub async fn open(set: ImageSet) -> Result<OpenedImage> {
    let n = set.files().len();
    if n == 0 {
        return Err(Error::Invalid("no files given".into()));
    }
    let mut used = vec![false; n];
    let mut opened = Vec::with_capacity(n);
    for i in 0..n {
        // A companion that fails to open on its own (a VMDK extent, say) is not the main image.
        let result = open_file(&set, FileId(i), 0).await;
        if let Ok((_, Some(image))) = &result {
            mark_used(&**image, i, &mut used);
        }
        opened.push(result);
    }
    let main = (0..n).find(|&i| !used[i]).unwrap_or(0);
    let (probe, image) = opened.swap_remove(main)?;
    Ok(OpenedImage {
        set,
        main: FileId(main),
        probe,
        image,
    })
}

fn mark_used(image: &dyn Image, owner: usize, used: &mut [bool]) {
    for (id, _) in image.files() {
        if id.0 != owner {
            used[id.0] = true;
        }
    }
    if let Backing::Present(b) = image.backing() {
        for (id, _) in b.files() {
            used[id.0] = true;
        }
        mark_used(b, owner, used);
    }
}

/// The report `vmdisk info` prints.
pub fn inspect(opened: &OpenedImage) -> Report {
    let set = &opened.set;
    let primary = opened.probe.primary();
    let mut findings: Vec<Finding> = opened.probe.findings.clone();
    // A driver that read the image knows better than the detector's first look: where both
    // report the same code, only the driver's finding is kept.
    let driver_findings = opened
        .image
        .as_ref()
        .map(|i| i.findings())
        .unwrap_or_default();
    findings.extend(
        primary
            .findings
            .iter()
            .filter(|f| !driver_findings.iter().any(|d| d.code == f.code))
            .cloned(),
    );
    let mut roles: Vec<Option<&'static str>> = vec![None; set.files().len()];
    roles[opened.main.0] = Some("image");
    let mut format_specific = serde_json::Value::Object(primary.details.clone());
    let mut virtual_size = primary
        .virtual_size
        .unwrap_or_else(|| set.file(opened.main).len());
    let mut convertible = false;

    if let Some(image) = &opened.image {
        virtual_size = image.virtual_size();
        format_specific = merge(format_specific, image.details());
        findings.extend(driver_findings);
        for (id, role) in image.files() {
            roles[id.0].get_or_insert(role);
        }
        convertible = image.readable().is_ok();
        // Walk the backing chain: its files and findings belong to this image set too.
        let mut layer: &dyn Image = &**image;
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
    } else {
        findings.push(Finding::new(
            "unsupported-format",
            Severity::Warning,
            format!(
                "vmdisk recognises {} but cannot read its contents yet",
                primary.format
            ),
        ));
    }

    let mut files = vec![];
    let mut actual_size = 0;
    for (i, f) in set.files().iter().enumerate() {
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
        format: primary.format,
        virtual_size,
        actual_size,
        detected: opened.probe.matches.iter().map(|d| d.format).collect(),
        convertible,
        files,
        format_specific,
        safety: Safety::from_findings(findings),
    }
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
