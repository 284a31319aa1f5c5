//! Compression on every core: a [`Pool`] that hands parts of each batch to sub-workers, each a
//! wasm instance of its own. Memory is not shared: a part travels as one packed buffer (all its
//! chunks back to back plus their lengths), transferred, not copied, between the workers.
//!
//! The JS side (`www/worker.js`) provides `{ workers, dispatch(message) -> Promise<reply> }`;
//! a sub-worker (`www/compress-worker.js`) answers a message with [`compress_batch`] or
//! [`decompress_batch`]. Messages:
//! - `{op: "compress", codec, limit, data: Uint8Array, lens: Uint32Array}` ->
//!   `{data: Uint8Array, lens: Int32Array}` (length -1: not compressible below `limit`);
//! - `{op: "decompress", codecs: Uint8Array, data, lens: Uint32Array, outLens: Uint32Array}` ->
//!   `{data: Uint8Array}` (the outputs back to back).

use super::{error_from_js, set, to_js_error};
use crate::codec::{self, Codec, Compressed, Decompress, Pool, Serial};
use crate::error::{Error, Result};
use async_trait::async_trait;
use js_sys::{Function, Int32Array, Object, Promise, Reflect, Uint8Array, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Batches smaller than this run inline: posting them costs more than it saves.
const MIN_PARALLEL_BYTES: usize = 256 << 10;

/// Every codec a message names: by this name (`compress`) or by its index here (`decompress`,
/// one byte a job). The worker passes both through unread.
const CODECS: [(Codec, &str); 4] = [
    (Codec::Deflate, "deflate"),
    (Codec::Zlib, "zlib"),
    (Codec::Zstd, "zstd"),
    (Codec::Bzip2, "bzip2"),
];

fn codec_id(c: Codec) -> u8 {
    CODECS
        .iter()
        .position(|&(k, _)| k == c)
        .expect("every codec is listed") as u8
}

pub fn codec_name(c: Codec) -> &'static str {
    CODECS[usize::from(codec_id(c))].1
}

pub fn codec_from_name(name: &str) -> Result<Codec> {
    CODECS
        .iter()
        .find(|&&(_, n)| n == name)
        .map(|&(c, _)| c)
        .ok_or_else(|| Error::invalid(format!("unknown codec {name:?}")))
}

fn codec_from_id(id: u8) -> Result<Codec> {
    CODECS
        .get(usize::from(id))
        .map(|&(c, _)| c)
        .ok_or_else(|| Error::invalid(format!("unknown codec id {id}")))
}

/// Sub-workers reached through a JS `dispatch` function.
pub struct WorkerPool {
    dispatch: Function,
    workers: usize,
}

impl WorkerPool {
    /// `{workers: number, dispatch: function}`, or None for null/undefined (compress inline).
    pub fn from_js(value: &JsValue) -> Result<Option<WorkerPool>> {
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        let get = |key: &str| Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED);
        let dispatch = get("dispatch")
            .dyn_into::<Function>()
            .map_err(|_| Error::invalid("the pool has no dispatch function"))?;
        let workers = get("workers").as_f64().unwrap_or(1.0).max(1.0) as usize;
        Ok(Some(WorkerPool { dispatch, workers }))
    }

    /// Split `n` jobs into at most `workers` contiguous, near-equal parts.
    fn parts(&self, n: usize) -> Vec<std::ops::Range<usize>> {
        let k = self.workers.min(n).max(1);
        (0..k).map(|i| i * n / k..(i + 1) * n / k).collect()
    }

    fn send(&self, msg: &Object) -> Result<JsFuture> {
        let p = self
            .dispatch
            .call1(&JsValue::NULL, msg)
            .map_err(|e| error_from_js(&e))?;
        let p = p
            .dyn_into::<Promise>()
            .map_err(|_| Error::io("the pool's dispatch did not return a promise"))?;
        Ok(JsFuture::from(p))
    }
}

/// All `chunks` back to back in one JS buffer, and their lengths.
fn pack<'a>(chunks: impl Iterator<Item = &'a [u8]> + Clone) -> (Uint8Array, Uint32Array) {
    let total: usize = chunks.clone().map(<[u8]>::len).sum();
    let data = Uint8Array::new_with_length(total as u32);
    let mut lens = Vec::new();
    let mut at = 0u32;
    for c in chunks {
        let len = c.len() as u32;
        data.subarray(at, at + len).copy_from(c);
        lens.push(len);
        at += len;
    }
    (data, Uint32Array::from(&lens[..]))
}

fn reply_field<T: JsCast>(reply: &JsValue, key: &str) -> Result<T> {
    Reflect::get(reply, &key.into())
        .ok()
        .and_then(|v| v.dyn_into::<T>().ok())
        .ok_or_else(|| Error::io(format!("a compression worker's reply has no {key}")))
}

#[async_trait(?Send)]
impl Pool for WorkerPool {
    async fn compress_all(&self, codec: Codec, inputs: &[&[u8]], limit: usize) -> Compressed {
        let bytes: usize = inputs.iter().map(|i| i.len()).sum();
        if self.workers < 2 || bytes < MIN_PARALLEL_BYTES {
            return Serial.compress_all(codec, inputs, limit).await;
        }
        // Post every part before waiting for any.
        let mut pending = vec![];
        for range in self.parts(inputs.len()) {
            let (data, lens) = pack(inputs[range.clone()].iter().copied());
            let msg = Object::new();
            set(&msg, "op", &"compress".into());
            set(&msg, "codec", &codec_name(codec).into());
            set(&msg, "limit", &(limit as f64).into());
            set(&msg, "data", &data);
            set(&msg, "lens", &lens);
            pending.push((range, self.send(&msg)?));
        }
        let mut out = Vec::with_capacity(inputs.len());
        for (range, reply) in pending {
            let reply = reply.await.map_err(|e| error_from_js(&e))?;
            let data: Uint8Array = reply_field(&reply, "data")?;
            let lens: Int32Array = reply_field(&reply, "lens")?;
            if lens.length() as usize != range.len() {
                return Err(Error::io("a compression worker lost results"));
            }
            let mut at = 0u32;
            for len in lens.to_vec() {
                if len < 0 {
                    out.push(None);
                    continue;
                }
                let end = at + len as u32;
                if end > data.length() {
                    return Err(Error::io("a compression worker's reply is short"));
                }
                out.push(Some(data.subarray(at, end).to_vec()));
                at = end;
            }
        }
        Ok(out)
    }

    async fn decompress_all(&self, jobs: &mut [Decompress<'_>]) -> Result<()> {
        let bytes: usize = jobs.iter().map(|j| j.2.len()).sum();
        if self.workers < 2 || bytes < MIN_PARALLEL_BYTES {
            return Serial.decompress_all(jobs).await;
        }
        let mut pending = vec![];
        for range in self.parts(jobs.len()) {
            let part = &jobs[range.clone()];
            let (data, lens) = pack(part.iter().map(|j| j.1));
            let codecs: Vec<u8> = part.iter().map(|j| codec_id(j.0)).collect();
            let out_lens: Vec<u32> = part.iter().map(|j| j.2.len() as u32).collect();
            let msg = Object::new();
            set(&msg, "op", &"decompress".into());
            set(&msg, "codecs", &Uint8Array::from(&codecs[..]));
            set(&msg, "data", &data);
            set(&msg, "lens", &lens);
            set(&msg, "outLens", &Uint32Array::from(&out_lens[..]));
            pending.push((range, self.send(&msg)?));
        }
        for (range, reply) in pending {
            let reply = reply.await.map_err(|e| error_from_js(&e))?;
            let data: Uint8Array = reply_field(&reply, "data")?;
            let want: usize = jobs[range.clone()].iter().map(|j| j.2.len()).sum();
            if data.length() as usize != want {
                return Err(Error::io("a decompression worker's reply is short"));
            }
            let mut at = 0u32;
            for job in &mut jobs[range] {
                let end = at + job.2.len() as u32;
                data.subarray(at, end).copy_to(job.2);
                at = end;
            }
        }
        Ok(())
    }
}

/// Split a packed buffer into its chunks, checking the lengths add up.
fn unpack<'a>(data: &'a [u8], lens: &[u32]) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0usize;
    for &len in lens {
        let end = at
            .checked_add(len as usize)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| Error::invalid("batch lengths exceed its data"))?;
        out.push(&data[at..end]);
        at = end;
    }
    Ok(out)
}

/// A sub-worker's half of a compress message: every chunk compressed with `codec`, or -1 in
/// `lens` when it does not come out smaller than `limit`.
#[wasm_bindgen]
pub fn compress_batch(
    codec: &str,
    limit: u32,
    data: &[u8],
    lens: &[u32],
) -> std::result::Result<Object, JsValue> {
    super::hook();
    let run = || -> Result<Object> {
        let codec = codec_from_name(codec)?;
        let mut packed = vec![];
        let mut out_lens = vec![];
        for chunk in unpack(data, lens)? {
            match codec::compress(codec, chunk, limit as usize)? {
                Some(c) => {
                    out_lens.push(c.len() as i32);
                    packed.extend_from_slice(&c);
                }
                None => out_lens.push(-1),
            }
        }
        let reply = Object::new();
        set(&reply, "data", &Uint8Array::from(&packed[..]));
        set(&reply, "lens", &Int32Array::from(&out_lens[..]));
        Ok(reply)
    };
    run().map_err(|e| to_js_error(&e))
}

/// A sub-worker's half of a decompress message: the outputs back to back.
#[wasm_bindgen]
pub fn decompress_batch(
    codecs: &[u8],
    data: &[u8],
    lens: &[u32],
    out_lens: &[u32],
) -> std::result::Result<Uint8Array, JsValue> {
    super::hook();
    let run = || -> Result<Uint8Array> {
        let inputs = unpack(data, lens)?;
        if codecs.len() != inputs.len() || out_lens.len() != inputs.len() {
            return Err(Error::invalid("batch arrays differ in length"));
        }
        let total: usize = out_lens.iter().map(|&l| l as usize).sum();
        let mut out = vec![0u8; total];
        let mut at = 0;
        for ((&c, input), &len) in codecs.iter().zip(inputs).zip(out_lens) {
            let end = at + len as usize;
            codec::decompress(codec_from_id(c)?, input, &mut out[at..end])?;
            at = end;
        }
        Ok(Uint8Array::from(&out[..]))
    };
    run().map_err(|e| to_js_error(&e))
}
