//! Parent (backing) files named inside an image: looked up among the supplied files by base
//! name only, opened one level deeper, and reported.

use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Backing, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, base_name, is_plain_name};

/// A parent (backing) file named inside an image.
pub(crate) struct Parent {
    /// The name exactly as written in the image (or the one it was resolved by).
    pub name: String,
    /// None when it was not supplied (or is in a format vmdisk cannot read).
    pub image: Option<Box<dyn Image>>,
}

/// The [`Backing`] of an image with `parent`.
pub(crate) fn backing(parent: &Option<Parent>) -> Backing<'_> {
    match parent {
        None => Backing::None,
        Some(p) => backing_of(&p.name, p.image.as_deref()),
    }
}

/// The [`Backing`] of a parent named `name` that opened as `image` (None: not supplied).
pub(crate) fn backing_of<'a>(name: &str, image: Option<&'a dyn Image>) -> Backing<'a> {
    match image {
        Some(image) => Backing::Present(image),
        None => Backing::Missing(name.to_string()),
    }
}

/// Resolve backing file `name` of image `file` the qemu way (qcow, QED): by its base name
/// only, opened one level deeper (as raw whatever it holds when `raw`), and record the
/// Critical `backing-file` finding.
pub(crate) async fn open_backing(
    set: &ImageSet,
    file: FileId,
    depth: usize,
    name: String,
    raw: bool,
    findings: &mut Vec<Finding>,
) -> Result<Parent> {
    let open = async |id: FileId, _: &mut Vec<Finding>| -> Result<Option<Box<dyn Image>>> {
        if raw {
            return Ok(Some(raw_image(set, id)));
        }
        // Boxed: the backing may be of the same format (async recursion).
        let opening = Box::pin(crate::image::open_file(set, id, depth + 1));
        Ok(opening.await?.1)
    };
    let image = resolve_backing(set, file, &name, findings, open).await?;
    Ok(Parent { name, image })
}

/// Look backing file `name` of image `file` up among the supplied files by its base name
/// only and `open` it (errors name the backing file); then put the Critical `backing-file`
/// finding first in `findings`. None when it was not supplied.
pub(crate) async fn resolve_backing(
    set: &ImageSet,
    file: FileId,
    name: &str,
    findings: &mut Vec<Finding>,
    open: impl AsyncFnOnce(FileId, &mut Vec<Finding>) -> Result<Option<Box<dyn Image>>>,
) -> Result<Option<Box<dyn Image>>> {
    let mut msg = format!("the image reads unallocated clusters from backing file {name:?}");
    if !is_plain_name(name) {
        msg.push_str(&format!(
            "; the name is a path, which would make a host read that file ({:?} is matched by its base name only)",
            base_name(name)
        ));
    }
    let image = match set.find(name) {
        None => {
            msg.push_str("; it was not supplied");
            None
        }
        Some(id) if id == file => {
            return Err(Error::corrupt(format!(
                "{:?} names itself as its backing file",
                set.file(file).name()
            )));
        }
        Some(id) => open(id, findings).await.map_err(|e| in_backing(e, name))?,
    };
    findings.insert(
        0,
        Finding::new(FindingCode::BackingFile, Severity::Critical, msg),
    );
    Ok(image)
}

/// File `id` of the set read as a raw disk, whatever it holds.
pub(crate) fn raw_image(set: &ImageSet, id: FileId) -> Box<dyn Image> {
    Box::new(crate::formats::raw::RawImage::new(
        Format::Raw,
        id,
        set.file(id).clone(),
    ))
}

/// Name the backing file in an error from opening it, once (the innermost name wins).
pub(crate) fn in_backing(e: Error, name: &str) -> Error {
    let wrap = |m: String| {
        if m.starts_with("backing file ") {
            m
        } else {
            format!("backing file {name:?}: {m}")
        }
    };
    e.map_message(wrap)
}

/// Name the parent in an error from opening it (VHD, VDI).
pub(crate) fn in_parent(e: Error, name: &str) -> Error {
    e.context(format_args!("parent {name}"))
}
