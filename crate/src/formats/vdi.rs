//! VDI reader: VirtualBox dynamic, static (fixed) and differencing images with a version 1.x
//! header, as laid out in VirtualBox's `src/VBox/Storage/VDICore.h`. Behaviour compared with
//! qemu's `block/vdi.c`.
//!
//! Layout (all little-endian):
//! - a pre-header: 64 bytes of text, the signature `0xbeda107f` at 0x40, the version at 0x44
//!   (major << 16 | minor; 1.1 is what VirtualBox and qemu write);
//! - header version 1: size 0x48, image type 0x4c (1 dynamic, 2 static, reported as "fixed" like VirtualBox, 3 undo, 4 diff), flags
//!   0x50, comment 0x54, block map offset 0x154, data offset 0x158, legacy geometry 0x15c, disk
//!   size 0x170, block size 0x178, extra bytes in front of each block 0x17c, blocks 0x180,
//!   allocated blocks 0x184, UUIDs (image, modification, parent, parent modification) from
//!   0x188, and (1.1 "plus" headers) the logical geometry at 0x1c8;
//! - the block map: one u32 per guest block, the index of its data block (stored at
//!   `data offset + index * (extra + block size) + extra`), `0xffffffff` = not allocated (reads
//!   from the parent, or zeros) and `0xfffffffe` = discarded (reads as zeros).
//!
//! A differencing image names its parent by UUID only (the parent's image UUID equals this
//! image's parent UUID): every supplied VDI's header is read to find it. qemu refuses
//! differencing VDIs and block sizes other than 1 MiB; vmdisk reads both. Version 0 headers
//! (VirtualBox before 1.5) are refused, as by qemu.

pub(crate) mod header;

use super::common::bytes::{le32, mixed_endian, uuid as plain_uuid};
use super::common::parent::in_parent;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::formats::common::intact;
use crate::formats::common::scan::note_cut;
use crate::formats::common::scan::readable;
use crate::image::{Backing, Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, check_range, read_exact, read_vec};
use async_trait::async_trait;
use header::{HEADER1_END, Header, SIGNATURE, read_header};
use serde_json::json;

const UNALLOCATED: u32 = 0xffff_ffff;
const DISCARDED: u32 = 0xffff_fffe;
const MAX_BLOCK: u32 = 256 << 20;
/// Block map entries kept in memory at most (64 MiB of map).
const MAX_BLOCKS: u64 = 16 << 20;

/// VirtualBox prints UUIDs (RTUUID) with the first three fields little-endian, like GUIDs.
fn uuid(b: &[u8; 16]) -> String {
    plain_uuid(mixed_endian(*b))
}

struct Parent {
    /// The supplied file holding the parent.
    name: Option<String>,
    image: Option<Box<dyn Image>>,
}

pub struct Vdi {
    file: FileId,
    header: Header,
    /// The block map entries covering the virtual size.
    map: Vec<u32>,
    parent: Option<Parent>,
    findings: Vec<Finding>,
    /// Why the data cannot be read: (truncated, message).
    blocked: Option<(bool, String)>,
}

impl Vdi {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Vdi> {
        let src = set.file(file).clone();
        let flen = src.len();
        let h = read_header(&*src).await?;
        let mut findings = vec![];
        let mut cut = None;
        if !matches!(h.image_type, 1..=4) {
            return Err(Error::corrupt(format!(
                "unknown VDI image type {}",
                h.image_type
            )));
        }
        let bs = h.block_size;
        if !bs.is_power_of_two() || !(512..=MAX_BLOCK).contains(&bs) {
            return Err(Error::corrupt(format!(
                "VDI block size {bs} is not a power of two between 512 bytes and 256 MiB"
            )));
        }
        if h.block_extra > MAX_BLOCK {
            return Err(Error::corrupt(format!(
                "VDI extra block data of {} bytes is too large",
                h.block_extra
            )));
        }
        let bs = u64::from(bs);
        let needed = h.disk_size.div_ceil(bs);
        if u64::from(h.blocks) < needed {
            return Err(Error::corrupt(format!(
                "the VDI block map has {} entries but the {}-byte disk needs {needed}",
                h.blocks, h.disk_size
            )));
        }
        if needed > MAX_BLOCKS {
            return Err(Error::unsupported(format!(
                "the VDI needs {needed} blocks (at most {MAX_BLOCKS} supported)"
            )));
        }
        let map_at = u64::from(h.offset_blocks);
        let map_end = map_at + u64::from(h.blocks) * 4;
        if map_at < HEADER1_END || map_end > u64::from(h.offset_data) {
            return Err(Error::corrupt(format!(
                "the VDI block map ({map_at}..{map_end}) overlaps the header or the data area at {}",
                h.offset_data
            )));
        }
        let raw = read_vec(&*src, map_at, needed * 4, "VDI block map").await?;
        let map: Vec<u32> = raw.chunks_exact(4).map(|c| le32(c, 0)).collect();
        drop(raw);

        // Every allocated block lies inside the file (the part the disk uses, at least) and no
        // two guest blocks share one.
        let stride = bs + u64::from(h.block_extra);
        let mut used: Vec<u32> = vec![];
        for (i, &e) in map.iter().enumerate() {
            if e >= DISCARDED {
                continue;
            }
            let at = u64::from(h.offset_data) + u64::from(e) * stride + u64::from(h.block_extra);
            let want = bs.min(h.disk_size - i as u64 * bs);
            if check_range(&*src, at, want, "").is_err() {
                let msg = format!(
                    "VDI block {i} (data block {e} at offset {at}) lies past the end of {} ({flen} bytes): the file is truncated",
                    src.name()
                );
                note_cut(&mut findings, &mut cut, msg);
                continue;
            }
            used.push(e);
        }
        // Two guest blocks in one data block are found by the integrity walk below.
        if used.len() as u64 > u64::from(h.blocks_allocated) {
            findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the VDI header counts {} allocated blocks but its block map uses {}",
                    h.blocks_allocated,
                    used.len()
                ),
            ));
        }
        drop(used);

        let parent = if h.is_diff() {
            let opening = Box::pin(open_parent(set, file, depth, &h, &mut findings));
            Some(opening.await?)
        } else {
            None
        };
        let mut me = Vdi {
            file,
            header: h,
            map,
            parent,
            findings,
            blocked: cut.map(|m| (true, m)),
        };
        let found = intact::walk(&me, &me.layout(flen)).await;
        found.settle(&mut me.findings, &mut me.blocked);
        Ok(me)
    }

    /// The header, block map and each block's extra data in front of it (VirtualBox
    /// `VDICore.h`, `cbBlockExtra`), for the integrity walk.
    fn layout(&self, flen: u64) -> intact::Layout {
        let h = &self.header;
        let mut layout = intact::Layout::new(self.file, flen, u64::from(h.block_size));
        layout.meta(0, u64::from(h.offset_data), "header and block map");
        let extra = u64::from(h.block_extra);
        if extra > 0 {
            let stride = u64::from(h.block_size) + extra;
            for &e in self.map.iter().filter(|&&e| e < DISCARDED) {
                let at = u64::from(h.offset_data) + u64::from(e) * stride;
                layout.meta(at, extra, "block bitmap");
            }
        }
        layout
    }
}

/// Find the parent of a differencing VDI among the supplied files by its UUID.
async fn open_parent(
    set: &ImageSet,
    file: FileId,
    depth: usize,
    h: &Header,
    findings: &mut Vec<Finding>,
) -> Result<Parent> {
    let want = h.uuid_parent;
    for (i, f) in set.files().iter().enumerate() {
        if i == file.0 || f.len() < HEADER1_END {
            continue;
        }
        let mut sig = [0u8; 8];
        read_exact(&**f, 0x40, &mut sig, "VDI signature").await?;
        if u32::from_le_bytes(sig[0..4].try_into().expect("4")) != SIGNATURE {
            continue;
        }
        let Ok(ph) = read_header(&**f).await else {
            continue;
        };
        if ph.uuid_create != want {
            continue;
        }
        if ph.uuid_modify != h.uuid_parent_modify && h.uuid_parent_modify != [0; 16] {
            findings.push(Finding::new(
                FindingCode::ParentModified,
                Severity::Warning,
                format!(
                    "the parent {} was modified after this differencing image was made (modification UUID {} instead of {})",
                    f.name(),
                    uuid(&ph.uuid_modify),
                    uuid(&h.uuid_parent_modify)
                ),
            ));
        }
        if ph.disk_size != h.disk_size {
            findings.push(Finding::new(
                FindingCode::ParentMismatch,
                Severity::Warning,
                format!(
                    "the parent {} is {} bytes but this differencing image is {}",
                    f.name(),
                    ph.disk_size,
                    h.disk_size
                ),
            ));
        }
        let (_, image) = crate::image::open_file(set, FileId(i), depth + 1)
            .await
            .map_err(|e| in_parent(e, f.name()))?;
        return Ok(Parent {
            name: Some(f.name().to_string()),
            image,
        });
    }
    findings.push(Finding::new(
        FindingCode::BackingFile,
        Severity::Critical,
        format!("the parent VDI with UUID {} was not supplied", uuid(&want)),
    ));
    Ok(Parent {
        name: None,
        image: None,
    })
}

#[async_trait(?Send)]
impl Image for Vdi {
    fn basics(&self) -> Basics<'_> {
        Basics::new(
            Format::Vdi,
            self.header.disk_size,
            self.file,
            &self.findings,
        )
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let h = &self.header;
        let bs = u64::from(h.block_size);
        let stride = bs + u64::from(h.block_extra);
        let mut out = vec![];
        for (index, pos, block_end) in super::common::extents::blocks(start, end, bs) {
            let mapping = match self.map[index as usize] {
                UNALLOCATED => Mapping::Unallocated,
                DISCARDED => Mapping::Zero,
                e => Mapping::Data {
                    file: self.file,
                    offset: u64::from(h.offset_data)
                        + u64::from(e) * stride
                        + u64::from(h.block_extra)
                        + (pos - index * bs),
                },
            };
            Extent::push_merged(
                &mut out,
                Extent {
                    start: pos,
                    len: block_end - pos,
                    mapping,
                },
            );
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        match &self.parent {
            None => Backing::None,
            Some(Parent { image: Some(i), .. }) => Backing::Present(&**i),
            Some(Parent { image: None, .. }) => Backing::Missing(uuid(&self.header.uuid_parent)),
        }
    }

    fn details(&self) -> serde_json::Value {
        let h = &self.header;
        let geo = |g: &[u32; 4]| json!({"cylinders": g[0], "heads": g[1], "sectors": g[2], "sector-size": g[3]});
        let allocated = self.map.iter().filter(|&&e| e < DISCARDED).count();
        let discarded = self.map.iter().filter(|&&e| e == DISCARDED).count();
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("version", format!("{}.{}", h.version.0, h.version.1).into());
        put("image-type", h.type_name().into());
        put("flags", h.flags.into());
        if !h.comment.trim().is_empty() {
            put("comment", h.comment.trim().into());
        }
        put("block-size", h.block_size.into());
        put("block-extra", h.block_extra.into());
        put("blocks", h.blocks.into());
        put("allocated-blocks", h.blocks_allocated.into());
        put("mapped-blocks", allocated.into());
        put("discarded-blocks", discarded.into());
        put("block-map-offset", h.offset_blocks.into());
        put("data-offset", h.offset_data.into());
        put("geometry", geo(&h.geometry));
        if let Some(l) = &h.lchs {
            put("lchs-geometry", geo(l));
        }
        put("uuid", uuid(&h.uuid_create).into());
        put("modification-uuid", uuid(&h.uuid_modify).into());
        if h.is_diff() {
            put("parent-uuid", uuid(&h.uuid_parent).into());
            put(
                "parent-modification-uuid",
                uuid(&h.uuid_parent_modify).into(),
            );
            if let Some(Parent { name: Some(n), .. }) = &self.parent {
                put("parent", n.clone().into());
            }
        }
        serde_json::Value::Object(m)
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::block_on;
    use crate::source::MemSource;
    use std::rc::Rc;

    /// A 3 KiB+1 dynamic VDI with 1 KiB blocks: block 0 stored, 1 discarded, 2 absent.
    fn image() -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0x40..0x44].copy_from_slice(&SIGNATURE.to_le_bytes());
        h[0x44..0x48].copy_from_slice(&0x0001_0001u32.to_le_bytes());
        h[0x48..0x4c].copy_from_slice(&0x190u32.to_le_bytes());
        h[0x4c..0x50].copy_from_slice(&1u32.to_le_bytes());
        h[0x154..0x158].copy_from_slice(&512u32.to_le_bytes());
        h[0x158..0x15c].copy_from_slice(&1024u32.to_le_bytes());
        h[0x170..0x178].copy_from_slice(&3073u64.to_le_bytes());
        h[0x178..0x17c].copy_from_slice(&1024u32.to_le_bytes());
        h[0x180..0x184].copy_from_slice(&4u32.to_le_bytes());
        h[0x184..0x188].copy_from_slice(&1u32.to_le_bytes());
        let mut m = vec![0xffu8; 512];
        m[0..4].copy_from_slice(&0u32.to_le_bytes());
        m[4..8].copy_from_slice(&DISCARDED.to_le_bytes());
        h.extend(m);
        h.extend(vec![0x33; 1024]);
        h
    }

    fn open_bytes(data: Vec<u8>) -> Result<Vec<Extent>> {
        let set = ImageSet::new(vec![Rc::new(MemSource::new("t.vdi", data))]);
        let v = block_on(Vdi::open(&set, FileId(0), 0))?;
        let _ = v.details();
        block_on(v.map(0, v.virtual_size()))
    }

    #[test]
    fn maps_blocks() {
        let map = open_bytes(image()).unwrap();
        let got: Vec<(u64, u64, Mapping)> = map
            .into_iter()
            .map(|e| (e.start, e.len, e.mapping))
            .collect();
        let data = Mapping::Data {
            file: FileId(0),
            offset: 1024,
        };
        assert_eq!(
            got,
            [
                (0, 1024, data),
                (1024, 1024, Mapping::Zero),
                (2048, 1025, Mapping::Unallocated)
            ]
        );
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let good = image();
        for i in 0..good.len().min(1024) {
            for v in [0x00, 0xff, 0x80] {
                let mut d = good.clone();
                d[i] = v;
                let _ = open_bytes(d);
            }
        }
        for cut in [0, 0x47, 0x100, 0x1c8, 512, 1000, 1500] {
            let _ = open_bytes(good[..cut].to_vec());
        }
    }
}
