//! Compressed streams (gzip, xz, zstd): a decompressed view of a file as a [`Source`].
//!
//! [`Stream`] decodes front to back and serves reads at or after its position; the start of
//! the stream and the last bytes decoded are kept, so detection's reads and a conversion that
//! starts where detection looked cost one pass. A read further back starts decoding afresh.
//! Decoders pull their input with [`Source::read_blocking`], and every decoder's memory is
//! capped (xz dictionaries, zstd windows), so a hostile header cannot make it allocate.
//!
//! Specs: RFC 1952 (gzip, members may be concatenated), the .xz file format 1.2 (streams,
//! index, padding), RFC 8878 (zstd frames, skippable frames).

use crate::error::{Error, Result};
use crate::source::Source;
use async_trait::async_trait;
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// The compression whose magic starts `src`.
    pub async fn of_source(src: &dyn Source) -> Result<Option<Compression>> {
        let mut head = [0u8; 6];
        let n = src.len().min(head.len() as u64) as usize;
        src.read_at(0, &mut head[..n]).await?;
        Ok(Compression::of(&head[..n]))
    }

    /// The compression whose magic starts `head`.
    pub fn of(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b, 8]) {
            Some(Compression::Gzip)
        } else if head.starts_with(b"\xfd7zXZ\0") {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// The largest xz dictionary and zstd window decoded: `xz -9` and `zstd -19` use 64 MiB and
/// 8 MiB, `zstd --long` 128 MiB. Larger ones are refused before anything is allocated.
pub const MAX_WINDOW: u64 = 128 << 20;
/// Decoded bytes kept from the start of the stream (detection's head, and more).
const HEAD_KEEP: usize = 1 << 20;
/// The most recently decoded bytes kept, for a read a little behind the position.
const BACK_KEEP: usize = 1 << 20;
/// Bytes decoded between the host's turns while measuring.
const MEASURE_STEP: usize = 8 << 20;
/// Input read per call of the input reader.
const INPUT_CHUNK: usize = 1 << 20;

/// Reads `src` from an offset, synchronously.
struct SourceReader {
    src: Rc<dyn Source>,
    pos: u64,
}

impl Read for SourceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.src.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src
            .read_blocking(self.pos, &mut buf[..n])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

type Input = BufReader<SourceReader>;

/// A decoder of `input` (a whole compressed file, or the start of one: its error at the end of
/// a cut input then just ends what is read).
pub fn decode<'a, R: BufRead + 'a>(codec: Compression, input: R) -> Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Compression::Gzip => Box::new(Gzip {
            input: Some(input),
            member: None,
        }),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
            input,
            true,
            (MAX_WINDOW >> 10) as u32 + 1024,
        )),
        Compression::Zstd => zstd_decoder(input)?,
    })
}

/// A decoder for the whole of `src`.
fn decoder(codec: Compression, src: Rc<dyn Source>) -> Result<Box<dyn Read>> {
    let input: Input = BufReader::with_capacity(INPUT_CHUNK, SourceReader { src, pos: 0 });
    decode(codec, input)
}

/// gzip members one after another (pigz and `cat a.gz b.gz` make several); zeros after the
/// last member are padding (tape blocking), anything else is damage.
struct Gzip<R: BufRead> {
    /// The input between members.
    input: Option<R>,
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(member) = &mut self.member {
                let n = member.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.input = self.member.take().map(|m| m.into_inner());
                continue;
            }
            let Some(input) = &mut self.input else {
                return Ok(0);
            };
            let head = input.fill_buf()?;
            if head.is_empty() {
                self.input = None;
            } else if head.starts_with(&[0x1f, 0x8b]) {
                self.member = self.input.take().map(flate2::bufread::GzDecoder::new);
            } else if head.iter().all(|&b| b == 0) {
                let n = head.len();
                input.consume(n);
            } else {
                return Err(std::io::Error::other("data after the last gzip member"));
            }
        }
    }
}

fn zstd_decoder<'a, R: BufRead + 'a>(input: R) -> Result<Box<dyn Read + 'a>> {
    let mut d = zstd::stream::read::Decoder::with_buffer(input)
        .map_err(|e| Error::corrupt(format!("zstd decoder: {e}")))?;
    d.window_log_max(MAX_WINDOW.trailing_zeros())
        .map_err(|e| Error::corrupt(format!("zstd decoder: {e}")))?;
    Ok(Box::new(d))
}

/// The window a zstd frame header asks for (RFC 8878 3.1.1.1.2), None when `h` is too short.
pub fn zstd_window(h: &[u8]) -> Option<u64> {
    let fhd = *h.get(4)?;
    if fhd & 0x20 == 0 {
        let wd = *h.get(5)?;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the content size.
    let at = 5 + [0, 1, 2, 4][usize::from(fhd & 3)];
    let b = |n: usize| h.get(at..at + n);
    Some(match fhd >> 6 {
        0 => u64::from(*h.get(at)?),
        1 => u64::from(u16::from_le_bytes(b(2)?.try_into().ok()?)) + 256,
        2 => u64::from(u32::from_le_bytes(b(4)?.try_into().ok()?)),
        _ => u64::from_le_bytes(b(8)?.try_into().ok()?),
    })
}

/// The decompressed view of `input`, named `name`.
pub struct Stream {
    name: String,
    input: Rc<dyn Source>,
    codec: Compression,
    /// The decompressed length when known (from the container, or measured); u64::MAX while
    /// unknown, for a stream that is only walked (a tar inside gzip).
    len: std::cell::Cell<u64>,
    state: RefCell<Option<State>>,
}

struct State {
    decoder: Box<dyn Read>,
    /// Bytes decoded so far.
    pos: u64,
    /// The stream's first bytes.
    head: Vec<u8>,
    /// The last bytes decoded: `back[i]` is stream byte `pos - back.len() + i`.
    back: Vec<u8>,
    /// The decoder reached the end of the data.
    ended: bool,
    /// The decoder's error, standing for every later read (a failed decoder may then end cleanly).
    failed: Option<Error>,
}

impl Stream {
    pub fn new(
        name: impl Into<String>,
        input: Rc<dyn Source>,
        codec: Compression,
        len: Option<u64>,
    ) -> Self {
        Stream {
            name: name.into(),
            input,
            codec,
            len: std::cell::Cell::new(len.unwrap_or(u64::MAX)),
            state: RefCell::new(None),
        }
    }

    pub fn codec(&self) -> Compression {
        self.codec
    }

    /// The compressed bytes this stream decodes.
    pub fn input_len(&self) -> u64 {
        self.input.len()
    }

    /// The length once known.
    pub fn known_len(&self) -> Option<u64> {
        Some(self.len.get()).filter(|&l| l != u64::MAX)
    }

    /// Decode on from wherever the stream is to its end, checking the codec's own checksums
    /// on the way, and learn the length. `progress(bytes decoded)` cancels by returning false;
    /// the host gets its turn between steps (a worker hears a cancel).
    pub async fn measure(&self, progress: &mut dyn FnMut(u64) -> bool) -> Result<u64> {
        loop {
            if let Some(len) = self.measure_step(MEASURE_STEP)? {
                return Ok(len);
            }
            let at = self.state.borrow().as_ref().map_or(0, |s| s.pos);
            if !progress(at) {
                return Err(Error::cancelled());
            }
            crate::yield_now().await;
        }
    }

    /// Decode up to `budget` more bytes (discarded); the length once the end is reached.
    fn measure_step(&self, budget: usize) -> Result<Option<u64>> {
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            self.fresh_if_behind(&mut slot, 0)?;
        }
        let s = slot.as_mut().expect("a state");
        let mut buf = vec![0u8; budget.min(1 << 20)];
        let mut done = 0;
        while !s.ended && done < budget {
            done += self.decode(s, &mut buf)?.max(1);
        }
        if !s.ended {
            return Ok(None);
        }
        if self.known_len().is_some_and(|l| l != s.pos) {
            return Err(self.ends_early(s.pos));
        }
        self.len.set(s.pos);
        Ok(Some(s.pos))
    }

    /// The state, started afresh when `offset` lies before what is still held.
    fn fresh_if_behind<'a>(
        &self,
        slot: &'a mut Option<State>,
        offset: u64,
    ) -> Result<&'a mut State> {
        let behind = slot
            .as_ref()
            .is_some_and(|s| offset < s.pos - s.back.len() as u64 && offset >= s.head.len() as u64);
        if slot.is_none() || behind {
            *slot = Some(State {
                decoder: decoder(self.codec, self.input.clone())?,
                pos: 0,
                head: vec![],
                back: vec![],
                ended: false,
                failed: None,
            });
        }
        Ok(slot.as_mut().expect("a state"))
    }

    /// Decode into `out` (up to its length) from the current position; returns the bytes
    /// decoded, 0 at the end of the data.
    fn decode(&self, s: &mut State, out: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        s.failed.clone().map_or(Ok(()), Err)?;
        while filled < out.len() && !s.ended {
            let n = s.decoder.read(&mut out[filled..]).map_err(|e| {
                let e = format!(
                    "{}: {} data does not decompress at byte {}: {e}",
                    self.name,
                    self.codec.name(),
                    s.pos + filled as u64
                );
                s.failed.insert(Error::corrupt(e)).clone()
            })?;
            if n == 0 {
                s.ended = true;
                // A stream walked without a known length learns it here.
                if self.len.get() == u64::MAX {
                    self.len.set(s.pos + filled as u64);
                }
            }
            filled += n;
        }
        let out = &out[..filled];
        if s.head.len() < HEAD_KEEP && (s.head.len() as u64) == s.pos {
            let n = (HEAD_KEEP - s.head.len()).min(out.len());
            s.head.extend_from_slice(&out[..n]);
        }
        keep_last(&mut s.back, out);
        s.pos += filled as u64;
        Ok(filled)
    }

    /// Fill `buf` from `offset`, short only where the data ends; returns the bytes filled.
    pub fn read_some(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let end = offset.saturating_add(buf.len() as u64);
        let mut slot = self.state.borrow_mut();
        if let Some(s) = slot.as_ref()
            && end <= s.head.len() as u64
        {
            buf.copy_from_slice(&s.head[offset as usize..end as usize]);
            return Ok(buf.len());
        }
        let s = self.fresh_if_behind(&mut slot, offset)?;
        let mut at = 0usize;
        // The part still held behind the position.
        let held = s.pos - s.back.len() as u64;
        if offset < s.pos && offset >= held {
            let from = (offset - held) as usize;
            let n = (s.back.len() - from).min(buf.len());
            buf[..n].copy_from_slice(&s.back[from..from + n]);
            at = n;
        } else if offset < s.pos {
            // Inside the head but running past it: decode again from the start.
            *slot = None;
            drop(slot);
            return self.read_some(offset, buf);
        }
        let mut skip = vec![];
        while s.pos < offset {
            let n = (offset - s.pos).min(1 << 20) as usize;
            skip.resize(n, 0);
            if self.decode(s, &mut skip)? < n {
                return Ok(0);
            }
        }
        let n = at + self.decode(s, &mut buf[at..])?;
        if s.pos == self.len.get() && !s.ended {
            self.finish(s)?;
        }
        Ok(n)
    }

    /// At the stated end, read on to the codec's own end: its trailer carries the checksum
    /// (gzip's CRC-32 and size, xz's check), which a reader stopping at the last byte skips.
    fn finish(&self, s: &mut State) -> Result<()> {
        let mut more = [0u8; 1];
        let n = s.decoder.read(&mut more).map_err(|e| {
            let e = format!(
                "{}: {} data does not decompress at its end: {e}",
                self.name,
                self.codec.name()
            );
            s.failed.insert(Error::corrupt(e)).clone()
        })?;
        if n > 0 {
            return Err(Error::corrupt(format!(
                "{}: the {} data holds more than the {} bytes its container states",
                self.name,
                self.codec.name(),
                s.pos
            )));
        }
        s.ended = true;
        Ok(())
    }

    fn ends_early(&self, at: u64) -> Error {
        Error::truncated(format!(
            "{}: the {} data ends after {at} bytes, before the end its container states",
            self.name,
            self.codec.name()
        ))
    }
}

/// Keep the last [`BACK_KEEP`] bytes of `back` followed by `new`.
fn keep_last(back: &mut Vec<u8>, new: &[u8]) {
    if new.len() >= BACK_KEEP {
        back.clear();
        back.extend_from_slice(&new[new.len() - BACK_KEEP..]);
        return;
    }
    let excess = (back.len() + new.len()).saturating_sub(BACK_KEEP);
    back.drain(..excess);
    back.extend_from_slice(new);
}

#[async_trait(?Send)]
impl Source for Stream {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len.get()
    }
    /// Decoding is synchronous: `read_at` is the default, this.
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len.get())
            .ok_or_else(|| Error::io(format!("short read from {}", self.name)))?;
        let n = self.read_some(offset, buf)?;
        if n < buf.len() {
            return Err(self.ends_early(offset + n as u64));
        }
        Ok(())
    }
    fn sequential(&self) -> bool {
        true
    }
    async fn advance(&self, offset: u64) -> Result<()> {
        loop {
            {
                let mut slot = self.state.borrow_mut();
                let s = self.fresh_if_behind(&mut slot, offset)?;
                if s.ended || s.pos >= offset {
                    return Ok(());
                }
                let n = (offset - s.pos).min(MEASURE_STEP as u64) as usize;
                let mut skip = vec![0u8; n.min(1 << 20)];
                let mut done = 0;
                while done < n && !s.ended {
                    let want = (n - done).min(skip.len());
                    done += self.decode(s, &mut skip[..want])?.max(1);
                }
            }
            crate::yield_now().await;
        }
    }
}

/// The decompressed size an xz file states in its indexes (every stream's, padding allowed),
/// read from the end without decoding; None when the index cannot be read.
pub fn xz_size(src: &dyn Source) -> Option<u64> {
    let mut end = src.len();
    let mut total = 0u64;
    for _ in 0..1024 {
        // Stream padding: zero bytes in multiples of four.
        let mut word = [0u8; 4];
        while end >= 4 {
            src.read_blocking(end - 4, &mut word).ok()?;
            if word != [0; 4] {
                break;
            }
            end -= 4;
        }
        let mut footer = [0u8; 12];
        src.read_blocking(end.checked_sub(12)?, &mut footer).ok()?;
        if &footer[10..12] != b"YZ" {
            return None;
        }
        let backward = (u64::from(u32::from_le_bytes(footer[4..8].try_into().ok()?)) + 1) * 4;
        let index_at = end.checked_sub(12 + backward)?;
        if backward > 64 << 20 {
            return None;
        }
        let mut index = vec![0u8; backward as usize];
        src.read_blocking(index_at, &mut index).ok()?;
        let (records, stored) = xz_index(&index)?;
        total = total.checked_add(records)?;
        end = index_at.checked_sub(stored.checked_add(12)?)?;
        if end == 0 {
            return Some(total);
        }
    }
    None
}

/// An xz index: the sum of its records' uncompressed sizes, and the bytes its blocks take
/// (unpadded sizes rounded up to four).
fn xz_index(index: &[u8]) -> Option<(u64, u64)> {
    let mut at = 1usize;
    if index.first() != Some(&0) {
        return None;
    }
    let mut varint = || -> Option<u64> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = *index.get(at)?;
            at += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let count = varint()?;
    let (mut out, mut stored) = (0u64, 0u64);
    for _ in 0..count.min(1 << 24) {
        let unpadded = varint()?;
        let uncompressed = varint()?;
        stored = stored.checked_add(unpadded.checked_next_multiple_of(4)?)?;
        out = out.checked_add(uncompressed)?;
    }
    Some((out, stored))
}

/// The decompressed size a zstd file states: the content sizes of its frames when every frame
/// has one (skippable frames skipped); None otherwise. Reads frame and block headers only.
pub fn zstd_size(src: &dyn Source) -> Option<u64> {
    let len = src.len();
    let (mut at, mut total) = (0u64, 0u64);
    let mut frames = 0;
    while at < len {
        frames += 1;
        if frames > 1 << 16 {
            return None;
        }
        let mut h = [0u8; 18];
        let n = (len - at).min(18) as usize;
        src.read_blocking(at, &mut h[..n]).ok()?;
        let magic = u32::from_le_bytes(h[..4].try_into().ok()?);
        if magic & 0xffff_fff0 == 0x184d_2a50 {
            let size = u32::from_le_bytes(h.get(4..8)?.try_into().ok()?);
            at = at.checked_add(8 + u64::from(size))?;
            continue;
        }
        if magic != 0xfd2f_b528 {
            return None;
        }
        let fhd = h[4];
        let single = fhd & 0x20 != 0;
        let dict = [0usize, 1, 2, 4][usize::from(fhd & 3)];
        let fcs = match fhd >> 6 {
            0 if single => 1,
            0 => return None,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let fcs_at = 5 + usize::from(!single) + dict;
        let field = h.get(fcs_at..fcs_at + fcs)?;
        let mut size = [0u8; 8];
        size[..fcs].copy_from_slice(field);
        let mut content = u64::from_le_bytes(size);
        if fcs == 2 {
            content += 256;
        }
        total = total.checked_add(content)?;
        // Skip the blocks: each starts with a 3-byte header (last flag, type, size).
        let mut pos = at + (fcs_at + fcs) as u64;
        loop {
            let mut b = [0u8; 3];
            src.read_blocking(pos, &mut b).ok()?;
            let bh = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
            let size = u64::from(bh >> 3);
            let stored = if (bh >> 1) & 3 == 1 { 1 } else { size };
            pos = pos.checked_add(3 + stored)?;
            if bh & 1 == 1 {
                break;
            }
        }
        if fhd & 4 != 0 {
            pos += 4;
        }
        at = pos;
    }
    (at == len).then_some(total)
}

/// The decompressed size that `codec`'s container states without decoding, if any.
/// gzip states none: its trailer holds the size modulo 2^32, and of the last member only
/// (`cat a.gz b.gz` and pigz make several), so only decoding tells.
pub fn stated_size(codec: Compression, src: &dyn Source) -> Option<u64> {
    match codec {
        Compression::Gzip => None,
        Compression::Xz => xz_size(src),
        Compression::Zstd => zstd_size(src),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::source::MemSource;
    use std::io::Write;

    fn data(len: usize) -> Vec<u8> {
        let mut x = 7u64;
        (0..len)
            .map(|i| {
                if (i / 65536) % 3 == 2 {
                    return 0;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect()
    }

    fn gzip(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn stream(codec: Compression, packed: Vec<u8>, len: Option<u64>) -> Stream {
        Stream::new("d", Rc::new(MemSource::new("d.gz", packed)), codec, len)
    }

    #[test]
    fn reads_forward_back_and_from_the_head() {
        let d = data(5 << 20);
        let s = stream(Compression::Gzip, gzip(&d), Some(d.len() as u64));
        let mut buf = vec![0u8; 4096];
        for at in [
            0usize,
            100,
            3 << 20,
            (3 << 20) - 500_000,
            10,
            (5 << 20) - 4096,
            2 << 20,
        ] {
            s.read_blocking(at as u64, &mut buf).unwrap();
            assert!(buf == d[at..at + 4096], "at {at}");
        }
        assert!(s.read_blocking((5 << 20) - 10, &mut buf).is_err());
    }

    #[test]
    fn concatenated_members_padding_and_damage() {
        let (a, b) = (data(300_000), data(70_000));
        let mut packed = gzip(&a);
        packed.extend(gzip(&b));
        packed.extend([0u8; 1000]);
        let s = stream(Compression::Gzip, packed.clone(), None);
        assert_eq!(
            crate::native::block_on(s.measure(&mut |_| true)).unwrap(),
            370_000
        );
        let mut all = vec![0u8; 370_000];
        s.read_blocking(0, &mut all).unwrap();
        assert!(all[..300_000] == a[..] && all[300_000..] == b[..]);
        packed.push(1);
        let s = stream(Compression::Gzip, packed, None);
        assert!(matches!(
            crate::native::block_on(s.measure(&mut |_| true)),
            Err(Error {
                kind: ErrorKind::Corrupt,
                ..
            })
        ));
        let s = stream(Compression::Gzip, gzip(&a)[..5000].to_vec(), None);
        assert!(crate::native::block_on(s.measure(&mut |_| true)).is_err());
    }

    #[test]
    fn stated_sizes() {
        let d = data(200_000);
        let mut two = gzip(&d);
        two.extend(gzip(&d[..100]));
        assert_eq!(
            stated_size(Compression::Gzip, &MemSource::new("x", two)),
            None
        );
        // One-shot compression states the content size, as the zstd command does for a file.
        let z = zstd::bulk::compress(&d, 3).unwrap();
        assert_eq!(
            zstd_size(&MemSource::new("x", zstd::encode_all(&d[..], 3).unwrap())),
            None
        );
        assert_eq!(zstd_size(&MemSource::new("x", z.clone())), Some(200_000));
        let mut two = z.clone();
        two.extend(&z);
        assert_eq!(zstd_size(&MemSource::new("x", two)), Some(400_000));
        assert_eq!(zstd_window(&z).map(|w| w <= MAX_WINDOW), Some(true));
    }
}
