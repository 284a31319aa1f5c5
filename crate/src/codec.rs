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
    /// One bzip2 stream (DMG `UDBZ` chunks); read, never written.
    Bzip2,
}

/// Inflate `input` into exactly `out.len()` bytes. Trailing bytes after the stream (sector
/// padding) are ignored; a stream that ends early or is damaged is an error. Returns how many
/// input bytes the stream used (where a compressed unit really ends).
pub fn decompress(codec: Codec, input: &[u8], out: &mut [u8]) -> Result<usize> {
    match codec {
        Codec::Deflate | Codec::Zlib => inflate(codec == Codec::Zlib, input, out),
        Codec::Zstd => unzstd(input, out),
        Codec::Bzip2 => unbzip2(input, out),
    }
}

fn inflate(zlib_header: bool, input: &[u8], out: &mut [u8]) -> Result<usize> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut d = Decompress::new(zlib_header);
    drive(out.len(), "compressed", |i, o| {
        let status = d
            .decompress(&input[i..], &mut out[o..], FlushDecompress::Finish)
            .map_err(|e| Error::corrupt(format!("compressed data does not inflate: {e}")))?;
        let at = (d.total_in() as usize, d.total_out() as usize);
        Ok((status == Status::StreamEnd, at))
    })
}

/// One bzip2 stream into exactly `out.len()` bytes, as qemu `block/dmg.c` reads a UDBZ chunk:
/// the stream must fill the chunk; bytes after its end are ignored.
fn unbzip2(input: &[u8], out: &mut [u8]) -> Result<usize> {
    use bzip2::{Decompress, Status};
    let mut d = Decompress::new(false);
    drive(out.len(), "bzip2", |i, o| {
        let status = d
            .decompress(&input[i..], &mut out[o..])
            .map_err(|e| Error::corrupt(format!("bzip2 data does not decompress: {e}")))?;
        let at = (d.total_in() as usize, d.total_out() as usize);
        Ok((status == Status::StreamEnd, at))
    })
}

/// Run a streaming decoder until its stream ends, the output (`out_len` bytes) is full, or a
/// step makes no progress (the input is spent); then the output must be full. `step(in, out)`
/// decodes from those positions and returns whether the stream ended and the new positions.
/// Returns the input bytes used.
fn drive(
    out_len: usize,
    what: &str,
    mut step: impl FnMut(usize, usize) -> Result<(bool, (usize, usize))>,
) -> Result<usize> {
    let mut at = (0, 0);
    loop {
        let (ended, next) = step(at.0, at.1)?;
        let stuck = next == at;
        at = next;
        if ended || at.1 == out_len || stuck {
            break;
        }
    }
    if at.1 < out_len {
        return Err(Error::corrupt(format!(
            "{what} data decompresses to {} bytes, {out_len} expected",
            at.1
        )));
    }
    Ok(at.0)
}

/// The C library decodes (~15x faster than ruzstd, in wasm too). Like qemu, it reads frame
/// after frame until `out` is full; bytes after that are ignored.
fn unzstd(input: &[u8], out: &mut [u8]) -> Result<usize> {
    use std::cell::RefCell;
    use zstd::stream::raw::{Decoder, Operation};
    thread_local! {
        static DCTX: RefCell<Option<Decoder<'static>>> = const { RefCell::new(None) };
    }
    let bad = |e: std::io::Error| Error::corrupt(format!("zstd data does not decompress: {e}"));
    DCTX.with(|cell| {
        let mut cell = cell.borrow_mut();
        let d = match &mut *cell {
            Some(d) => d,
            none => none.insert(Decoder::new().map_err(bad)?),
        };
        d.reinit().map_err(bad)?;
        let (mut read, mut filled) = (0, 0);
        while filled < out.len() {
            let status = d
                .run_on_buffers(&input[read..], &mut out[filled..])
                .map_err(bad)?;
            read += status.bytes_read;
            filled += status.bytes_written;
            if status.bytes_read == 0 && status.bytes_written == 0 {
                break;
            }
        }
        if filled < out.len() {
            return Err(Error::corrupt(format!(
                "zstd data decompresses to {filled} bytes, {} expected",
                out.len()
            )));
        }
        Ok(read)
    })
}

/// Deflate level for qcow2 clusters, chosen by measurement: on a disk of half text-like, half
/// random data (1.5 GiB), level 2 spends ~45% less CPU than zlib's default level 6 with
/// output ~5% larger (level 1 is ~15% larger, 3 ~3%, 4 ~1%, 6 the same as qemu-img's).
pub const DEFLATE_LEVEL: u32 = 2;

/// qemu inflates qcow2 clusters with a 4 KiB window (`windowBits` -12): deflating with a larger
/// window would make streams it cannot read.
pub const DEFLATE_WINDOW_BITS: u8 = 12;

/// Level 1, not qemu's 3: on the benchmark disk it is ~12% faster for output 1.3% larger
/// (999 against 986 MiB), well inside the 10% size budget.
pub const ZSTD_LEVEL: i32 = 1;

/// Compress `input` for a compressed cluster. Returns None when the result would not be smaller
/// than `limit` bytes (the cluster is then stored uncompressed, as qemu does).
///
/// [`Codec::Deflate`] is raw deflate with a 4 KiB window (qcow2); [`Codec::Zlib`] is a zlib
/// stream with the full window (VMDK grains); [`Codec::Zstd`] is one zstd frame.
pub fn compress(codec: Codec, input: &[u8], limit: usize) -> Result<Option<Vec<u8>>> {
    if limit <= 1 {
        return Ok(None);
    }
    let out = match codec {
        Codec::Deflate => deflate(false, input)?,
        Codec::Zlib => deflate(true, input)?,
        // zstd stops with an error as soon as the frame outgrows `limit` bytes.
        Codec::Zstd => zstd(input, limit)?,
        Codec::Bzip2 => {
            return Err(Error::unsupported(
                "vmdisk reads bzip2 but does not write it",
            ));
        }
    };
    Ok(out.filter(|o| o.len() < limit))
}

/// Deflate all of `input`. The compressor of each kind is kept per thread and reset, not
/// rebuilt, for every cluster. The output buffer is large enough for any stream to finish
/// (incompressible input costs 5 bytes per 16 KiB stored block): zlib-rs 0.6 can panic when a
/// compressor is reset after a stream abandoned for want of room.
fn deflate(zlib_header: bool, input: &[u8]) -> Result<Option<Vec<u8>>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    use std::cell::RefCell;
    thread_local! {
        static RAW: RefCell<Option<Compress>> = const { RefCell::new(None) };
        static ZLIB: RefCell<Option<Compress>> = const { RefCell::new(None) };
    }
    let slot = if zlib_header { &ZLIB } else { &RAW };
    slot.with(|cell| {
        let mut cell = cell.borrow_mut();
        let c = cell.get_or_insert_with(|| {
            if zlib_header {
                Compress::new(Compression::default(), true)
            } else {
                Compress::new_with_window_bits(
                    Compression::new(DEFLATE_LEVEL),
                    false,
                    DEFLATE_WINDOW_BITS,
                )
            }
        });
        c.reset();
        let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 64);
        loop {
            let before = (c.total_in(), c.total_out());
            let status = c
                .compress_vec(
                    &input[c.total_in() as usize..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .map_err(|e| Error::io(format!("deflate failed: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(Some(out));
            }
            if (c.total_in(), c.total_out()) == before {
                // Cannot happen with that much room; never reuse an unfinished compressor.
                *cell = None;
                return Ok(None);
            }
        }
    })
}

/// One zstd frame of at most `cap` bytes; None when it does not fit.
fn zstd(input: &[u8], cap: usize) -> Result<Option<Vec<u8>>> {
    use std::cell::RefCell;
    thread_local! {
        static CCTX: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    }
    CCTX.with(|cell| {
        let mut cell = cell.borrow_mut();
        let c = match &mut *cell {
            Some(c) => c,
            none => none.insert(
                zstd::bulk::Compressor::new(ZSTD_LEVEL)
                    .map_err(|e| Error::io(format!("zstd setup failed: {e}")))?,
            ),
        };
        let mut out = Vec::with_capacity(cap);
        // An error here means the frame does not fit in `cap` bytes.
        Ok(c.compress_to_buffer(input, &mut out).ok().map(|_| out))
    })
}

/// What [`Pool::compress_all`] gives back: each input compressed, or None where it did not
/// come out shorter than the limit.
pub type Compressed = Result<Vec<Option<Vec<u8>>>>;
/// One [`Pool::decompress_all`] job: `(codec, input, output)`.
pub type Decompress<'a> = (Codec, &'a [u8], &'a mut [u8]);

/// Where compression work runs. The core calls it with a batch at a time; the host decides how
/// to spread the batch (threads natively, Web Workers in the browser). [`Serial`] runs inline.
#[async_trait::async_trait(?Send)]
pub trait Pool {
    /// [`compress`] each input.
    async fn compress_all(&self, codec: Codec, inputs: &[&[u8]], limit: usize) -> Compressed;
    /// [`decompress`] each `(codec, input, output)` job.
    async fn decompress_all(&self, jobs: &mut [Decompress<'_>]) -> Result<()>;
}

/// Runs every job in the calling thread.
pub struct Serial;

#[async_trait::async_trait(?Send)]
impl Pool for Serial {
    async fn compress_all(&self, codec: Codec, inputs: &[&[u8]], limit: usize) -> Compressed {
        inputs.iter().map(|i| compress(codec, i, limit)).collect()
    }
    async fn decompress_all(&self, jobs: &mut [Decompress<'_>]) -> Result<()> {
        jobs.iter_mut()
            .try_for_each(|(c, i, o)| decompress(*c, i, o).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        let words: [&[u8]; 5] = [b"disk ", b"image ", b"cluster ", b"the ", b"zero\n"];
        let mut out = vec![];
        let mut i = 7usize;
        while out.len() < len {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(i >> 33) % words.len()]);
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn round_trips_every_codec() {
        let input = text(65536);
        for codec in [Codec::Deflate, Codec::Zlib, Codec::Zstd] {
            let c = compress(codec, &input, input.len())
                .unwrap()
                .expect("text compresses");
            assert!(c.len() < input.len() / 2, "{codec:?}: {}", c.len());
            let mut padded = c.clone();
            padded.extend_from_slice(&[0; 700]); // sector padding after the stream
            let mut out = vec![0; input.len()];
            decompress(codec, &padded, &mut out).unwrap();
            assert_eq!(out, input, "{codec:?}");
        }
    }

    #[test]
    fn incompressible_input_is_refused() {
        let input = noise(65536);
        for codec in [Codec::Deflate, Codec::Zlib, Codec::Zstd] {
            assert!(
                compress(codec, &input, input.len()).unwrap().is_none(),
                "{codec:?}"
            );
        }
        // The limit is strict: a result must be smaller than it.
        let small = text(4096);
        let len = compress(Codec::Deflate, &small, 4096)
            .unwrap()
            .unwrap()
            .len();
        assert!(compress(Codec::Deflate, &small, len).unwrap().is_none());
        assert_eq!(
            compress(Codec::Deflate, &small, len + 1)
                .unwrap()
                .map(|v| v.len()),
            Some(len)
        );
    }

    /// zlib-rs 0.6 panicked at the 128th small incompressible cluster when its compressor was
    /// reset after streams abandoned for want of output room.
    #[test]
    fn many_small_incompressible_clusters() {
        for chunk in noise(1 << 20).chunks(512) {
            assert!(compress(Codec::Deflate, chunk, 512).unwrap().is_none());
        }
    }

    /// qemu deflates with a 4 KiB window; so do we (inflaters resolve far matches from their
    /// output buffer, so only the size shows it: a copy 12000 bytes back must not be found).
    #[test]
    fn deflate_window_is_4k() {
        let all = noise(12000);
        let mut input = all.clone();
        input.extend_from_slice(&all[..4000]);
        let c = compress(Codec::Deflate, &input, 2 * input.len())
            .unwrap()
            .unwrap();
        assert!(
            c.len() > 15000,
            "a match beyond 4 KiB was used: {}",
            c.len()
        );
        let mut out = vec![0; input.len()];
        decompress(Codec::Deflate, &c, &mut out).unwrap();
        assert_eq!(out, input);
    }

    /// A zstd cluster decodes followed by the next cluster's bytes; cut short or damaged, it
    /// fails without a panic; two frames back to back fill one cluster, as qemu accepts.
    #[test]
    fn zstd_frames_decode_like_qemu() {
        let input = text(65536);
        let frame = compress(Codec::Zstd, &input, input.len()).unwrap().unwrap();
        let mut padded = frame.clone();
        padded.extend_from_slice(&noise(300));
        let mut out = vec![0; input.len()];
        unzstd(&padded, &mut out).unwrap();
        assert_eq!(out, input);
        let mut out = vec![0; input.len()];
        assert!(unzstd(&frame[..frame.len() / 2], &mut out).is_err());
        assert!(unzstd(&noise(1000), &mut out).is_err());
        let (a, b) = input.split_at(20000);
        let mut two = compress(Codec::Zstd, a, a.len()).unwrap().unwrap();
        two.extend(compress(Codec::Zstd, b, b.len()).unwrap().unwrap());
        let mut out = vec![0; input.len()];
        unzstd(&two, &mut out).unwrap();
        assert_eq!(out, input);
    }

    /// A bzip2 chunk decodes followed by other bytes; a stream that is cut, damaged or shorter
    /// than its chunk fails without a panic. bzip2 is never written.
    #[test]
    fn bzip2_streams_decode_like_qemu() {
        use std::io::Write;
        let input = text(200_000);
        let mut e = bzip2::write::BzEncoder::new(vec![], bzip2::Compression::best());
        e.write_all(&input).unwrap();
        let stream = e.finish().unwrap();
        let mut padded = stream.clone();
        padded.extend_from_slice(&noise(300));
        let mut out = vec![0; input.len()];
        decompress(Codec::Bzip2, &padded, &mut out).unwrap();
        assert_eq!(out, input);
        assert!(decompress(Codec::Bzip2, &stream[..stream.len() / 2], &mut out).is_err());
        assert!(decompress(Codec::Bzip2, &noise(1000), &mut out).is_err());
        let mut longer = vec![0; input.len() + 512];
        assert!(decompress(Codec::Bzip2, &stream, &mut longer).is_err());
        assert!(compress(Codec::Bzip2, &input, input.len()).is_err());
    }
}
