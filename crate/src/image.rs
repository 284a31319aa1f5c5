//! Opening an image set: probing each file, opening packages and images, and picking the main
//! one. The report is built in [`crate::inspect`], backing chains are walked in [`crate::chain`].

use crate::chain::backing_layers;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::formats;
use crate::formats::common::extents::range_end;
use crate::package::{self, Package};
use crate::probe::{self, Format, Probe};
use crate::report::Finding;
use crate::sink::Scratch;
use crate::source::ImageSet;
use async_trait::async_trait;

pub use crate::inspect::inspect;

/// How deep a backing chain may go before we call it a loop.
pub const MAX_CHAIN_DEPTH: usize = 16;

/// An opened, validated image: answers "where do the bytes of guest range R live?".
/// It never moves bulk data itself; the copy engine does. A driver states what it knows
/// ([`Image::basics`], [`Image::map_inside`], [`Image::details`]) and what it does differently;
/// the answers every driver gives the same way are the defaults here.
#[async_trait(?Send)]
pub trait Image {
    /// The facts the defaults below are read from.
    fn basics(&self) -> Basics<'_>;
    fn format(&self) -> Format {
        self.basics().format
    }
    fn virtual_size(&self) -> u64 {
        self.basics().virtual_size
    }
    /// The extents covering exactly `[start, start + len)` (inside the virtual size), in guest
    /// order: fails when the image cannot be read or the range is outside, else [`Image::map_inside`].
    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        self.readable()?;
        let end = range_end(start, len, self.virtual_size())?;
        self.map_inside(start, end).await
    }
    /// The extents covering exactly `[start, end)`, a range [`Image::map`] has checked.
    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>>;
    /// The image's backing (parent) chain.
    fn backing(&self) -> Backing<'_> {
        Backing::None
    }
    /// Format details for `format-specific` in the report.
    fn details(&self) -> serde_json::Value;
    /// Safety findings collected while opening.
    fn findings(&self) -> Vec<Finding> {
        self.basics().findings.to_vec()
    }
    /// The files this image (not its backing) is made of, with their roles ("image", "extent",
    /// ...): by default the one file it was opened from.
    fn files(&self) -> Vec<(FileId, &'static str)> {
        vec![(self.basics().file, "image")]
    }
    /// Err when the guest data cannot be read (encryption, external data file, ...): checked
    /// before a conversion starts so it fails without writing anything.
    fn readable(&self) -> Result<()> {
        Ok(())
    }
}

/// What every driver knows of itself once open, in its own fields.
pub struct Basics<'a> {
    pub format: Format,
    pub virtual_size: u64,
    /// The file the image was opened from.
    pub file: FileId,
    /// What opening found unsafe or damaged.
    pub findings: &'a [Finding],
}

impl<'a> Basics<'a> {
    pub fn new(format: Format, virtual_size: u64, file: FileId, findings: &'a [Finding]) -> Self {
        Basics {
            format,
            virtual_size,
            file,
            findings,
        }
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
    let format = probe.primary().format;
    Ok(match formats::driver(format) {
        Some(open) => Some(open(set, id, depth).await?),
        None if format.is_raw_content() => {
            Some(Box::new(formats::raw::RawImage::new(format, id, src)))
        }
        None => None,
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
/// file uses and that probes as something (so "overlay + its backing file" works in any order).
/// Packages among them add their members to the set.
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
    // A file that cannot be an image (the empty `.hdd` marker of a Parallels bundle, say) is
    // the main one only when nothing else is left.
    let unused = || (0..n).filter(|&i| !used[i]);
    let main = unused()
        .find(|&i| probes[i].is_ok())
        .or_else(|| unused().next())
        .unwrap_or(0);
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
    let mine = image.files().into_iter().filter(|(id, _)| id.0 != owner);
    let (layers, _) = backing_layers(image);
    let theirs = layers.into_iter().flat_map(|b| b.files());
    for (id, _) in mine.chain(theirs) {
        if id.0 < used.len() {
            used[id.0] = true;
        }
    }
}
