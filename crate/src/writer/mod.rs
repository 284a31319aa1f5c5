//! Output formats. The copy engine hands a writer the guest data in increasing order; a writer
//! lays it out in its format through a [`Sink`].

pub mod qcow2;
pub mod raw;

use crate::codec::{Codec, Pool};
use crate::error::{Error, Result};
use crate::sink::{Chunk, Sink};
use async_trait::async_trait;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Raw,
    Qcow2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qcow2Compat {
    /// qcow2 version 2.
    V0_10,
    /// qcow2 version 3.
    V1_1,
}

#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub format: OutputFormat,
    /// qcow2 only: compress every cluster with this codec (Deflate or Zstd).
    pub compression: Option<Codec>,
    /// qcow2 only: a power of two from 512 to 2 MiB.
    pub cluster_size: u32,
    pub compat: Qcow2Compat,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: OutputFormat::Qcow2,
            compression: None,
            cluster_size: 65536,
            compat: Qcow2Compat::V1_1,
        }
    }
}

impl WriteOptions {
    /// Reject combinations no reader would accept, before anything is written.
    pub fn validate(&self) -> Result<()> {
        let cs = self.cluster_size;
        if self.format == OutputFormat::Qcow2
            && (!cs.is_power_of_two() || !(512..=2 << 20).contains(&cs))
        {
            return Err(Error::invalid(format!(
                "cluster size {cs} is not a power of two from 512 to 2 MiB"
            )));
        }
        match (self.format, self.compression, self.compat) {
            (OutputFormat::Raw, Some(_), _) => {
                Err(Error::invalid("raw output cannot be compressed"))
            }
            (_, Some(Codec::Zstd), Qcow2Compat::V0_10) => {
                Err(Error::invalid("zstd compression needs qcow2 compat 1.1"))
            }
            (_, Some(Codec::Zlib), _) => {
                Err(Error::invalid("qcow2 compresses with deflate or zstd"))
            }
            _ => Ok(()),
        }
    }
}

/// Lays out guest data in an output format.
#[async_trait(?Send)]
pub trait Writer {
    /// Every `write` offset and length is a multiple of this (except a final tail that ends at
    /// the virtual size); the engine pads with zeros to get there.
    fn granularity(&self) -> u64;
    /// Whether the writer looks at the guest bytes it passes on unchanged. One that does not
    /// (raw output) gets copied runs unread when the sink composes its output of references.
    fn reads_data(&self) -> bool {
        true
    }
    /// Guest bytes `data` at guest `offset`, in increasing offset order, never overlapping.
    /// Ranges never written read as zeros; a writer also skips all-zero blocks it is given.
    async fn write(
        &mut self,
        sink: &mut dyn Sink,
        pool: &dyn Pool,
        offset: u64,
        data: Chunk<'_>,
    ) -> Result<()>;
    /// Write the remaining metadata and set the file's final length.
    async fn finish(&mut self, sink: &mut dyn Sink) -> Result<()>;
}

pub fn new_writer(opts: &WriteOptions, virtual_size: u64) -> Result<Box<dyn Writer>> {
    opts.validate()?;
    Ok(match opts.format {
        OutputFormat::Raw => Box::new(raw::RawWriter::new(virtual_size)),
        OutputFormat::Qcow2 => Box::new(qcow2::Qcow2Writer::new(opts, virtual_size)?),
    })
}
