//! Compression codecs of compressed clusters and grains.

use crate::error::{Error, Result};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Raw deflate without zlib header (qcow2, qcow v1): `window_bits` -12 in qemu terms.
    Deflate,
    /// Deflate inside a zlib wrapper (VMDK streamOptimized grains).
    Zlib,
    /// Zstandard frames (qcow2 `compression_type = zstd`).
    Zstd,
}

/// Inflate `input` into exactly `out.len()` bytes. Trailing bytes after the stream (sector
/// padding) are ignored; a stream that ends early or is damaged is an error.
pub fn decompress(codec: Codec, input: &[u8], out: &mut [u8]) -> Result<()> {
    match codec {
        Codec::Deflate | Codec::Zlib => inflate(codec == Codec::Zlib, input, out),
        Codec::Zstd => unzstd(input, out),
    }
}

fn inflate(zlib_header: bool, input: &[u8], out: &mut [u8]) -> Result<()> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut d = Decompress::new(zlib_header);
    loop {
        let (i, o) = (d.total_in() as usize, d.total_out() as usize);
        let status = d
            .decompress(&input[i..], &mut out[o..], FlushDecompress::Finish)
            .map_err(|e| Error::Corrupt(format!("compressed data does not inflate: {e}")))?;
        let filled = d.total_out() as usize == out.len();
        match status {
            Status::StreamEnd => break,
            _ if filled => break,
            Status::BufError if d.total_in() as usize == input.len() => break,
            _ if d.total_in() as usize == i && d.total_out() as usize == o => break,
            _ => {}
        }
    }
    if (d.total_out() as usize) < out.len() {
        return Err(Error::Corrupt(format!(
            "compressed data inflates to {} bytes, {} expected",
            d.total_out(),
            out.len()
        )));
    }
    Ok(())
}

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<()> {
    use std::io::Read;
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(input)
        .map_err(|e| Error::Corrupt(format!("bad zstd frame: {e}")))?;
    let mut filled = 0;
    while filled < out.len() {
        let n = decoder
            .read(&mut out[filled..])
            .map_err(|e| Error::Corrupt(format!("zstd data does not decompress: {e}")))?;
        if n == 0 {
            return Err(Error::Corrupt(format!(
                "zstd data decompresses to {filled} bytes, {} expected",
                out.len()
            )));
        }
        filled += n;
    }
    Ok(())
}

/// Compress `input` for a compressed cluster. Returns None when the result would not be smaller
/// than `limit` bytes (the cluster is then stored uncompressed, as qemu does).
pub fn compress(codec: Codec, input: &[u8], limit: usize) -> Result<Option<Vec<u8>>> {
    let _ = (codec, input, limit);
    Err(Error::Unsupported(
        "compression is not implemented yet".into(),
    ))
}

/// Where compression work runs. The core calls it with a batch at a time; the host decides how
/// to spread the batch (threads natively, Web Workers in the browser). [`Serial`] runs inline.
#[async_trait::async_trait(?Send)]
pub trait Pool {
    /// [`compress`] each input.
    async fn compress_all(
        &self,
        codec: Codec,
        inputs: &[&[u8]],
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>>;
    /// [`decompress`] each `(codec, input, output)` job.
    async fn decompress_all(&self, jobs: &mut [(Codec, &[u8], &mut [u8])]) -> Result<()>;
}

/// Runs every job in the calling thread.
pub struct Serial;

#[async_trait::async_trait(?Send)]
impl Pool for Serial {
    async fn compress_all(
        &self,
        codec: Codec,
        inputs: &[&[u8]],
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        inputs.iter().map(|i| compress(codec, i, limit)).collect()
    }
    async fn decompress_all(&self, jobs: &mut [(Codec, &[u8], &mut [u8])]) -> Result<()> {
        jobs.iter_mut()
            .try_for_each(|(c, i, o)| decompress(*c, i, o))
    }
}
