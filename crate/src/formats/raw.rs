//! Raw content (a plain disk, an ISO, a bare filesystem, a kernel): the file is the guest disk.

use super::common::extents::map_plain;
use crate::error::Result;
use crate::extent::{Extent, FileId};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Basics, Image};
use crate::source::Source;
use async_trait::async_trait;
use std::rc::Rc;

pub struct RawImage {
    format: Format,
    file: FileId,
    source: Rc<dyn Source>,
}

impl RawImage {
    pub fn new(format: Format, file: FileId, source: Rc<dyn Source>) -> Self {
        RawImage {
            format,
            file,
            source,
        }
    }
}

#[async_trait(?Send)]
impl Image for RawImage {
    fn basics(&self) -> Basics<'_> {
        Basics::new(self.format, self.source.len(), self.file, &[])
    }
    /// A kernel maps, though it never converts (see `readable`): no up-front check.
    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(map_plain(self.file, &*self.source, start, len).await)
    }
    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        self.map(start, end - start).await
    }

    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// A kernel or a ramdisk is uploaded as it is, never converted into a disk.
    fn readable(&self) -> Result<()> {
        match not_a_disk(self.format) {
            Some(why) => Err(crate::Error::unsupported(why)),
            None => Ok(()),
        }
    }
    fn findings(&self) -> Vec<crate::Finding> {
        not_a_disk(self.format)
            .map(|why| crate::Finding::new(FindingCode::NotADisk, crate::Severity::Info, why))
            .into_iter()
            .collect()
    }
}

/// Why a boot file is not a disk, with what to do instead.
fn not_a_disk(format: Format) -> Option<String> {
    let (what, glance) = match format {
        Format::Aki => ("a kernel (AKI)", "aki"),
        Format::Ari => ("a ramdisk (ARI)", "ari"),
        _ => return None,
    };
    Some(format!(
        "this is {what}, not a disk: it is not converted; upload it as it is with disk_format={glance} container_format={glance}"
    ))
}
