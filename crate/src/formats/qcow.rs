//! qcow (version 1) reader, the predecessor of qcow2 (qemu `block/qcow.c`; there is no
//! separate spec document).
//!
//! ## On-disk layout (all fields big-endian)
//! ```text
//!  0 magic "QFI\xfb"          4 version (1)
//!  8 backing_file_offset u64 16 backing_file_size u32   20 mtime u32
//! 24 size u64 (bytes)        32 cluster_bits u8  33 l2_bits u8  34 padding u16
//! 36 crypt_method u32 (0 none, 1 AES-CBC)               40 l1_table_offset u64
//! ```
//! The header is 48 bytes. The L1 table has `ceil(size / 2^(cluster_bits + l2_bits))` entries,
//! each the file offset of an L2 table of `2^l2_bits` entries (0: unallocated). An L2 entry is
//! the file offset of a data cluster (0: unallocated, read from the backing file or as zeros),
//! or, with bit 63 set, a compressed cluster: unlike qcow2 (sector counts), qcow v1 stores the
//! exact compressed length in bytes in bits `63 - cluster_bits .. 62` and the byte offset in the
//! bits below; the data is raw deflate (no zlib wrapper) of one whole cluster.
//!
//! qemu only keeps whole 512-byte sectors of the size (`total_sectors = size / 512`), so the
//! virtual size is rounded down the same way. qemu accepts cluster_bits 9..=16 and l2_bits
//! 6..=13 (L2 tables of 512 bytes to 64 KiB), which bounds every table read here.

pub mod header;

use super::common::bytes::c_string;
use super::common::extents::{blocks, extent, push_data};
use super::common::intact;
use super::common::parent::{self, Parent, open_backing};
use super::common::scan::{problem, scan_finding};
use super::common::table::{TableCache, Word};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Backing, Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, check_range, read_vec};
use async_trait::async_trait;
use header::HEADER_LEN;
use std::rc::Rc;

const L2_CACHE_TABLES: usize = 16;

pub struct Qcow {
    file: FileId,
    src: Rc<dyn Source>,
    size: u64,
    header_size: u64,
    cluster_bits: u32,
    l2_bits: u32,
    crypt_method: u32,
    mtime: u32,
    l1_table_offset: u64,
    l1: Vec<u64>,
    backing: Option<Parent>,
    findings: Vec<Finding>,
    /// Why the data cannot be read (encryption, damaged tables), if it cannot.
    blocked: Option<(bool, String)>,
    l2_cache: TableCache,
}

impl Qcow {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let flen = src.len();
        let raw = read_vec(&*src, 0, HEADER_LEN, "qcow header").await?;
        let (h, problems) = header::parse(&raw);
        if let Some(p) = problems.first() {
            return Err(p.error());
        }
        let mtime = h.mtime.get();
        let cluster_bits = u32::from(h.cluster_bits);
        let l2_bits = u32::from(h.l2_bits);
        let crypt_method = h.crypt_method.get();
        let l1_table_offset = h.l1_table_offset.get();

        let mut findings = vec![];
        let mut blocked: Option<(bool, String)> = None;
        if crypt_method == 1 {
            let msg = "the guest data is encrypted with qcow's legacy AES-CBC (insecure; unreadable without the key)";
            findings.push(Finding::new(
                FindingCode::Encrypted,
                Severity::Critical,
                msg,
            ));
            blocked = Some((false, msg.to_string()));
        }

        let size = h.sector_size();
        let needed = h.l1_entries();

        // Backing file name: at most 1023 bytes, outside the header (checked by the parser).
        let mut header_size = HEADER_LEN;
        let backing_name = match h.backing_name() {
            Some((backing_offset, backing_len)) => {
                let raw =
                    read_vec(&*src, backing_offset, backing_len, "qcow backing file name").await?;
                header_size = header_size.max(backing_offset + backing_len);
                Some(c_string(&raw))
            }
            None => None,
        };

        if needed > 0 {
            if l1_table_offset < HEADER_LEN {
                return Err(Error::corrupt(format!(
                    "qcow L1 table at offset {l1_table_offset} overlaps the header"
                )));
            }
            check_range(&*src, l1_table_offset, needed * 8, "qcow L1 table")?;
        }

        let backing = match backing_name.filter(|n| !n.is_empty()) {
            None => None,
            Some(name) => Some(open_backing(set, file, depth, name, false, &mut findings).await?),
        };

        let l1: Vec<u64> = if needed == 0 {
            vec![]
        } else {
            read_vec(&*src, l1_table_offset, needed * 8, "qcow L1 table")
                .await?
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let l2_bytes = 8u64 << l2_bits;
        // Cheap damage check before any conversion starts: every L2 table is inside the file.
        for (i, &entry) in l1.iter().enumerate() {
            let checked = l2_table_check(entry, i, l2_bytes, flen).and_then(|table| {
                // An L2 table over the L1 table would be a loop in the table tree.
                if table.is_some()
                    && entry < l1_table_offset + needed * 8
                    && l1_table_offset < entry + l2_bytes
                {
                    return Err(Error::corrupt(format!(
                        "qcow L2 table {i} at offset {entry} overlaps the L1 table"
                    )));
                }
                Ok(())
            });
            if let Err(e) = checked {
                let found = problem(e);
                findings.push(scan_finding(&found));
                blocked.get_or_insert(found);
                break;
            }
        }

        let mut me = Qcow {
            file,
            src,
            size,
            header_size,
            cluster_bits,
            l2_bits,
            crypt_method,
            mtime,
            l1_table_offset,
            l1,
            backing,
            findings,
            blocked,
            l2_cache: TableCache::new(Word::Be64, L2_CACHE_TABLES),
        };
        let found = intact::walk(&me, &me.layout()).await;
        found.settle(&mut me.findings, &mut me.blocked);
        Ok(me)
    }

    /// Header, L1 and L2 tables (qemu `block/qcow.c`), for the integrity walk: an L2 table
    /// maps the guest span of its L1 entry.
    fn layout(&self) -> intact::Layout {
        let l2_bytes = 8u64 << self.l2_bits;
        let span = 1u64 << (self.cluster_bits + self.l2_bits);
        let mut layout = intact::Layout::new(self.file, self.src.len(), 1 << self.cluster_bits);
        layout.meta(0, self.header_size, "header");
        layout.meta(self.l1_table_offset, self.l1.len() as u64 * 8, "L1 table");
        for (i, &at) in self.l1.iter().enumerate() {
            if at >= HEADER_LEN {
                let from = i as u64 * span;
                layout.table(self.file, (at, l2_bytes), "L2 table", (from, from + span));
            }
        }
        layout
    }

    fn map_cluster(&self, pos: u64, end: u64, entry: u64, out: &mut Vec<Extent>) -> Result<()> {
        let cb = self.cluster_bits;
        let cs = 1u64 << cb;
        let cluster_start = pos & !(cs - 1);
        let flen = self.src.len();
        if entry == 0 {
            Extent::push_merged(out, extent(pos, end - pos, Mapping::Unallocated));
            return Ok(());
        }
        if entry & (1 << 63) != 0 {
            let offset = entry & ((1 << (63 - cb)) - 1);
            let len = (entry >> (63 - cb)) & (cs - 1);
            if len == 0 {
                return Err(Error::corrupt(format!(
                    "qcow compressed cluster for guest offset {cluster_start} has length 0"
                )));
            }
            self.check_host(offset, cluster_start, "compressed cluster")?;
            out.push(extent(
                pos,
                end - pos,
                Mapping::Compressed {
                    file: self.file,
                    offset,
                    len: len.min(flen.saturating_sub(offset)),
                    codec: Codec::Deflate,
                    unit: cs,
                    skip: pos - cluster_start,
                },
            ));
            return Ok(());
        }
        self.check_host(entry, cluster_start, "data cluster")?;
        if entry >= flen {
            intact::push_past_end(out, self.file, pos, end, entry + (pos - cluster_start));
            return Ok(());
        }
        push_data(
            out,
            self.file,
            flen,
            pos,
            end,
            entry + (pos - cluster_start),
        );
        Ok(())
    }

    /// A cluster's host offset must lie after the header and start inside the file.
    fn check_host(&self, host: u64, guest: u64, what: &str) -> Result<()> {
        if host < self.header_size {
            return Err(Error::corrupt(format!(
                "qcow {what} for guest offset {guest} points into the header (offset {host})"
            )));
        }
        Ok(())
    }
}

/// The L2 table offset of L1 entry `entry` must leave room for the whole table in the file.
fn l2_table_check(entry: u64, index: usize, bytes: u64, flen: u64) -> Result<Option<u64>> {
    if entry == 0 {
        return Ok(None);
    }
    if entry < HEADER_LEN {
        return Err(Error::corrupt(format!(
            "qcow L1 entry {index} points into the header (offset {entry})"
        )));
    }
    if entry.checked_add(bytes).is_none_or(|e| e > flen) {
        return Err(Error::truncated(format!(
            "qcow L2 table {index} at offset {entry} lies past the end of the file ({flen} bytes)"
        )));
    }
    Ok(Some(entry))
}

#[async_trait(?Send)]
impl Image for Qcow {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Qcow, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let cb = self.cluster_bits;
        let span_bits = cb + self.l2_bits;
        let l2_bytes = 8u64 << self.l2_bits;
        let mut out = vec![];
        for (index, pos, span_end) in blocks(start, end, 1 << span_bits) {
            let index = index as usize;
            let entry = self.l1[index];
            let Some(table_offset) = l2_table_check(entry, index, l2_bytes, self.src.len())? else {
                Extent::push_merged(&mut out, extent(pos, span_end - pos, Mapping::Unallocated));
                continue;
            };
            let table = self
                .l2_cache
                .get(&*self.src, table_offset, 1 << self.l2_bits, "qcow L2 table")
                .await?;
            for (cluster, pos, cluster_end) in blocks(pos, span_end, 1 << cb) {
                let i = (cluster & ((1 << self.l2_bits) - 1)) as usize;
                self.map_cluster(pos, cluster_end, table[i], &mut out)?;
            }
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        parent::backing(&self.backing)
    }

    fn details(&self) -> serde_json::Value {
        let mut m = serde_json::json!({
            "version": 1,
            "cluster-size": 1u64 << self.cluster_bits,
            "l2-entries": 1u64 << self.l2_bits,
            "l1-entries": self.l1.len(),
            "l1-table-offset": self.l1_table_offset,
            "mtime": self.mtime,
            "encrypted": self.crypt_method != 0,
        });
        if self.crypt_method == 1 {
            m["encryption-format"] = "aes".into();
        }
        if let Some(b) = &self.backing {
            m["backing-file"] = b.name.clone().into();
        }
        m
    }

    fn readable(&self) -> Result<()> {
        match &self.blocked {
            None => Ok(()),
            Some((true, m)) => Err(Error::truncated(m.clone())),
            Some((false, m)) if self.crypt_method != 0 => Err(Error::unsupported(m.clone())),
            Some((false, m)) => Err(Error::corrupt(m.clone())),
        }
    }
}
