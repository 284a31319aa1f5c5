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
