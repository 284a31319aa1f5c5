//! Member sources: how a file inside a package is seen as a file of its own, without copying.
//!
//! - [`Window`]: a byte range of another source (a tar member read in place).
//! - [`Spans`]: a sequence of byte ranges and zero runs (a chunked OVF file made of several
//!   members, an old-GNU sparse tar member whose holes read as zeros).

use crate::error::{Error, Result};
use crate::source::{Reads, Source};
use async_trait::async_trait;
use std::rc::Rc;

/// Bytes `[start, start + len)` of `inner`, named `name`. The caller checks the range lies
/// inside `inner`.
pub struct Window {
    name: String,
    inner: Rc<dyn Source>,
    start: u64,
    len: u64,
    /// The window's first bytes, read while walking a stream that cannot go back cheaply.
    head: Option<Rc<[u8]>>,
}

impl Window {
    pub fn new(name: impl Into<String>, inner: Rc<dyn Source>, start: u64, len: u64) -> Self {
        Window {
            name: name.into(),
            inner,
            start,
            len,
            head: None,
        }
    }

    /// Serve reads inside `head` (the window's first bytes) from memory.
    pub fn with_head(mut self, head: Rc<[u8]>) -> Self {
        self.head = Some(head);
        self
    }

    fn read_head(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(head) = &self.head else {
            return false;
        };
        let end = offset.saturating_add(buf.len() as u64);
        if end > head.len() as u64 {
            return false;
        }
        buf.copy_from_slice(&head[offset as usize..end as usize]);
        true
    }
}

#[async_trait(?Send)]
impl Source for Window {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.read_head(offset, buf) {
            return Ok(());
        }
        self.inner.read_at(self.start + offset, buf).await
    }
    async fn read_into(&self, reads: Reads, buf: Vec<u8>) -> Result<Vec<u8>> {
        let reads = reads
            .into_iter()
            .map(|(offset, range)| (self.start + offset, range))
            .collect();
        self.inner.read_into(reads, buf).await
    }
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.read_head(offset, buf) {
            return Ok(());
        }
        self.inner.read_blocking(self.start + offset, buf)
    }
    fn sequential(&self) -> bool {
        self.inner.sequential()
    }
    async fn advance(&self, offset: u64) -> Result<()> {
        self.inner.advance(self.start + offset).await
    }
    fn host_range(&self, at: u64, len: u64) -> Option<(crate::source::HostFile, u64)> {
        self.inner.host_range(self.start + at, len)
    }
    async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let ranges = self.inner.data_ranges(self.start + start, len).await?;
        Some(
            ranges
                .into_iter()
                .map(|(s, e)| (s - self.start, e - self.start))
                .collect(),
        )
    }
}

/// Where a span's bytes come from.
#[derive(Clone)]
pub enum Part {
    /// Reads as zeros (a hole of a sparse member).
    Zero,
    /// Stored at `offset` in `src`.
    Bytes { src: Rc<dyn Source>, offset: u64 },
}

/// A file laid out as consecutive spans `(length, part)` from offset 0.
pub struct Spans {
    name: String,
    /// `(start, length, part)`, ascending and back to back.
    spans: Vec<(u64, u64, Part)>,
    len: u64,
}

impl Spans {
    pub fn new(name: impl Into<String>, parts: Vec<(u64, Part)>) -> Result<Self> {
        let mut spans = Vec::with_capacity(parts.len());
        let mut at = 0u64;
        for (len, part) in parts {
            if len == 0 {
                continue;
            }
            spans.push((at, len, part));
            at = at
                .checked_add(len)
                .ok_or_else(|| Error::corrupt("a member larger than 2^64 bytes"))?;
        }
        Ok(Spans {
            name: name.into(),
            spans,
            len: at,
        })
    }

    /// A sparse file of `size` bytes whose `segments` `(offset, length)` are stored back to
    /// back from `data` in `src`, zeros between them (an old-GNU sparse tar member).
    pub fn sparse(
        name: impl Into<String>,
        src: &Rc<dyn Source>,
        data: u64,
        segments: &[(u64, u64)],
        size: u64,
    ) -> Result<Self> {
        let mut parts = vec![];
        let (mut pos, mut stored) = (0u64, data);
        for &(off, len) in segments {
            parts.push((off - pos, Part::Zero));
            let offset = stored;
            parts.push((
                len,
                Part::Bytes {
                    src: src.clone(),
                    offset,
                },
            ));
            pos = off + len;
            stored += len;
        }
        parts.push((size - pos, Part::Zero));
        Spans::new(name, parts)
    }

    /// The spans overlapping `[offset, offset + len)`, each as (span, offset inside it, length).
    fn pieces(&self, offset: u64, len: u64) -> Result<Vec<(&Part, u64, u64)>> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| Error::io(format!("short read from {}", self.name)))?;
        let first = self.spans.partition_point(|(s, l, _)| s + l <= offset);
        let mut out = vec![];
        let mut pos = offset;
        for (start, span_len, part) in &self.spans[first..] {
            if pos >= end {
                break;
            }
            let inner = pos - start;
            let n = (span_len - inner).min(end - pos);
            out.push((part, inner, n));
            pos += n;
        }
        Ok(out)
    }
}

#[async_trait(?Send)]
impl Source for Spans {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut at = 0usize;
        for (part, inner, n) in self.pieces(offset, buf.len() as u64)? {
            let out = &mut buf[at..at + n as usize];
            match part {
                Part::Zero => out.fill(0),
                Part::Bytes { src, offset } => src.read_at(offset + inner, out).await?,
            }
            at += n as usize;
        }
        Ok(())
    }
    /// When every stored piece comes from one source (chunks of one OVA, a sparse member), the
    /// reads go to it as one batch, so its host overlaps them with the engine's work.
    async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        let mut batch: Reads = vec![];
        let mut shared: Option<Rc<dyn Source>> = None;
        let mut mixed = false;
        for (offset, range) in &reads {
            let mut at = range.start;
            for (part, inner, n) in self.pieces(*offset, range.len() as u64)? {
                let piece = at..at + n as usize;
                match part {
                    Part::Zero => buf[piece].fill(0),
                    Part::Bytes { src, offset } => {
                        match &shared {
                            Some(s) if !Rc::ptr_eq(s, src) => mixed = true,
                            None => shared = Some(src.clone()),
                            _ => {}
                        }
                        batch.push((offset + inner, piece));
                    }
                }
                at += n as usize;
            }
        }
        match shared {
            Some(src) if !mixed => src.read_into(batch, buf).await,
            _ => {
                for (offset, range) in reads {
                    self.read_at(offset, &mut buf[range]).await?;
                }
                Ok(buf)
            }
        }
    }
    fn read_blocking(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut at = 0usize;
        for (part, inner, n) in self.pieces(offset, buf.len() as u64)? {
            let out = &mut buf[at..at + n as usize];
            match part {
                Part::Zero => out.fill(0),
                Part::Bytes { src, offset } => src.read_blocking(offset + inner, out)?,
            }
            at += n as usize;
        }
        Ok(())
    }
    fn sequential(&self) -> bool {
        self.spans
            .iter()
            .any(|(_, _, p)| matches!(p, Part::Bytes { src, .. } if src.sequential()))
    }
    /// A range inside one stored span is where that span's source has it.
    fn host_range(&self, at: u64, len: u64) -> Option<(crate::source::HostFile, u64)> {
        match self.pieces(at, len).ok()?.as_slice() {
            [(Part::Bytes { src, offset }, inner, _)] => src.host_range(offset + inner, len),
            _ => None,
        }
    }
    /// Zero spans are holes, everything stored is data.
    async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = vec![];
        let end = start.checked_add(len)?.min(self.len);
        for (s, l, part) in &self.spans {
            let (a, b) = ((*s).max(start), (s + l).min(end));
            if a >= b || matches!(part, Part::Zero) {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
        Some(out)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::native::block_on;
    use crate::source::MemSource;

    #[test]
    fn spans_read_across_parts_and_holes() {
        let a: Rc<dyn Source> = Rc::new(MemSource::new("a", (0..100u8).collect()));
        let b: Rc<dyn Source> = Rc::new(MemSource::new("b", vec![9; 50]));
        let s = Spans::new(
            "f",
            vec![
                (
                    10,
                    Part::Bytes {
                        src: a.clone(),
                        offset: 5,
                    },
                ),
                (20, Part::Zero),
                (0, Part::Zero),
                (5, Part::Bytes { src: b, offset: 0 }),
                (
                    10,
                    Part::Bytes {
                        src: a.clone(),
                        offset: 90,
                    },
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.len(), 45);
        let mut all = vec![0xAA; 45];
        block_on(s.read_at(0, &mut all)).unwrap();
        let mut expect: Vec<u8> = (5..15).collect();
        expect.extend([0; 20]);
        expect.extend([9; 5]);
        expect.extend(90..100u8);
        assert_eq!(all, expect);
        let mut buf = vec![0xAA; 45];
        s.read_blocking(0, &mut buf).unwrap();
        assert_eq!(buf, expect);
        // A batch mixing sources, out of the buffer's order of parts.
        let reads = vec![(8, 0..4), (28, 10..20), (44, 30..31)];
        let got = block_on(s.read_into(reads, vec![0xAA; 31])).unwrap();
        assert_eq!(&got[0..4], &expect[8..12]);
        assert_eq!(&got[10..20], &expect[28..38]);
        assert_eq!(got[30], expect[44]);
        assert!(block_on(s.read_at(40, &mut [0; 6])).is_err());
        assert_eq!(
            block_on(s.data_ranges(0, 45)),
            Some(vec![(0, 10), (30, 45)])
        );
        let w = Window::new("w", a, 50, 20);
        let mut buf = [0; 3];
        block_on(w.read_at(17, &mut buf)).unwrap();
        assert_eq!(buf, [67, 68, 69]);
    }
}
