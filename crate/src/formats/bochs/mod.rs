//! Bochs growing (sparse redolog) images, read-only, as qemu `block/bochs.c` reads them.
//!
//! The catalog maps each extent of the disk to its slot in the file (0xffffffff: never written,
//! reads as zeros). Slot `n` starts at `data_offset + n * (bitmap_blocks + extent_blocks) * 512`
//! with a bitmap of one bit a sector (least significant bit first); a clear bit reads as zeros,
//! a set one from the extent's data that follows the bitmap. Bochs images have no backing file
//! that qemu follows. The catalog is at most 1M entries (4 MiB) and is read once at open.

pub(crate) mod header;

use super::common::extents::{push, push_data};
use super::common::scan::readable;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, read_vec};
use async_trait::async_trait;
use header::{Bochs as Header, UNALLOCATED};
use std::rc::Rc;

pub struct Bochs {
    file: FileId,
    src: Rc<dyn Source>,
    header: Header,
    catalog: Vec<u32>,
    findings: Vec<Finding>,
    blocked: Option<(bool, String)>,
}

impl Bochs {
    pub async fn open(set: &ImageSet, file: FileId) -> Result<Self> {
        let src = set.file(file).clone();
        let len = src.len();
        let head = read_vec(&*src, 0, len.min(header::HEADER_LEN), "Bochs header").await?;
        let Some((header, problems)) = header::parse(&head, len) else {
            return Err(Error::corrupt("not a Bochs image (bad magic)"));
        };
        if let Some(e) = problems.into_iter().next() {
            return Err(e);
        }
        let raw = read_vec(
            &*src,
            header.catalog_offset,
            u64::from(header.catalog) * 4,
            "Bochs catalog",
        )
        .await?;
        let catalog = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let mut me = Bochs {
            file,
            src,
            header,
            catalog,
            findings: vec![Finding::new(
                FindingCode::ConvertBeforeUpload,
                Severity::Warning,
                "Bochs is an emulator's own format that clouds do not accept: convert it (to qcow2 or raw)",
            )],
            blocked: None,
        };
        me.scan();
        Ok(me)
    }

    fn slot_len(&self) -> u64 {
        (self.header.bitmap_blocks() + self.header.extent_blocks()) * 512
    }

    /// The file offset of catalog slot `slot` (its bitmap), without overflow.
    fn slot_offset(&self, slot: u32) -> Option<u64> {
        u64::from(slot)
            .checked_mul(self.slot_len())?
            .checked_add(self.header.data_offset())
    }

    /// Every written extent (bitmap and data) must lie inside the file: a cut or damaged
    /// catalog is a finding that blocks reading, before a conversion starts.
    fn scan(&mut self) {
        let used = self.header.disk.div_ceil(u64::from(self.header.extent)) as usize;
        for (index, &slot) in self.catalog.iter().enumerate().take(used) {
            if slot == UNALLOCATED {
                continue;
            }
            let end = self
                .slot_offset(slot)
                .and_then(|o| o.checked_add(self.slot_len()));
            if end.is_none_or(|e| e > self.src.len()) {
                let m = format!(
                    "Bochs extent {index} (catalog slot {slot}) lies past the end of {} ({} bytes)",
                    self.src.name(),
                    self.src.len()
                );
                self.findings
                    .push(Finding::new(FindingCode::Truncated, Severity::Critical, &m));
                self.blocked = Some((true, m));
                return;
            }
        }
    }

    /// The extents of `[pos, end)`, all inside extent `index`.
    async fn map_extent(
        &self,
        out: &mut Vec<Extent>,
        index: u64,
        pos: u64,
        end: u64,
    ) -> Result<()> {
        let slot = self
            .catalog
            .get(index as usize)
            .copied()
            .unwrap_or(UNALLOCATED);
        if slot == UNALLOCATED {
            push(out, pos, end - pos, Mapping::Unallocated);
            return Ok(());
        }
        let extent_start = index * u64::from(self.header.extent);
        let at = self
            .slot_offset(slot)
            .ok_or_else(|| Error::corrupt("Bochs catalog slot out of range"))?;
        let first = (pos - extent_start) / 512;
        let last = (end - extent_start).div_ceil(512);
        let bitmap = read_vec(
            &*self.src,
            at + first / 8,
            (last - 1) / 8 - first / 8 + 1,
            "Bochs extent bitmap",
        )
        .await?;
        let data = at + self.header.bitmap_blocks() * 512;
        for sector in first..last {
            let bit = bitmap[(sector / 8 - first / 8) as usize] >> (sector % 8) & 1;
            let from = (extent_start + sector * 512).max(pos);
            let to = (extent_start + (sector + 1) * 512).min(end);
            if bit == 0 {
                push(out, from, to - from, Mapping::Unallocated);
            } else {
                let host = data + (from - extent_start);
                push_data(out, self.file, self.src.len(), from, to, host);
            }
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Image for Bochs {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Bochs, self.header.disk, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        let size = u64::from(self.header.extent);
        for (index, from, to) in super::common::extents::blocks(start, end, size) {
            self.map_extent(&mut out, index, from, to).await?;
        }
        Ok(out)
    }

    fn details(&self) -> serde_json::Value {
        let allocated = self.catalog.iter().filter(|&&s| s != UNALLOCATED).count();
        serde_json::json!({
            "version": if self.header.version == header::VERSION_1 { 1 } else { 2 },
            "subtype": self.header.subtype,
            "extent-size": self.header.extent,
            "bitmap-size": self.header.bitmap,
            "catalog-entries": self.header.catalog,
            "allocated-extents": allocated,
        })
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
