//! qcow2 output (stub: filled in by the qcow2 writer work).

use super::{WriteOptions, Writer};
use crate::codec::Pool;
use crate::error::{Error, Result};
use crate::sink::Sink;
use async_trait::async_trait;

pub struct Qcow2Writer {
    cluster_size: u64,
}

impl Qcow2Writer {
    pub fn new(opts: &WriteOptions, _virtual_size: u64) -> Result<Self> {
        Ok(Qcow2Writer {
            cluster_size: opts.cluster_size as u64,
        })
    }
}

#[async_trait(?Send)]
impl Writer for Qcow2Writer {
    fn granularity(&self) -> u64 {
        self.cluster_size
    }
    async fn write(
        &mut self,
        _sink: &mut dyn Sink,
        _pool: &dyn Pool,
        _offset: u64,
        _data: &[u8],
    ) -> Result<()> {
        Err(Error::Unsupported(
            "qcow2 output is not implemented yet".into(),
        ))
    }
    async fn finish(&mut self, _sink: &mut dyn Sink) -> Result<()> {
        Err(Error::Unsupported(
            "qcow2 output is not implemented yet".into(),
        ))
    }
}
