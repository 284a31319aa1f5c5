//! Raw content (a plain disk, an ISO, a bare filesystem, a kernel): the file is the guest disk.

use crate::error::Result;
use crate::extent::{Extent, FileId, Mapping};
use crate::image::Image;
use crate::probe::Format;
use async_trait::async_trait;

pub struct RawImage {
    format: Format,
    file: FileId,
    size: u64,
}

impl RawImage {
    pub fn new(format: Format, file: FileId, size: u64) -> Self {
        RawImage { format, file, size }
    }
}

#[async_trait(?Send)]
impl Image for RawImage {
    fn format(&self) -> Format {
        self.format
    }
    fn virtual_size(&self) -> u64 {
        self.size
    }
    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(vec![Extent {
            start,
            len,
            mapping: Mapping::Data {
                file: self.file,
                offset: start,
            },
        }])
    }
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn files(&self) -> Vec<(FileId, &'static str)> {
        vec![(self.file, "image")]
    }
}
