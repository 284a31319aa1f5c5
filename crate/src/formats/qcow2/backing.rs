//! The backing file (qcow2.txt bytes 8-19, extension 0xe2792aca): its name in the header
//! cluster, and opening it with the format the image declares for it.

use super::header::{self, Extensions, Header, shown};
use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::formats::common::parent::{raw_image, resolve_backing};
use crate::image::Image;
use crate::report::{Finding, Severity};
use crate::source::ImageSet;

pub(super) struct BackingFile {
    /// The name exactly as written in the image.
    pub(super) name: String,
    pub(super) format: Option<String>,
    /// None when the file was not supplied.
    pub(super) image: Option<Box<dyn Image>>,
}

/// The backing file name (header bytes 8-19): at most 1023 bytes, inside the header cluster.
pub(super) fn backing_file_name(h: &Header, head: &[u8]) -> Result<Option<String>> {
    if h.backing_file_offset == 0 {
        return Ok(None);
    }
    let (off, len) = (h.backing_file_offset, u64::from(h.backing_file_size));
    if len > header::MAX_NAME as u64 {
        return Err(Error::corrupt(format!(
            "qcow2 backing file name is {len} bytes long (at most {} allowed)",
            header::MAX_NAME
        )));
    }
    if off < u64::from(h.header_length) || off.checked_add(len).is_none_or(|e| e > h.cluster_size())
    {
        return Err(Error::corrupt(format!(
            "qcow2 backing file name at offset {off} (+{len} bytes) is not inside the header cluster"
        )));
    }
    if off + len > head.len() as u64 {
        return Err(Error::truncated(format!(
            "the file ends inside the qcow2 backing file name at offset {off}"
        )));
    }
    let name = header::c_string(&head[off as usize..(off + len) as usize]);
    // An empty name means no backing file, as for qemu.
    Ok((!name.is_empty()).then_some(name))
}

/// Resolve and open backing file `name` of image `file`. It is opened before the image's own
/// tables are read, so a chain that loops fails at the depth limit having held little.
pub(super) async fn open_backing(
    set: &ImageSet,
    file: FileId,
    depth: usize,
    name: String,
    ext: &Extensions,
    findings: &mut Vec<Finding>,
) -> Result<BackingFile> {
    let declared = ext.backing_format.as_deref();
    let open = async |id: FileId, findings: &mut Vec<Finding>| {
        // Boxed: opening the backing may open a qcow2 again (async recursion).
        let (image, mismatch) = Box::pin(open_declared(set, id, depth, declared)).await?;
        if let Some(m) = mismatch {
            findings.push(Finding::new(
                FindingCode::BackingFormat,
                Severity::Critical,
                m,
            ));
        }
        Ok(image)
    };
    let image = resolve_backing(set, file, &name, findings, open).await?;
    Ok(BackingFile {
        name,
        format: ext.backing_format.clone(),
        image,
    })
}

/// Open the supplied backing file. When the image declares a backing format that differs from
/// what the file's content says, that is reported; a declared `raw` is honoured (that is how
/// qemu reads it: the bytes of the file, header and all, are the guest disk).
async fn open_declared(
    set: &ImageSet,
    id: FileId,
    depth: usize,
    declared: Option<&str>,
) -> Result<(Option<Box<dyn Image>>, Option<String>)> {
    let (probe, image) = crate::image::open_file(set, id, depth + 1).await?;
    let detected = probe.primary().format;
    let name = set.file(id).name();
    let mismatch = declared.filter(|d| {
        let same = *d == detected.name() || (*d == "raw" && detected.is_raw_content());
        !same
    });
    let Some(declared) = mismatch else {
        return Ok((image, None));
    };
    let msg = format!(
        "the image declares its backing file {} as {} but it contains {detected}",
        shown(name),
        shown(declared)
    );
    if declared == "raw" {
        return Ok((
            Some(raw_image(set, id)),
            Some(msg + "; read as raw, as qemu would"),
        ));
    }
    Ok((image, Some(msg)))
}
