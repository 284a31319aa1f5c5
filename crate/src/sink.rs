//! Seekable output. qcow2 needs to patch tables after the data, so a sink is random-access.

use crate::error::{Error, Result};
use async_trait::async_trait;

#[async_trait(?Send)]
pub trait Sink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Set the final length (extends with a hole when longer: raw output stays sparse).
    async fn set_len(&mut self, len: u64) -> Result<()>;
    /// Make everything durable / visible; called once after the last write.
    async fn finish(&mut self) -> Result<()>;
}

/// Temporary files for a package member that must be decompressed before a driver can read
/// it at random (a qcow2 inside xz, a gzip-compressed OVF disk). The host removes each one
/// when its source is dropped, whatever happens: natively an unlinked temporary file, in a
/// browser an OPFS file.
#[async_trait(?Send)]
pub trait Scratch {
    async fn create(&self, name: &str) -> Result<Box<dyn ScratchFile>>;
}

/// A scratch file: written once from the start (with holes where data is zero), then read.
pub trait ScratchFile: Sink {
    /// What was written, as a source named `name`.
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn crate::Source>>;
}

/// Scratch space in memory, for tests and small members.
pub struct MemScratch;

#[async_trait(?Send)]
impl Scratch for MemScratch {
    async fn create(&self, _name: &str) -> Result<Box<dyn ScratchFile>> {
        Ok(Box::new(MemSink::default()))
    }
}

impl ScratchFile for MemSink {
    fn into_source(self: Box<Self>, name: &str) -> Result<std::rc::Rc<dyn crate::Source>> {
        Ok(std::rc::Rc::new(crate::source::MemSource::new(
            name, self.data,
        )))
    }
}

/// An in-memory sink, for tests and small outputs.
#[derive(Default)]
pub struct MemSink {
    pub data: Vec<u8>,
}

#[async_trait(?Send)]
impl Sink for MemSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::Io("offset too large".into()))?;
        let end = start + data.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(data);
        Ok(())
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        let len = usize::try_from(len).map_err(|_| Error::Io("length too large".into()))?;
        self.data.resize(len, 0);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
