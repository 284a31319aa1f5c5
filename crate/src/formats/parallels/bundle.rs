//! A Parallels Desktop `.hdd` bundle opened from its `DiskDescriptor.xml`
//! ([`super::descriptor`]): the guest disk is the storages one after another, each a `.hds`
//! file among the supplied ones, found by base name like VMDK extents ([`ImageSet::find`]).
//! `Compressed` storages are read with the Parallels driver, `Plain` ones as raw bytes.
//! Snapshot chains (several images in a storage) are refused.

use super::Parallels;
use super::descriptor::{BundleDescriptor, MAX_DESCRIPTOR, Storage, StorageKind, parse_descriptor};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::descriptors::{
    extent_file, extent_size, files_with_extents, pieces_reached, read_descriptor, shown,
};
use crate::formats::common::extents::{self, map_plain};
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source};
use async_trait::async_trait;
use serde_json::json;
use std::rc::Rc;

enum Data {
    /// Raw guest bytes from offset 0 of `file`; `avail` of them exist (the rest reads as zeros).
    Plain {
        file: FileId,
        src: Rc<dyn Source>,
        avail: u64,
    },
    Expanding(Box<Parallels>),
    /// Cannot be read: the error says why (a missing file, an unknown storage type).
    Blocked(Error),
}

/// One storage: guest bytes `[start, start + len)`.
struct Part {
    start: u64,
    len: u64,
    data: Data,
}

pub struct Bundle {
    file: FileId,
    desc: BundleDescriptor,
    parts: Vec<Part>,
    size: u64,
    findings: Vec<Finding>,
}

impl Bundle {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Bundle> {
        let src = set.file(file).clone();
        let what = "Parallels disk descriptor";
        let bytes = read_descriptor(&*src, MAX_DESCRIPTOR, what, |name, len| {
            format!("{name} is {len} bytes: too large for a Parallels DiskDescriptor.xml")
        })
        .await?;
        let desc = parse_descriptor(&bytes).map_err(|e| {
            Error::corrupt(format!("the Parallels disk descriptor {}: {e}", src.name()))
        })?;
        let mut findings = vec![Finding::new(
            FindingCode::ConvertBeforeUpload,
            Severity::Warning,
            "Parallels is a legacy format that clouds do not accept: convert it (to qcow2 or raw)",
        )];
        let mut parts = Vec::with_capacity(desc.storages.len());
        for (i, s) in desc.storages.iter().enumerate() {
            let (start, len) = (s.start * 512, (s.end - s.start) * 512);
            let data = Self::open_storage(set, file, i, s, len, &mut findings).await?;
            parts.push(Part { start, len, data });
        }
        Ok(Bundle {
            file,
            size: desc.disk_sectors * 512,
            desc,
            parts,
            findings,
        })
    }

    async fn open_storage(
        set: &ImageSet,
        main: FileId,
        i: usize,
        s: &Storage,
        len: u64,
        findings: &mut Vec<Finding>,
    ) -> Result<Data> {
        if s.images > 1 {
            return Ok(Data::Blocked(Error::unsupported(format!(
                "Parallels storage {i} holds a snapshot chain of {} images, which vmdisk does not read yet",
                s.images
            ))));
        }
        let storage = "Parallels storage";
        let fid = match extent_file(
            set,
            &s.file,
            Some(main),
            storage,
            "DiskDescriptor.xml",
            findings,
        ) {
            Ok(fid) => fid,
            Err(missing) => return Ok(Data::Blocked(missing)),
        };
        let src = set.file(fid).clone();
        let held = match &s.kind {
            StorageKind::Plain => src.len(),
            StorageKind::Compressed => {
                let image = Parallels::open(set, fid)
                    .await
                    .map_err(|e| e.context(format!("Parallels storage {}", src.name())))?;
                let held = image.size;
                findings.extend(
                    image
                        .findings
                        .iter()
                        .filter(|f| f.code != FindingCode::ConvertBeforeUpload)
                        .cloned(),
                );
                if held != len {
                    findings.push(extent_size(storage, src.name(), held, len));
                }
                // prl-xml.txt: a Compressed image's cluster size equals its storage's Blocksize.
                if let Some(b) = s.block_sectors
                    && b.checked_mul(512) != Some(image.cluster_size())
                {
                    findings.push(Finding::new(
                        FindingCode::Corrupt,
                        Severity::Warning,
                        format!(
                            "Parallels storage {} has {}-byte clusters but the descriptor's Blocksize is {b} sectors",
                            shown(src.name()),
                            image.cluster_size()
                        ),
                    ));
                }
                return Ok(Data::Expanding(Box::new(image)));
            }
            StorageKind::Other(t) => {
                return Ok(Data::Blocked(Error::unsupported(format!(
                    "Parallels storage {i} has type {}: only Plain and Compressed are known",
                    shown(t)
                ))));
            }
        };
        if held != len {
            findings.push(extent_size(storage, src.name(), held, len));
        }
        Ok(Data::Plain {
            file: fid,
            src,
            avail: held.min(len),
        })
    }
}

/// Append `[from, to)` of a storage that starts at guest offset `base`.
fn push(out: &mut Vec<Extent>, base: u64, from: u64, to: u64, mapping: Mapping) {
    extents::push(out, base + from, to - from, mapping);
}

#[async_trait(?Send)]
impl Image for Bundle {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Parallels, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        for (p, rs, re) in pieces_reached(&self.parts, |p| (p.start, p.len), start, end) {
            let (held, inner) = match &p.data {
                Data::Blocked(e) => return Err(e.clone()),
                Data::Plain { file, src, avail } => {
                    let mid = re.min(*avail).max(rs);
                    (mid, map_plain(*file, &**src, rs, mid - rs).await)
                }
                Data::Expanding(image) => {
                    let mid = re.min(image.size).max(rs);
                    let inner = if mid > rs {
                        image.map_inside(rs, mid).await?
                    } else {
                        vec![]
                    };
                    (mid, inner)
                }
            };
            for e in inner {
                push(&mut out, p.start, e.start, e.end(), e.mapping);
            }
            push(&mut out, p.start, held, re, Mapping::Zero);
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        let mut m = json!({
            "descriptor-file": true,
            "disk-size-sectors": self.desc.disk_sectors,
            "storage-count": self.desc.storages.len(),
            "storages": self.desc.listed_storages(),
        });
        if let Some(n) = &self.desc.name {
            m["name"] = json!(n);
        }
        if let Some(u) = &self.desc.uid {
            m["uid"] = json!(u);
        }
        m
    }

    fn files(&self) -> Vec<(FileId, &'static str)> {
        let pieces = self.parts.iter().filter_map(|p| match &p.data {
            Data::Plain { file, .. } => Some(*file),
            Data::Expanding(image) => Some(image.file),
            Data::Blocked(_) => None,
        });
        files_with_extents(self.file, pieces)
    }

    fn readable(&self) -> Result<()> {
        for p in &self.parts {
            match &p.data {
                Data::Blocked(e) => return Err(e.clone()),
                Data::Expanding(image) => image.readable()?,
                Data::Plain { .. } => {}
            }
        }
        Ok(())
    }
}
