//! Sparse extents: the grain directory / grain table lookup shared by the three on-disk kinds.
//!
//! - Hosted sparse (`KDMV`, "Virtual Disk Format 5.0" section "Hosted Sparse Extent Header"):
//!   monolithicSparse, twoGbMaxExtentSparse extents, streamOptimized (compressed grains behind
//!   grain markers, the grain directory possibly in a footer at the end of the file).
//! - ESX sparse (`COWD`, vmfsSparse): 32-bit header fields, 4096 entries per grain table.
//! - Space-efficient sparse (seSparse, ESXi 6.5+; qemu `block/vmdk.c` is the only public
//!   description): 64-bit directory and table entries with a type in the top nibble.
//!
//! A grain directory (GD) entry gives the sector of a grain table (GT); a GT entry gives the
//! sector of a grain. Grain tables are read lazily into a small cache.

use super::sparse_header::{
    CowdHeader, FLAG_COMPRESSED, FLAG_MARKERS, GD_AT_END, HOSTED_FIELDS_LEN, HostedHeader,
    MARKER_EOS, MARKER_FOOTER, NEWLINE_CHECK,
};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::formats::common::bytes::{le32, le64};
use crate::formats::common::intact;
use crate::formats::common::table::{TableCache, Word};
use crate::source::{Source, read_exact, read_vec};
use serde_json::{Value, json};
use std::rc::Rc;

pub const KDMV: &[u8; 4] = b"KDMV";
pub const COWD: &[u8; 4] = b"COWD";
/// seSparse const header magic (little-endian u64).
pub const SESPARSE_MAGIC: u64 = 0xcafe_babe;
const SESPARSE_VOLATILE_MAGIC: u64 = 0xcafe_cafe;
const SESPARSE_VERSION: u64 = 0x0000_0002_0000_0001;

/// Header flags (hosted sparse).
const FLAG_NL_DETECT: u32 = 1;
const FLAG_RGD: u32 = 1 << 1;
const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// A grain table entry of 1 means "reads as zeros" when the zeroed-grain flag is set.
const GTE_ZEROED: u64 = 1;
/// Grain marker: LBA (8 bytes) and compressed size (4 bytes) before the deflate stream.
const MARKER_LEN: u64 = 12;

/// qemu's bound on grain directory entries (enough for the largest VMDK of each kind).
const MAX_GD_ENTRIES: u64 = 32 << 20;
/// Largest grain accepted: 64 MiB (qemu goes to 1 GiB; VMware writes 64 KiB).
const MAX_GRAIN_SECTORS: u64 = 1 << 17;
/// Grain tables kept between `map` calls.
const GT_CACHE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hosted,
    Cowd,
    SeSparse,
}

/// One opened sparse extent file.
pub struct Sparse {
    pub file: FileId,
    src: Rc<dyn Source>,
    pub kind: Kind,
    pub version: u64,
    /// Capacity in bytes as the header says.
    pub capacity: u64,
    pub grain: u64,
    /// Entries per grain table.
    gt_entries: u64,
    /// Bytes per table entry (4, or 8 for seSparse).
    entry_size: u64,
    /// The grain directory, raw little-endian entries.
    gd: Vec<u8>,
    pub gd_offset: u64,
    pub rgd_offset: Option<u64>,
    pub compressed: bool,
    markers: bool,
    zero_grain: bool,
    /// seSparse: sectors where grain tables and grains start.
    se_tables: u64,
    se_grains: u64,
    /// The embedded descriptor text (hosted sparse), if any.
    pub descriptor: Option<String>,
    /// Whether the header came from the footer (stream written in one pass).
    pub footer: bool,
    gt_cache: TableCache,
}

fn sectors(n: u64, what: &str) -> Result<u64> {
    n.checked_mul(512)
        .ok_or_else(|| Error::corrupt(format!("VMDK {what} {n} sectors overflows")))
}

/// The largest descriptor embedded in a sparse file that we read.
const MAX_EMBEDDED_DESCRIPTOR: u64 = 1 << 20;

impl Sparse {
    /// Open `src` (file `file`) as any sparse extent kind, recognised by its magic.
    pub async fn open(file: FileId, src: Rc<dyn Source>) -> Result<Sparse> {
        let name = src.name().to_string();
        let flen = src.len();
        let head = read_vec(&*src, 0, flen.min(512), "VMDK sparse header").await?;
        if head.len() >= 8 && le64(&head, 0) == SESPARSE_MAGIC {
            return Self::open_sesparse(file, src, &head).await;
        }
        if head.len() < 4 {
            return Err(Error::truncated(format!(
                "{name} is too short for a VMDK sparse header"
            )));
        }
        match &head[..4] {
            m if m == KDMV => Self::open_hosted(file, src, head).await,
            m if m == COWD => Self::open_cowd(file, src, &head).await,
            _ => Err(Error::corrupt(format!(
                "{name} is not a VMDK sparse extent (no KDMV, COWD or seSparse magic)"
            ))),
        }
    }

    async fn open_hosted(file: FileId, src: Rc<dyn Source>, head: Vec<u8>) -> Result<Sparse> {
        let flen = src.len();
        if head.len() < HOSTED_FIELDS_LEN {
            return Err(Error::truncated(format!(
                "VMDK sparse header of {} is cut short ({flen} bytes)",
                src.name()
            )));
        }
        let mut h = head;
        let mut footer = false;
        // Descriptor location comes from the start-of-file header in every case.
        let first = HostedHeader::parse(&h);
        let desc_offset = first.descriptor_offset.get();
        let desc_size = first.descriptor_size.get();
        if first.gd_offset.get() == GD_AT_END {
            // The footer: marker sector (type 3), header copy, end-of-stream marker.
            let at = flen.checked_sub(1536).ok_or_else(|| {
                Error::truncated(format!(
                    "{}: the VMDK stream footer is missing (file too short)",
                    src.name()
                ))
            })?;
            let f = read_vec(&*src, at, 1536, "VMDK stream footer").await?;
            let ok = le32(&f, 8) == 0
                && le32(&f, 12) == MARKER_FOOTER
                && &f[512..516] == KDMV
                && le64(&f, 1024) == 0
                && le32(&f, 1032) == 0
                && le32(&f, 1036) == MARKER_EOS;
            if !ok {
                return Err(Error::corrupt(format!(
                    "{}: the grain directory is at the end of the stream but the footer is invalid",
                    src.name()
                )));
            }
            h = f[512..1024].to_vec();
            footer = true;
        }
        let header = HostedHeader::parse(&h);
        let version = u64::from(header.version.get());
        let flags = header.flags.get();
        let capacity_sectors = header.capacity.get();
        let grain_sectors = header.grain_size.get();
        let gt_entries = u64::from(header.num_gtes_per_gt.get());
        let rgd = header.rgd_offset.get();
        let gd = header.gd_offset.get();
        let compress = header.compress_algorithm.get();
        if !(1..=3).contains(&version) {
            return Err(Error::unsupported(format!(
                "VMDK sparse version {version} (1 to 3 exist)"
            )));
        }
        if flags & FLAG_NL_DETECT != 0 && &header.newline_check != NEWLINE_CHECK {
            return Err(Error::corrupt(
                "the VMDK newline check bytes are altered: the file went through a text-mode transfer",
            ));
        }
        if gd == GD_AT_END {
            return Err(Error::corrupt(
                "the VMDK footer also puts the grain directory at the end",
            ));
        }
        let compressed = flags & FLAG_COMPRESSED != 0 || compress != 0;
        if compressed && compress != 1 {
            return Err(Error::unsupported(format!(
                "VMDK compression algorithm {compress} (only 1, deflate, exists)"
            )));
        }
        let descriptor = if desc_offset != 0 && desc_size != 0 {
            let len = sectors(desc_size, "descriptor size")?.min(MAX_EMBEDDED_DESCRIPTOR);
            let at = sectors(desc_offset, "descriptor offset")?;
            let len = len.min(flen.saturating_sub(at));
            let buf = read_vec(&*src, at, len, "VMDK embedded descriptor").await?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            (!text.trim().is_empty()).then_some(text)
        } else {
            None
        };
        let mut s = Sparse {
            file,
            src,
            kind: Kind::Hosted,
            version,
            capacity: sectors(capacity_sectors, "capacity")?,
            grain: 0,
            gt_entries,
            entry_size: 4,
            gd: vec![],
            gd_offset: 0,
            rgd_offset: (flags & FLAG_RGD != 0 && rgd != 0).then_some(rgd),
            compressed,
            markers: flags & FLAG_MARKERS != 0,
            zero_grain: flags & FLAG_ZERO_GRAIN != 0,
            se_tables: 0,
            se_grains: 0,
            descriptor,
            footer,
            gt_cache: TableCache::new(Word::Le32, GT_CACHE),
        };
        if gt_entries == 0 || gt_entries > 512 {
            return Err(Error::corrupt(format!(
                "VMDK grain tables of {gt_entries} entries (1 to 512 allowed)"
            )));
        }
        s.set_grain(grain_sectors)?;
        s.load_gd(gd).await?;
        Ok(s)
    }

    async fn open_cowd(file: FileId, src: Rc<dyn Source>, h: &[u8]) -> Result<Sparse> {
        if h.len() < 32 {
            return Err(Error::truncated(format!(
                "VMDK COWD header of {} is cut short",
                src.name()
            )));
        }
        let header = CowdHeader::parse(h);
        let version = u64::from(header.version.get());
        if version != 1 {
            return Err(Error::unsupported(format!(
                "VMDK COWD version {version} (only 1 exists)"
            )));
        }
        let capacity = u64::from(header.disk_sectors.get()) * 512;
        let grain_sectors = u64::from(header.granularity.get());
        let gd = u64::from(header.gd_offset.get());
        let gd_entries = u64::from(header.gd_entries.get());
        let mut s = Sparse {
            file,
            src,
            kind: Kind::Cowd,
            version,
            capacity,
            grain: 0,
            gt_entries: 4096,
            entry_size: 4,
            gd: vec![],
            gd_offset: 0,
            rgd_offset: None,
            compressed: false,
            markers: false,
            zero_grain: false,
            se_tables: 0,
            se_grains: 0,
            descriptor: None,
            footer: false,
            gt_cache: TableCache::new(Word::Le32, GT_CACHE),
        };
        s.set_grain(grain_sectors)?;
        s.load_gd_sized(gd, gd_entries).await?;
        Ok(s)
    }

    async fn open_sesparse(file: FileId, src: Rc<dyn Source>, h: &[u8]) -> Result<Sparse> {
        if h.len() < 512 {
            return Err(Error::truncated(format!(
                "seSparse header of {} is cut short",
                src.name()
            )));
        }
        let f = |i: usize| le64(h, i * 8);
        let (version, capacity, grain, gt_size, flags) = (f(1), f(2), f(3), f(4), f(5));
        if version != SESPARSE_VERSION {
            return Err(Error::unsupported(format!(
                "seSparse version {version:#x} (only 0x200000001 is known)"
            )));
        }
        if grain != 8 || gt_size != 64 {
            return Err(Error::unsupported(format!(
                "seSparse grain size {grain} / grain table size {gt_size} sectors (8 / 64 are known)"
            )));
        }
        if flags != 0 || (6..10).any(|i| f(i) != 0) || h[208..512].iter().any(|&b| b != 0) {
            return Err(Error::unsupported(
                "seSparse header with unknown flags or reserved fields set",
            ));
        }
        // The volatile header: a journal that needs replaying means unflushed metadata.
        let vol_at = sectors(f(10), "seSparse volatile header offset")?;
        let mut vol = [0u8; 512];
        read_exact(&*src, vol_at, &mut vol, "seSparse volatile header").await?;
        if le64(&vol, 0) != SESPARSE_VOLATILE_MAGIC {
            return Err(Error::corrupt("seSparse volatile header magic is wrong"));
        }
        if le64(&vol, 24) != 0 {
            return Err(Error::unsupported(
                "seSparse journal needs replaying (the image was not closed cleanly)",
            ));
        }
        let mut s = Sparse {
            file,
            src,
            kind: Kind::SeSparse,
            version: 2,
            capacity: sectors(capacity, "seSparse capacity")?,
            grain: 0,
            gt_entries: 4096,
            entry_size: 8,
            gd: vec![],
            gd_offset: 0,
            rgd_offset: None,
            compressed: false,
            markers: false,
            zero_grain: true,
            se_tables: f(18),
            se_grains: f(24),
            descriptor: None,
            footer: false,
            gt_cache: TableCache::new(Word::Le64, GT_CACHE),
        };
        s.set_grain(grain)?;
        let gd_entries = f(17)
            .checked_mul(512 / 8)
            .ok_or_else(|| Error::corrupt("seSparse grain directory size overflows"))?;
        s.load_gd_sized(f(16), gd_entries).await?;
        Ok(s)
    }

    fn set_grain(&mut self, grain_sectors: u64) -> Result<()> {
        if grain_sectors == 0 || grain_sectors > MAX_GRAIN_SECTORS {
            return Err(Error::corrupt(format!(
                "VMDK grain size of {grain_sectors} sectors (1 to {MAX_GRAIN_SECTORS} accepted)"
            )));
        }
        self.grain = grain_sectors * 512;
        Ok(())
    }

    /// Bytes of grain directory held in memory.
    /// The length of the extent file.
    pub fn file_len(&self) -> u64 {
        self.src.len()
    }

    pub fn gd_bytes(&self) -> u64 {
        self.gd.len() as u64
    }

    /// Bytes of guest data one grain table covers.
    fn gt_span(&self) -> u64 {
        self.grain * self.gt_entries
    }

    /// Read the grain directory at sector `gd` with as many entries as the capacity needs.
    async fn load_gd(&mut self, gd: u64) -> Result<()> {
        let needed = self.capacity.div_ceil(self.gt_span());
        self.load_gd_sized(gd, needed).await
    }

    async fn load_gd_sized(&mut self, gd: u64, entries: u64) -> Result<()> {
        let needed = self.capacity.div_ceil(self.gt_span());
        if needed > MAX_GD_ENTRIES || entries > MAX_GD_ENTRIES {
            return Err(Error::unsupported(format!(
                "VMDK grain directory of {} entries (at most {MAX_GD_ENTRIES})",
                needed.max(entries)
            )));
        }
        // Only the entries covering the capacity are read; a shorter directory makes the
        // rest of the extent unreadable (checked in `map`).
        let keep = needed.min(entries);
        self.gd_offset = sectors(gd, "grain directory offset")?;
        if keep > 0 && gd == 0 {
            return Err(Error::corrupt(format!(
                "{}: the VMDK grain directory offset is 0",
                self.src.name()
            )));
        }
        self.gd = read_vec(
            &*self.src,
            self.gd_offset,
            keep * self.entry_size,
            "VMDK grain directory",
        )
        .await?;
        // Grain tables past the end of the file are counted by the integrity walk
        // (`Sparse::declare`); a damaged directory entry fails here.
        for i in 0..keep {
            self.gt_offset(i)?;
        }
        Ok(())
    }

    /// Byte offset of grain table `i`, None when it is not allocated.
    fn gt_offset(&self, i: u64) -> Result<Option<u64>> {
        let Some(at) = i.checked_mul(self.entry_size).map(|a| a as usize) else {
            return Err(Error::corrupt("grain directory index overflows"));
        };
        if at + self.entry_size as usize > self.gd.len() {
            return Err(Error::corrupt(format!(
                "{}: the VMDK grain directory has no entry {i} (it is too short for the capacity)",
                self.src.name()
            )));
        }
        if self.kind == Kind::SeSparse {
            let e = le64(&self.gd, at);
            if e == 0 {
                return Ok(None);
            }
            if e & 0xffff_ffff_0000_0000 != 0x1000_0000_0000_0000 {
                return Err(Error::corrupt(format!(
                    "seSparse grain directory entry {i} is invalid ({e:#x})"
                )));
            }
            let index = e & 0xffff_ffff;
            let sector = index
                .checked_mul(64)
                .and_then(|x| x.checked_add(self.se_tables))
                .ok_or_else(|| Error::corrupt("seSparse grain table offset overflows"))?;
            return Ok(Some(sectors(sector, "grain table offset")?));
        }
        let e = u64::from(le32(&self.gd, at));
        Ok((e != 0).then(|| e * 512))
    }

    async fn gt(&self, offset: u64) -> Result<Rc<[u64]>> {
        let entries = self.gt_entries as usize;
        self.gt_cache
            .get(&*self.src, offset, entries, "VMDK grain table")
            .await
    }

    /// What a grain table entry says: None = unallocated, Some(None) = zero,
    /// Some(Some(offset)) = stored at that byte offset.
    fn grain_at(&self, e: u64, guest: u64) -> Result<Option<Option<u64>>> {
        if self.kind == Kind::SeSparse {
            return match e >> 60 {
                0 if e == 0 => Ok(None),
                1 | 2 => Ok(Some(None)),
                3 => {
                    let index =
                        ((e & 0x0fff_0000_0000_0000) >> 48) | ((e & 0x0000_ffff_ffff_ffff) << 12);
                    let sector = index
                        .checked_mul(self.grain / 512)
                        .and_then(|x| x.checked_add(self.se_grains))
                        .ok_or_else(|| Error::corrupt("seSparse grain offset overflows"))?;
                    Ok(Some(Some(sectors(sector, "grain offset")?)))
                }
                _ => Err(Error::corrupt(format!(
                    "seSparse grain table entry for guest offset {guest} is invalid ({e:#x})"
                ))),
            };
        }
        if e == 0 {
            return Ok(None);
        }
        if e == GTE_ZEROED && self.zero_grain {
            return Ok(Some(None));
        }
        Ok(Some(Some(e * 512)))
    }

    /// Extents for `[start, start + len)` of this extent's own address space (0 = its first
    /// byte), shifted by `base` into the guest. The range lies inside the capacity.
    pub async fn map(&self, start: u64, len: u64, base: u64, out: &mut Vec<Extent>) -> Result<()> {
        let end = start + len;
        let span = self.gt_span();
        let flen = self.src.len();
        let mut pos = start;
        while pos < end {
            let gi = pos / span;
            let table_end = ((gi + 1) * span).min(end);
            let Some(gt_at) = self.gt_offset(gi)? else {
                push(out, base + pos, table_end - pos, Mapping::Unallocated);
                pos = table_end;
                continue;
            };
            let table = self.gt(gt_at).await?;
            // For compressed grains: the sorted grain offsets of this table bound each
            // stream's length by the start of the next grain.
            let sorted: Vec<u64> = if self.compressed {
                let mut v: Vec<u64> = table.iter().copied().filter(|&e| e > 1).collect();
                v.sort_unstable();
                v.dedup();
                v
            } else {
                vec![]
            };
            while pos < table_end {
                let gstart = pos / self.grain * self.grain;
                let gend = (gstart + self.grain).min(table_end);
                let ti = ((pos - gi * span) / self.grain) as usize;
                let e = table[ti];
                let n = gend - pos;
                match self.grain_at(e, pos)? {
                    None => push(out, base + pos, n, Mapping::Unallocated),
                    Some(None) => push(out, base + pos, n, Mapping::Zero),
                    Some(Some(at)) if self.compressed => {
                        let data = if self.markers { at + MARKER_LEN } else { at };
                        // A grain past the end is mapped all the same (with no bytes), for
                        // the integrity walk to count.
                        let past = data >= flen;
                        let next = sorted
                            .get(sorted.partition_point(|&o| o <= e))
                            .map_or(u64::MAX, |&o| o * 512);
                        let clen = next
                            .saturating_sub(data)
                            .min(2 * self.grain)
                            .min(flen.saturating_sub(data));
                        if clen == 0 && !past {
                            return Err(Error::corrupt(format!(
                                "VMDK compressed grain for guest offset {pos} has no data"
                            )));
                        }
                        // qemu compresses a short last grain from only the bytes inside
                        // the capacity: inflate no more than those.
                        let unit = self.grain.min(self.capacity - gstart);
                        out.push(Extent {
                            start: base + pos,
                            len: n,
                            mapping: Mapping::Compressed {
                                file: self.file,
                                offset: data,
                                len: clen,
                                codec: Codec::Zlib,
                                unit,
                                skip: pos - gstart,
                            },
                        });
                    }
                    Some(Some(at)) => {
                        // A grain past the end is mapped all the same, for the integrity walk
                        // to count (reading is refused then).
                        let from = at + (pos - gstart);
                        push(
                            out,
                            base + pos,
                            n,
                            Mapping::Data {
                                file: self.file,
                                offset: from,
                            },
                        );
                    }
                }
                pos = gend;
            }
        }
        Ok(())
    }

    /// Declare this extent's header, grain directories and grain tables (VMware "Virtual
    /// Disk Format 1.1", hosted sparse extents) for the integrity walk; `base` is where the
    /// extent starts in the guest.
    pub fn declare(&self, layout: &mut intact::Layout, base: u64) {
        let f = self.file;
        layout.meta_in(f, 0, 512, "sparse header");
        if !self.footer && self.gd_offset != GD_AT_END {
            layout.meta_in(f, self.gd_offset, self.gd_bytes(), "grain directory");
        }
        // The header gives the redundant directory's offset in sectors.
        if let Some(rgd) = self.rgd_offset.and_then(|s| s.checked_mul(512)) {
            layout.meta_in(f, rgd, self.gd_bytes(), "redundant grain directory");
        }
        let span = self.gt_span();
        let bytes = self.gt_entries * self.entry_size;
        for gi in 0..self.gd_bytes() / self.entry_size {
            if let Ok(Some(at)) = self.gt_offset(gi) {
                let from = base + gi * span;
                let to = (from + span).min(base + self.capacity);
                layout.table(f, (at, bytes), "grain table", (from, to));
            }
        }
    }

    pub fn details(&self) -> Value {
        let mut v = json!({
            "kind": match self.kind {
                Kind::Hosted => "hosted-sparse",
                Kind::Cowd => "cowd",
                Kind::SeSparse => "sesparse",
            },
            "version": self.version,
            "capacity": self.capacity,
            "grain-size": self.grain,
            "grain-table-entries": self.gt_entries,
            "compressed": self.compressed,
        });
        if self.kind == Kind::Hosted {
            v["zeroed-grain"] = json!(self.zero_grain);
            v["markers"] = json!(self.markers);
            v["redundant-gd"] = json!(self.rgd_offset.is_some());
            v["footer"] = json!(self.footer);
        }
        v
    }
}

fn push(out: &mut Vec<Extent>, start: u64, len: u64, mapping: Mapping) {
    Extent::push_merged(
        out,
        Extent {
            start,
            len,
            mapping,
        },
    );
}
