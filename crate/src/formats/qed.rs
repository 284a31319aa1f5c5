//! QED (QEMU Enhanced Disk) reader: qemu `docs/interop/qed_spec.txt` and `block/qed.c`.
//!
//! ## On-disk layout (all fields little-endian)
//! ```text
//!  0 magic "QED\0"   4 cluster_size u32   8 table_size u32 (clusters)  12 header_size u32 (clusters)
//! 16 features u64   24 compat_features u64   32 autoclear_features u64
//! 40 l1_table_offset u64   48 image_size u64
//! 56 backing_filename_offset u32   60 backing_filename_size u32
//! ```
//! Spec "Field descriptions": cluster_size is a power of two in [4 KiB, 64 MiB], table_size a
//! power of two in [1, 16]; a table holds `table_size * cluster_size / 8` entries. Features:
//! 1 backing file, 2 needs a consistency check (dirty), 4 the backing file is raw (no probe);
//! unknown feature bits forbid opening. Spec "Tables": L1, L2 and data offsets are cluster
//! aligned; an L2 offset of 0 is unallocated; a data offset of 0 is unallocated (read from the
//! backing file) and 1 is a zero cluster (zeros that hide the backing file).
//!
//! QED is legacy: qemu deprecated writing it and clouds refuse it, so every image gets an
//! `convert-before-upload` Warning advising conversion.
//!
//! Tables can be huge (16 clusters of 64 MiB = 1 GiB), so only the L1 entries covering the
//! virtual size are kept and L2 tables are read in bounded chunks.

pub mod header;

use super::common::bytes::c_string;
use super::common::extents::{blocks, extent, push_data};
use super::common::intact;
use super::common::parent::{self, Parent, open_backing};
use super::common::scan::{problem, readable, scan_finding};
use super::common::table::{TableCache, Word};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::image::{Backing, Basics, Image};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, check_range, read_vec};
use async_trait::async_trait;
use header::{F_BACKING_FILE, F_BACKING_NO_PROBE, F_NEED_CHECK, HEADER_LEN};
use std::rc::Rc;

/// The L1 entries kept in memory are capped (covers far more than any real disk).
const MAX_L1_BYTES: u64 = 32 << 20;
/// L2 tables are read this many entries at a time.
const L2_CHUNK: u64 = 8192;
const L2_CACHE_CHUNKS: usize = 16;

pub struct Qed {
    file: FileId,
    src: Rc<dyn Source>,
    cluster_size: u64,
    table_size: u32,
    header_size: u32,
    features: u64,
    compat_features: u64,
    autoclear_features: u64,
    l1_table_offset: u64,
    size: u64,
    /// log2 of the entries per table.
    table_bits: u32,
    cluster_bits: u32,
    l1: Vec<u64>,
    backing: Option<Parent>,
    findings: Vec<Finding>,
    blocked: Option<(bool, String)>,
    l2_cache: TableCache,
}

impl Qed {
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let raw = read_vec(&*src, 0, HEADER_LEN, "QED header").await?;
        let (h, problems) = header::parse(&raw);
        // The backing file name is checked after the L1 table, as qemu does.
        let (backing_problems, problems): (Vec<_>, Vec<_>) =
            problems.into_iter().partition(|p| p.is_backing_name());
        if let Some(p) = problems.first() {
            return Err(p.error());
        }
        let cluster_size = u64::from(h.cluster_size.get());
        let table_size = h.table_size.get();
        let header_size = h.header_size.get();
        let features = h.features.get();
        let compat_features = h.compat_features.get();
        let autoclear_features = h.autoclear_features.get();
        let l1_table_offset = h.l1_table_offset.get();
        let size = h.image_size.get();
        let header_bytes = h.header_bytes();
        let cluster_bits = cluster_size.trailing_zeros();
        let table_bits = (u64::from(table_size) * cluster_size / 8).trailing_zeros();
        let table_bytes = u64::from(table_size) * cluster_size;
        let span_bits = cluster_bits + table_bits;
        let needed = size.div_ceil(1u64 << span_bits.min(63));
        check_table(
            &*src,
            "L1 table",
            l1_table_offset,
            table_bytes,
            cluster_size,
            header_bytes,
        )?;
        if needed * 8 > MAX_L1_BYTES {
            return Err(Error::unsupported(format!(
                "QED virtual size {size} needs {needed} L1 entries (at most {} supported)",
                MAX_L1_BYTES / 8
            )));
        }

        let mut findings = vec![Finding::new(
            FindingCode::ConvertBeforeUpload,
            Severity::Warning,
            "QED is a legacy qemu format that clouds do not accept: convert it (to qcow2 or raw)",
        )];
        if features & F_NEED_CHECK != 0 {
            findings.push(Finding::new(
                FindingCode::Dirty,
                Severity::Warning,
                "the QED image needs a consistency check (it was not closed cleanly); qemu-img check repairs it",
            ));
        }

        if let Some(p) = backing_problems.first() {
            return Err(p.error());
        }
        let backing = if features & F_BACKING_FILE != 0 {
            let off = u64::from(h.backing_filename_offset.get());
            let len = u64::from(h.backing_filename_size.get());
            let name = c_string(&read_vec(&*src, off, len, "QED backing file name").await?);
            if name.is_empty() {
                None
            } else {
                let raw = features & F_BACKING_NO_PROBE != 0;
                Some(open_backing(set, file, depth, name, raw, &mut findings).await?)
            }
        } else {
            None
        };

        let l1: Vec<u64> = read_vec(&*src, l1_table_offset, needed * 8, "QED L1 table")
            .await?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let mut blocked = None;
        for (i, &entry) in l1.iter().enumerate() {
            if entry == 0 {
                continue;
            }
            let checked = check_table(
                &*src,
                "L2 table",
                entry,
                table_bytes,
                cluster_size,
                header_bytes,
            )
            .and_then(|()| not_over_l1(entry, l1_table_offset, table_bytes));
            if let Err(e) = checked {
                let (truncated, m) = problem(e);
                let found = (truncated, format!("L1 entry {i}: {m}"));
                findings.push(scan_finding(&found));
                blocked = Some(found);
                break;
            }
        }

        let chunk_bytes = (L2_CHUNK * 8).min(table_bytes);
        let l2_cache_chunks = ((8 << 20) / chunk_bytes) as usize;
        let mut me = Qed {
            file,
            src,
            cluster_size,
            table_size,
            header_size,
            features,
            compat_features,
            autoclear_features,
            l1_table_offset,
            size,
            table_bits,
            cluster_bits,
            l1,
            backing,
            findings,
            blocked,
            l2_cache: TableCache::new(Word::Le64, l2_cache_chunks.clamp(1, L2_CACHE_CHUNKS)),
        };
        let found = intact::walk(&me, &me.layout()).await;
        found.settle(&mut me.findings, &mut me.blocked);
        Ok(me)
    }

    /// Header, L1 and L2 tables (QED spec "Table"), for the integrity walk: an L2 table maps
    /// the guest span of its L1 entry.
    fn layout(&self) -> intact::Layout {
        let table_bytes = u64::from(self.table_size) * self.cluster_size;
        let span = table_bytes / 8 * self.cluster_size;
        let mut layout = intact::Layout::new(self.file, self.src.len(), self.cluster_size);
        layout.meta(0, self.header_bytes(), "header");
        layout.meta(self.l1_table_offset, table_bytes, "L1 table");
        for (i, &at) in self.l1.iter().enumerate().filter(|(_, e)| **e != 0) {
            let from = i as u64 * span;
            layout.table(
                self.file,
                (at, table_bytes),
                "L2 table",
                (from, from + span),
            );
        }
        layout
    }

    fn header_bytes(&self) -> u64 {
        u64::from(self.header_size) * self.cluster_size
    }

    fn map_cluster(&self, pos: u64, end: u64, entry: u64, out: &mut Vec<Extent>) -> Result<()> {
        let cs = self.cluster_size;
        let cluster_start = pos & !(cs - 1);
        let mapping = match entry {
            0 => Mapping::Unallocated,
            1 => Mapping::Zero,
            host => {
                if !host.is_multiple_of(cs) || host < self.header_bytes() {
                    return Err(Error::corrupt(format!(
                        "QED data cluster for guest offset {cluster_start} has invalid offset {host} (unaligned or inside the header)"
                    )));
                }
                if host.checked_add(cs).is_none_or(|e| e > self.src.len()) {
                    // qemu refuses clusters that do not lie wholly inside the file.
                    let at = host + (pos - cluster_start);
                    intact::push_past_end(out, self.file, pos, end, at);
                    return Ok(());
                }
                push_data(
                    out,
                    self.file,
                    self.src.len(),
                    pos,
                    end,
                    host + (pos - cluster_start),
                );
                return Ok(());
            }
        };
        Extent::push_merged(out, extent(pos, end - pos, mapping));
        Ok(())
    }
}

/// A table of `bytes` bytes at `offset`: cluster aligned, after the header, inside the file.
fn check_table(
    src: &dyn Source,
    what: &str,
    offset: u64,
    bytes: u64,
    cs: u64,
    header_bytes: u64,
) -> Result<()> {
    if !offset.is_multiple_of(cs) || offset < header_bytes {
        return Err(Error::corrupt(format!(
            "QED {what} offset {offset} is unaligned or inside the header"
        )));
    }
    check_range(src, offset, bytes, &format!("QED {what}"))
}

/// An L2 table must not overlap the L1 table (a loop in the table tree). Tables are aligned
/// and of the same size, so overlapping means starting at the same offset.
fn not_over_l1(entry: u64, l1: u64, bytes: u64) -> Result<()> {
    if entry.abs_diff(l1) < bytes {
        return Err(Error::corrupt(format!(
            "QED L2 table at offset {entry} overlaps the L1 table"
        )));
    }
    Ok(())
}

#[async_trait(?Send)]
impl Image for Qed {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Qed, self.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let cb = self.cluster_bits;
        let span_bits = cb + self.table_bits;
        let table_bytes = u64::from(self.table_size) * self.cluster_size;
        let mask = (1u64 << self.table_bits) - 1;
        let chunk = L2_CHUNK.min(1 << self.table_bits);
        let mut out = vec![];
        for (index, pos, span_end) in blocks(start, end, 1 << span_bits) {
            let entry = self.l1[index as usize];
            if entry == 0 {
                Extent::push_merged(&mut out, extent(pos, span_end - pos, Mapping::Unallocated));
                continue;
            }
            check_table(
                &*self.src,
                "L2 table",
                entry,
                table_bytes,
                self.cluster_size,
                self.header_bytes(),
            )?;
            not_over_l1(entry, self.l1_table_offset, table_bytes)?;
            // The table is read `chunk` entries at a time, each chunk's clusters mapped from it.
            for (_, pos, chunk_end) in blocks(pos, span_end, chunk << cb) {
                let i = (pos >> cb) & mask;
                let chunk_start = i & !(chunk - 1);
                let table = self
                    .l2_cache
                    .get(
                        &*self.src,
                        entry + chunk_start * 8,
                        chunk as usize,
                        "QED L2 table",
                    )
                    .await?;
                for (cluster, pos, cluster_end) in blocks(pos, chunk_end, 1 << cb) {
                    let k = ((cluster & mask) - chunk_start) as usize;
                    self.map_cluster(pos, cluster_end, table[k], &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        parent::backing(&self.backing)
    }

    fn details(&self) -> serde_json::Value {
        let mut names = vec![];
        if self.features & F_BACKING_FILE != 0 {
            names.push("backing-file");
        }
        if self.features & F_NEED_CHECK != 0 {
            names.push("need-check");
        }
        if self.features & F_BACKING_NO_PROBE != 0 {
            names.push("backing-format-no-probe");
        }
        let mut m = serde_json::json!({
            "cluster-size": self.cluster_size,
            "table-size": self.table_size,
            "table-entries": 1u64 << self.table_bits,
            "header-size": self.header_size,
            "features": names,
            "compat-features": self.compat_features,
            "autoclear-features": self.autoclear_features,
            "l1-table-offset": self.l1_table_offset,
            "dirty": self.features & F_NEED_CHECK != 0,
        });
        if let Some(b) = &self.backing {
            m["backing-file"] = b.name.clone().into();
            if self.features & F_BACKING_NO_PROBE != 0 {
                m["backing-file-format"] = "raw".into();
            }
        }
        m
    }

    fn readable(&self) -> Result<()> {
        readable(&self.blocked)
    }
}
