//! VHD reader: fixed, dynamic and differencing disks, as specified by Microsoft's "Virtual Hard
//! Disk Image Format Specification" (2006). Behaviour compared with qemu's `block/vpc.c`.
//!
//! Layout (spec "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block Allocation
//! Table and Data Blocks"):
//! - every VHD ends with a 512-byte big-endian footer (`conectix`); dynamic and differencing
//!   disks keep a copy at offset 0, used here when the one at the end is damaged;
//! - a fixed disk is the guest data followed by the footer;
//! - a dynamic disk has a 1 KiB dynamic header (`cxsparse`) at the footer's data offset, a block
//!   allocation table (BAT: one big-endian sector number per block, `0xffffffff` = absent) and
//!   blocks made of a sector bitmap (one bit per sector, most significant bit first, padded to
//!   whole sectors) followed by the block's data. A sector whose bit is 0 is not stored here:
//!   it reads as zeros in a dynamic disk and from the parent in a differencing disk;
//! - a differencing disk names its parent in the dynamic header (UUID, Unicode name) and in up
//!   to eight parent locators (`W2ru` relative and `W2ku` absolute Windows paths in UTF-16 LE,
//!   `MacX` file URLs in UTF-8; the old `Mac ` alias records are opaque and skipped).
//!
//! Decisions (documented where qemu differs):
//! - The virtual size is what the guest of the writing hypervisor sees ([`guest_size`]): the CHS
//!   geometry's size for Virtual PC and old qemu images, the footer's current size otherwise.
//!   qemu also uses the geometry for creators it does not know (everything but `win `, `qem2`,
//!   `d2v `, `CTXS`, `tap\0`) unless the geometry is the maximum one; the size qemu would use is
//!   reported as `qemu-virtual-size` when it differs.
//! - qemu's probe only looks at offset 0, so it calls a fixed VHD raw and counts the footer as
//!   disk data; vmdisk finds the footer at the end and reads the disk without it.
//! - A footer whose checksum is wrong: the copy at offset 0 is used when it is valid (Warning
//!   `corrupt`); otherwise opening fails (qemu only prints a warning and carries on).
//! - A dynamic header whose checksum is wrong fails to open (there is no second copy).
//! - A parent whose footer UUID differs from the one the child records is a Critical
//!   `parent-mismatch` finding; the parent is still used, as Hyper-V would refuse it.

pub(crate) mod dynamic;
pub(crate) mod footer;
mod parent;
#[cfg(test)]
mod tests;

use super::common::bytes::uuid;
use super::common::extents::{blocks, extent, map_plain};
use super::common::parent::backing_of;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::intact;
use crate::formats::common::scan::readable;
use crate::image::{Backing, Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, read_vec};
use async_trait::async_trait;
use dynamic::{DYN_HEADER_LEN, DynHeader, Dynamic, UNALLOCATED, read_bat};
use footer::{DiskType, FOOTER_LEN, Footer, four_cc, read_footer};
use parent::{Parent, open_parent};
use serde_json::json;
use std::rc::Rc;

const SECTOR: u64 = 512;
/// qemu's limit (VHD_MAX_SECTORS): about 2040 GiB, what the spec's geometry can describe.
const MAX_SIZE: u64 = 0xff00_0000 * SECTOR;

/// The disk size the guest sees, from the footer's creator application. Virtual PC (`vpc `)
/// and qemu before 2.6 (`qemu`) size a disk by its CHS geometry, Hyper-V and the other writers
/// by the footer's current size (qemu `block/vpc.c`, the creator table in `vpc_open`). Two
/// cases keep the current size: the maximum geometry, which cannot describe a larger disk, and
/// a geometry larger than the current size, whose excess the file does not hold.
pub(crate) fn guest_size(creator: &[u8; 4], current: u64, chs_sectors: u64) -> u64 {
    let by_geometry = matches!(creator, b"vpc " | b"qemu");
    let chs = chs_sectors * SECTOR;
    if by_geometry && chs_sectors != footer::MAX_CHS_SECTORS && chs != 0 && chs <= current {
        chs
    } else {
        current
    }
}

pub struct Vhd {
    file: FileId,
    /// The guest disk size ([`guest_size`]).
    size: u64,
    src: Rc<dyn Source>,
    footer: Footer,
    dynamic: Option<Dynamic>,
    parent: Option<Parent>,
    findings: Vec<Finding>,
    /// Bytes the footer takes at the end of the file, and the dynamic header's offset.
    tail_len: u64,
    header_at: u64,
    /// Why the data cannot be read, if it cannot: (truncated, message).
    blocked: Option<(bool, String)>,
}

impl Vhd {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Vhd> {
        let src = set.file(file).clone();
        let found = read_footer(&*src).await?;
        let footer = found.footer;
        let mut findings = vec![];
        if let Some(w) = found.warning {
            findings.push(Finding::new(FindingCode::Corrupt, Severity::Warning, w));
        }
        let size = guest_size(
            &footer.creator_app,
            footer.current_size,
            footer.chs_sectors(),
        );
        if size > MAX_SIZE {
            return Err(Error::unsupported(format!(
                "VHD current size {size} exceeds the format's limit of {MAX_SIZE} bytes"
            )));
        }
        // Azure checks the footer's size, whichever size the guest sees.
        let current = footer.current_size;
        if !current.is_multiple_of(1 << 20) {
            findings.push(Finding::new(
                FindingCode::UnalignedSize,
                Severity::Warning,
                format!(
                    "the VHD virtual size {current} is not a whole number of MiB (Azure requires it)"
                ),
            ));
        }
        if footer.saved_state {
            findings.push(Finding::new(
                FindingCode::Dirty,
                Severity::Warning,
                "the VHD footer's saved-state flag is set: the disk belongs to a suspended VM",
            ));
        }
        let mut dynamic = None;
        let mut parent = None;
        match footer.disk_type {
            // A short data area is found by the integrity walk below.
            DiskType::Fixed => {}
            DiskType::Dynamic | DiskType::Differencing => {
                let at = footer.data_offset;
                let h = read_vec(&*src, at, DYN_HEADER_LEN, "VHD dynamic disk header").await?;
                let header = DynHeader::parse(&h, at)?;
                let d = read_bat(&*src, header, size).await?;
                if footer.disk_type == DiskType::Differencing {
                    let opening = Box::pin(open_parent(set, file, depth, &d.header, &mut findings));
                    parent = Some(opening.await?);
                }
                dynamic = Some(d);
            }
        }
        let header_at = footer.data_offset;
        let mut me = Vhd {
            file,
            src,
            size,
            footer,
            dynamic,
            parent,
            findings,
            tail_len: found.tail_len,
            header_at,
            blocked: None,
        };
        let found = intact::walk(&me, &me.layout()).await;
        found.settle(&mut me.findings, &mut me.blocked);
        Ok(me)
    }

    /// For the integrity walk (VHD spec "Dynamic Disk Header Format", "Block Allocation
    /// Table and Data Blocks"): a fixed disk's data area ends at the footer; a dynamic disk
    /// has the footer copy, dynamic header, BAT, each block's sector bitmap and the footer.
    fn layout(&self) -> intact::Layout {
        let flen = self.src.len();
        let Some(d) = &self.dynamic else {
            return intact::Layout::new(self.file, self.data_end(), 1 << 20);
        };
        let h = &d.header;
        let mut layout = intact::Layout::new(self.file, flen, u64::from(h.block_size));
        layout.meta(0, FOOTER_LEN, "footer copy");
        layout.meta(self.header_at, DYN_HEADER_LEN, "dynamic header");
        layout.meta(h.table_offset, u64::from(h.max_entries) * 4, "BAT");
        for &e in d.bat.iter().filter(|&&e| e != UNALLOCATED) {
            layout.meta(u64::from(e) * SECTOR, d.bitmap_len, "block bitmap");
        }
        layout.meta(flen.saturating_sub(self.tail_len), self.tail_len, "footer");
        layout
    }

    /// Where a fixed disk's data area ends: at the footer.
    fn data_end(&self) -> u64 {
        self.src.len().saturating_sub(self.tail_len)
    }

    fn size(&self) -> u64 {
        self.size
    }

    /// Map `[start, end)`, which lies inside block `index` of a dynamic or differencing disk.
    async fn map_block(
        &self,
        d: &Dynamic,
        index: usize,
        start: u64,
        end: u64,
        out: &mut Vec<Extent>,
    ) -> Result<()> {
        let entry = d.bat[index];
        if entry == UNALLOCATED {
            Extent::push_merged(out, extent(start, end - start, Mapping::Unallocated));
            return Ok(());
        }
        let bs = u64::from(d.header.block_size);
        let block_start = index as u64 * bs;
        let bitmap_at = u64::from(entry) * SECTOR;
        let data_at = bitmap_at + d.bitmap_len;
        // The bitmap bytes of the sectors in range only.
        let (first, last) = (
            (start - block_start) / SECTOR,
            (end - 1 - block_start) / SECTOR,
        );
        let (b0, b1) = (first / 8, last / 8 + 1);
        if bitmap_at + b1 > self.src.len() {
            // The block lies past the end: mapped for the integrity walk to count.
            let at = data_at + (start - block_start);
            intact::push_past_end(out, self.file, start, end, at);
            return Ok(());
        }
        let bits = read_vec(&*self.src, bitmap_at + b0, b1 - b0, "VHD sector bitmap").await?;
        let mut pos = start;
        while pos < end {
            let sector = (pos - block_start) / SECTOR;
            let bit = sector - b0 * 8;
            let set = bits[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
            let next = (block_start + (sector + 1) * SECTOR).min(end);
            let mapping = if set {
                Mapping::Data {
                    file: self.file,
                    offset: data_at + (pos - block_start),
                }
            } else {
                Mapping::Unallocated
            };
            Extent::push_merged(out, extent(pos, next - pos, mapping));
            pos = next;
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Image for Vhd {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Vhd, self.size(), self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let Some(d) = &self.dynamic else {
            // Fixed: the data area is the disk (sparse holes read as zeros, as for raw). A data
            // area shorter than the disk is mapped on past its end, for the walk to count.
            let inside = self.data_end().clamp(start, end);
            let mut out = map_plain(self.file, &*self.src, start, inside - start).await;
            if inside < end {
                intact::push_past_end(&mut out, self.file, inside, end, inside);
            }
            return Ok(out);
        };
        let bs = u64::from(d.header.block_size);
        let mut out = vec![];
        for (index, pos, block_end) in blocks(start, end, bs) {
            self.map_block(d, index as usize, pos, block_end, &mut out)
                .await?;
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        match &self.parent {
            None => Backing::None,
            Some(p) => backing_of(&p.name, p.image.as_deref()),
        }
    }

    fn details(&self) -> serde_json::Value {
        let f = &self.footer;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("disk-type", f.disk_type.name().into());
        put("uuid", uuid(f.uuid).into());
        put("creator", four_cc(&f.creator_app).into());
        put(
            "creator-version",
            format!("{}.{}", f.creator_version >> 16, f.creator_version & 0xffff).into(),
        );
        put("creator-os", four_cc(&f.creator_os).into());
        put("original-size", f.original_size.into());
        put("current-size", f.current_size.into());
        put(
            "geometry",
            json!({"cylinders": f.cylinders, "heads": f.heads, "sectors": f.sectors}),
        );
        put("chs-size", (f.chs_sectors() * SECTOR).into());
        if f.qemu_size() != self.size {
            put("qemu-virtual-size", f.qemu_size().into());
        }
        put("saved-state", f.saved_state.into());
        if let Some(d) = &self.dynamic {
            put("block-size", d.header.block_size.into());
            put("max-table-entries", d.header.max_entries.into());
            let allocated = d.bat.iter().filter(|&&e| e != UNALLOCATED).count();
            put("allocated-blocks", allocated.into());
        }
        if let (Some(p), Some(d)) = (&self.parent, &self.dynamic) {
            put("parent", p.name.clone().into());
            put("parent-uuid", uuid(d.header.parent_uuid).into());
            put("parent-timestamp", d.header.parent_timestamp.into());
            if let Some(n) = &d.header.parent_name {
                put("parent-unicode-name", n.clone().into());
            }
            put(
                "parent-locators",
                p.locators
                    .iter()
                    .map(|(c, n)| json!({"platform": c, "name": n}))
                    .collect(),
            );
        }
        serde_json::Value::Object(m)
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
