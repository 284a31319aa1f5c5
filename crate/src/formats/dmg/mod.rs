//! Apple disk images (UDIF `.dmg`), read-only, as qemu `block/dmg.c` reads them.
//!
//! The `koly` trailer at the end of the file points to the XML property list (or, in old
//! images, the resource fork) whose `mish` block tables list the chunks of the disk: zero-fill,
//! ignore (both read as zeros), raw, zlib and bzip2 chunks are read; LZFSE, LZMA and ADC chunks
//! are named and refused (an `unsupported-chunk` finding). Each chunk becomes one extent: a
//! zlib or bzip2 chunk a compressed unit of its sector count, decoded by the engine. Sectors no chunk
//! covers fail to read in qemu, so they make the image unreadable here too.

mod blocks;
pub(crate) mod header;

use super::common::extents::{push, push_data};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, read_vec};
use async_trait::async_trait;
use blocks::Chunk;
use header::{BZIP2, IGNORE, MAX_CHUNK_BYTES, MAX_XML, RAW, ZERO, ZLIB, chunk_name};
use std::rc::Rc;

/// How much of the end of the file holds the trailer qemu looks for.
const TAIL: u64 = 1024;

pub struct Dmg {
    file: FileId,
    src: Rc<dyn Source>,
    size: u64,
    koly_offset: u64,
    /// From the property list (true) or the resource fork.
    from_xml: bool,
    /// Sorted by sector, non-empty, not overlapping.
    chunks: Vec<Chunk>,
    findings: Vec<Finding>,
    blocked: Option<Error>,
}

impl Dmg {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Self> {
        let src = set.file(file).clone();
        let len = src.len();
        let tail_len = len.min(TAIL);
        let tail = read_vec(&*src, len - tail_len, tail_len, "DMG trailer").await?;
        let at = header::find_koly(&tail, len).ok_or_else(|| {
            Error::truncated("no DMG koly trailer at the end of the file (cut short?)")
        })?;
        let from = (at - (len - tail_len)) as usize;
        let (koly, problems) = header::parse_koly(&tail[from..], at, len);
        if let Some(e) = problems.into_iter().next() {
            return Err(e);
        }
        let data_fork = koly.data_fork_offset.get();
        let (rsrc, rsrc_len) = (koly.rsrc_fork_offset.get(), koly.rsrc_fork_length.get());
        let mut chunks = vec![];
        let from_xml = rsrc_len == 0;
        // qemu prefers the resource fork when there is one.
        let tables = if from_xml {
            let xml = read_vec(
                &*src,
                koly.xml_offset.get(),
                koly.xml_length.get(),
                "DMG property list",
            )
            .await?;
            blocks::plist_data(&xml)?
        } else {
            if rsrc_len > MAX_XML {
                return Err(Error::corrupt(format!(
                    "the DMG resource fork of {rsrc_len} bytes is too large"
                )));
            }
            blocks::rsrc_resources(&read_vec(&*src, rsrc, rsrc_len, "DMG resource fork").await?)?
        };
        for t in &tables {
            blocks::mish_chunks(t, data_fork, &mut chunks)?;
        }
        chunks.retain(|c| c.count > 0);
        chunks.sort_by_key(|c| c.sector);
        let mut me = Dmg {
            file,
            src,
            size: koly.sector_count.get() * 512,
            koly_offset: at,
            from_xml,
            chunks,
            findings: vec![Finding::new(
                FindingCode::ConvertBeforeUpload,
                Severity::Warning,
                "DMG is an Apple disk image format that clouds do not accept: convert it (to qcow2 or raw)",
            )],
            blocked: None,
        };
        if let Err(e) = me.check() {
            let code = match e.kind {
                crate::error::ErrorKind::Unsupported => FindingCode::UnsupportedChunk,
                crate::error::ErrorKind::Truncated => FindingCode::Truncated,
                _ => FindingCode::Corrupt,
            };
            me.findings
                .push(Finding::new(code, Severity::Critical, &e.message));
            me.blocked = Some(e);
        }
        Ok(me)
    }

    /// Every sector of the disk covered by exactly one chunk of a type read here, each chunk
    /// bounded (qemu's 64 MiB) and stored inside the file before the trailer.
    fn check(&self) -> Result<()> {
        let total = self.size / 512;
        let mut next = 0u64;
        for c in &self.chunks {
            if c.sector >= total {
                break;
            }
            if c.sector != next {
                return Err(Error::corrupt(if c.sector < next {
                    format!("DMG chunks overlap at sector {}", c.sector)
                } else {
                    format!("no DMG chunk covers sectors {next} to {}", c.sector - 1)
                }));
            }
            next = c.sector.saturating_add(c.count);
            match c.kind {
                ZERO | IGNORE => continue,
                RAW | ZLIB | BZIP2 => {}
                k => {
                    return Err(Error::unsupported(format!(
                        "the DMG holds {} chunks (the first at sector {}), which vmdisk cannot decode",
                        chunk_name(k),
                        c.sector
                    )));
                }
            }
            if c.count.checked_mul(512).is_none_or(|b| b > MAX_CHUNK_BYTES) {
                return Err(Error::corrupt(format!(
                    "DMG chunk at sector {} spans {} sectors (at most 64 MiB)",
                    c.sector, c.count
                )));
            }
            if c.offset
                .checked_add(c.length)
                .is_none_or(|e| e > self.koly_offset)
            {
                return Err(Error::truncated(format!(
                    "DMG chunk at sector {} is stored at offset {} (+{} bytes), past the data fork of {} ({} bytes)",
                    c.sector,
                    c.offset,
                    c.length,
                    self.src.name(),
                    self.src.len()
                )));
            }
        }
        if next < total {
            return Err(Error::corrupt(format!(
                "no DMG chunk covers sectors {next} to {}",
                total - 1
            )));
        }
        Ok(())
    }

    /// Where chunk `c` ends on the disk, in bytes (chunk counts are unbounded: clipped to the
    /// disk, without overflow).
    fn chunk_end(&self, c: &Chunk) -> u64 {
        c.sector.saturating_add(c.count).min(self.size / 512) * 512
    }

    /// Guest `[from, to)`, all inside chunk `c`.
    fn map_chunk(&self, out: &mut Vec<Extent>, c: &Chunk, from: u64, to: u64) -> Result<()> {
        let start = c.sector * 512;
        match c.kind {
            ZERO | IGNORE => push(out, from, to - from, Mapping::Zero),
            RAW => {
                // Bytes past the stored length read as zeros.
                let stored_end = (start + c.length).clamp(from, to);
                push_data(
                    out,
                    self.file,
                    self.koly_offset,
                    from,
                    stored_end,
                    c.offset + (from - start),
                );
                push(out, stored_end, to - stored_end, Mapping::Zero);
            }
            ZLIB | BZIP2 => push(
                out,
                from,
                to - from,
                Mapping::Compressed {
                    file: self.file,
                    offset: c.offset,
                    len: c.length,
                    codec: if c.kind == ZLIB {
                        Codec::Zlib
                    } else {
                        Codec::Bzip2
                    },
                    unit: c.count * 512,
                    skip: from - start,
                },
            ),
            k => {
                return Err(Error::unsupported(format!(
                    "DMG {} chunk at sector {} cannot be decoded",
                    chunk_name(k),
                    c.sector
                )));
            }
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Image for Dmg {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Dmg, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        let mut pos = start;
        let mut i = self
            .chunks
            .partition_point(|c| (c.sector + c.count) * 512 <= pos);
        while pos < end {
            let c = self
                .chunks
                .get(i)
                .filter(|c| c.sector.saturating_mul(512) <= pos)
                .ok_or_else(|| Error::corrupt(format!("no DMG chunk covers guest offset {pos}")))?;
            let to = self.chunk_end(c).min(end);
            if to <= pos {
                return Err(Error::corrupt(format!(
                    "DMG chunks overlap at guest offset {pos}"
                )));
            }
            self.map_chunk(&mut out, c, pos, to)?;
            pos = to;
            i += 1;
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        let mut kinds = serde_json::Map::new();
        for c in &self.chunks {
            let e = kinds.entry(chunk_name(c.kind)).or_insert(0.into());
            *e = (e.as_u64().unwrap_or(0) + 1).into();
        }
        serde_json::json!({
            "trailer-offset": self.koly_offset,
            "block-table": if self.from_xml { "property list" } else { "resource fork" },
            "chunks": self.chunks.len(),
            "chunk-types": kinds,
        })
    }

    fn readable(&self) -> Result<()> {
        match &self.blocked {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
