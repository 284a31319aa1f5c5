//! qcow2 reader (stub: filled in by the qcow2 reader work).

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::image::Image;
use crate::probe::Format;
use crate::source::ImageSet;
use async_trait::async_trait;

pub struct Qcow2 {
    file: FileId,
    size: u64,
}

impl Qcow2 {
    pub async fn open(set: &ImageSet, file: FileId, _depth: usize) -> Result<Self> {
        let mut h = [0u8; 32];
        crate::source::read_exact(&**set.file(file), 0, &mut h, "qcow2 header").await?;
        Ok(Qcow2 {
            file,
            size: u64::from_be_bytes(h[24..32].try_into().unwrap()),
        })
    }
}

#[async_trait(?Send)]
impl Image for Qcow2 {
    fn format(&self) -> Format {
        Format::Qcow2
    }
    fn virtual_size(&self) -> u64 {
        self.size
    }
    async fn map(&self, _start: u64, _len: u64) -> Result<Vec<Extent>> {
        Err(Error::Unsupported(
            "qcow2 reading is not implemented yet".into(),
        ))
    }
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn files(&self) -> Vec<(FileId, &'static str)> {
        vec![(self.file, "image")]
    }
}
