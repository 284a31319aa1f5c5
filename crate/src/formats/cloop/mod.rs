//! cloop (compressed loop) images, read-only, as qemu `block/cloop.c` reads them: the disk is
//! cut into blocks of `block_size` bytes, each one zlib stream; the offsets table says where
//! each stream starts and ends. Every block is compressed (there are no holes), so the extent
//! map is one compressed extent a block. The table is checked once at open in bounded chunks
//! and read lazily through a cache afterwards.

pub(crate) mod header;

use super::common::extents::{blocks, push};
use super::common::scan::readable;
use super::common::table::{TableCache, Word};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, read_vec};
use async_trait::async_trait;
use header::{Cloop as Header, HEADER_LEN, MAX_COMPRESSED};
use std::rc::Rc;

/// Offsets read at a time (each chunk also holds the next chunk's first offset).
const CHUNK: u64 = 16384;

pub struct Cloop {
    file: FileId,
    src: Rc<dyn Source>,
    header: Header,
    findings: Vec<Finding>,
    blocked: Option<(bool, String)>,
    table: TableCache,
}

impl Cloop {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Self> {
        let src = set.file(file).clone();
        let len = src.len();
        let head = read_vec(&*src, 0, len.min(HEADER_LEN), "cloop header").await?;
        let Some((header, problems)) = header::parse(&head, len) else {
            return Err(Error::corrupt("not a cloop image (no cloop preamble)"));
        };
        if let Some(e) = problems.into_iter().next() {
            return Err(e);
        }
        let mut me = Cloop {
            file,
            src,
            header,
            findings: vec![Finding::new(
                FindingCode::ConvertBeforeUpload,
                Severity::Warning,
                "cloop is a read-only live-CD format that clouds do not accept: convert it (to qcow2 or raw)",
            )],
            blocked: None,
            table: TableCache::new(Word::Be64, 4),
        };
        if let Err(e) = me.scan().await {
            let found = super::common::scan::problem(e);
            me.findings.push(super::common::scan::scan_finding(&found));
            me.blocked = Some(found);
        }
        Ok(me)
    }

    /// Offsets `[first, first + CHUNK]` (clipped to the table), through the cache.
    async fn offsets(&self, first: u64) -> Result<Rc<[u64]>> {
        let n = (CHUNK + 1).min(u64::from(self.header.n_blocks) + 1 - first);
        self.table
            .get(
                &*self.src,
                HEADER_LEN + first * 8,
                n as usize,
                "cloop offsets table",
            )
            .await
    }

    /// qemu's checks on every offset (ascending, no block over 128 MiB) and ours: each block
    /// inside the file and after the table.
    async fn scan(&self) -> Result<()> {
        let blocks = u64::from(self.header.n_blocks);
        let data_start = HEADER_LEN + self.header.table_len();
        let mut first = 0;
        while first < blocks {
            let offs = self.offsets(first).await?;
            for (k, pair) in offs.windows(2).enumerate() {
                self.check_block(first + k as u64, pair[0], pair[1], data_start)?;
            }
            first += CHUNK;
        }
        Ok(())
    }

    fn check_block(&self, index: u64, start: u64, end: u64, data_start: u64) -> Result<()> {
        if end < start {
            return Err(Error::corrupt(format!(
                "cloop offsets are not ascending at block {index}"
            )));
        }
        if end - start > MAX_COMPRESSED || end == start {
            return Err(Error::corrupt(format!(
                "cloop block {index} has a compressed size of {} bytes",
                end - start
            )));
        }
        if start < data_start {
            return Err(Error::corrupt(format!(
                "cloop block {index} starts inside the header or offsets table (offset {start})"
            )));
        }
        if end > self.src.len() {
            return Err(Error::truncated(format!(
                "cloop block {index} ends at offset {end}, past the end of {} ({} bytes)",
                self.src.name(),
                self.src.len()
            )));
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Image for Cloop {
    fn basics(&self) -> Basics<'_> {
        Basics::new(
            Format::Cloop,
            self.header.virtual_size(),
            self.file,
            &self.findings,
        )
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let unit = u64::from(self.header.block_size);
        let data_start = HEADER_LEN + self.header.table_len();
        let mut out = vec![];
        for (index, from, to) in blocks(start, end, unit) {
            let first = index - index % CHUNK;
            let offs = self.offsets(first).await?;
            let k = (index - first) as usize;
            let (s, e) = (offs[k], offs[k + 1]);
            self.check_block(index, s, e, data_start)?;
            let mapping = Mapping::Compressed {
                file: self.file,
                offset: s,
                len: e - s,
                codec: Codec::Zlib,
                unit,
                skip: from - index * unit,
            };
            push(&mut out, from, to - from, mapping);
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.header.version,
            "block-size": self.header.block_size,
            "blocks": self.header.n_blocks,
        })
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
