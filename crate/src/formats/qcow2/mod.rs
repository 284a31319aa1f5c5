//! qcow2 reader: versions 2 and 3 as specified by qemu's `docs/interop/qcow2.txt`.
//!
//! Opening parses and validates the header, its extensions, the backing file reference, the
//! snapshot table and the active L1 table. `map` then reads L2 tables lazily (a few recently
//! used ones are cached) and turns each guest cluster, or subcluster with extended L2 entries,
//! into an [`Extent`]. Guest data is never read here: the copy engine does that.
//!
//! Every offset read from the file is checked (alignment, inside the file, not the header)
//! before use, and every size that drives an allocation is capped by qemu's own limits.

mod backing;
pub(crate) mod header;
pub(crate) mod layout;
mod map;
mod open;
pub(crate) mod snapshot;
#[cfg(test)]
mod tests;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::format::Format;
use crate::formats::common::bytes::be64;
use crate::formats::common::intact;
use crate::formats::common::parent::backing_of;
use crate::formats::common::table::{TableCache, Word};
use crate::image::{Backing, Basics, Image};
use crate::report::Finding;
use crate::source::{ImageSet, Source, read_vec};
use async_trait::async_trait;
use backing::{BackingFile, backing_file_name, open_backing};
use header::{Extensions, Header};
use layout::OFFSET_MASK;
use open::Problems;
use snapshot::Snapshot;
use std::rc::Rc;

/// Bytes of L2 tables kept between `map` calls (at least one table whatever the cluster size).
const L2_CACHE_BYTES: u64 = 8 << 20;
const L2_CACHE_MAX_TABLES: usize = 16;

/// Why the guest data cannot be read, kept to answer `readable()` and `map()`.
#[derive(Clone, Debug)]
enum Blocked {
    Unsupported(String),
    Truncated(String),
    Corrupt(String),
}

impl Blocked {
    fn error(&self) -> Error {
        match self {
            Blocked::Unsupported(m) => Error::unsupported(m.clone()),
            Blocked::Truncated(m) => Error::truncated(m.clone()),
            Blocked::Corrupt(m) => Error::corrupt(m.clone()),
        }
    }
}

pub struct Qcow2 {
    file: FileId,
    src: Rc<dyn Source>,
    header: Header,
    ext: Extensions,
    cluster_bits: u32,
    /// log2 of the entries per L2 table.
    l2_bits: u32,
    extended_l2: bool,
    /// Whether bit 0 of standard descriptors means "reads as zeros" (version 3 only; with
    /// extended L2 entries the bitmap says it instead).
    zero_flag: bool,
    codec: Codec,
    /// The active L1 entries that cover the virtual size (the table may be longer).
    l1: Vec<u64>,
    backing: Option<BackingFile>,
    snapshots: Vec<Snapshot>,
    findings: Vec<Finding>,
    /// The first reason the data cannot be read, if any.
    blocked: Option<Blocked>,
    /// Recently used L2 tables by host offset, most recent first.
    l2_cache: TableCache,
}

impl Qcow2 {
    /// Open file `file` of `set` as qcow2. `depth` is this image's level in a backing chain.
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let flen = src.len();
        let h = open::read_header(&*src, src.name()).await?;
        let cs = h.cluster_size();
        let extended_l2 = h.incompatible & header::INCOMPAT_EXTL2 != 0;

        // The header cluster: extensions and the backing file name live here.
        let head = read_vec(&*src, 0, flen.min(cs), "qcow2 header cluster").await?;
        let ext = header::parse_extensions(&head, u64::from(h.header_length), h.extensions_end())?;
        let backing_name = backing_file_name(&h, &head)?;
        drop(head);

        let mut p = Problems::default();
        open::check_features(&h, &ext, &mut p);
        let codec = open::compression(&h, &mut p)?;
        open::check_encryption(&h, &mut p);
        let l2_bits = h.cluster_bits - 3 - u32::from(extended_l2);
        let needed = open::l1_entries(&*src, &h, h.cluster_bits + l2_bits)?;
        open::check_refcount_table(&*src, &h)?;
        let backing = match backing_name {
            None => None,
            Some(name) => Some(open_backing(set, file, depth, name, &ext, &mut p.findings).await?),
        };
        let l1 = open::read_l1(&*src, &h, needed).await?;
        open::check_l2_tables(&l1, cs, flen, &mut p);
        let snapshots = snapshot::read_table(&*src, h.snapshots_offset, h.nb_snapshots, cs).await?;
        open::check_snapshots(&*src, &snapshots, cs, &mut p);

        let l2_cache_tables = ((L2_CACHE_BYTES / cs) as usize).clamp(1, L2_CACHE_MAX_TABLES);
        let mut me = Qcow2 {
            file,
            src,
            cluster_bits: h.cluster_bits,
            l2_bits,
            extended_l2,
            zero_flag: h.version >= 3 && !extended_l2,
            codec,
            l1,
            backing,
            snapshots,
            findings: p.findings,
            blocked: p.blocked,
            l2_cache: TableCache::new(Word::Be64, l2_cache_tables),
            header: h,
            ext,
        };
        // An external data file holds the data clusters: their offsets are not in this file.
        if me.header.incompatible & header::INCOMPAT_DATA_FILE == 0 {
            let found = intact::walk(&me, &me.layout(flen).await).await;
            match found.apply(&mut me.findings) {
                // The walk's count replaces the open-time check's first cut table.
                Some((true, m)) => match me.blocked {
                    None | Some(Blocked::Truncated(_)) => me.blocked = Some(Blocked::Truncated(m)),
                    _ => {}
                },
                Some((false, m)) => _ = me.blocked.get_or_insert(Blocked::Corrupt(m)),
                None => {}
            }
        }
        Ok(me)
    }

    /// Where the header and tables are, for the integrity walk (qcow2.txt "Header", "Host
    /// cluster management", "Cluster mapping", "Snapshots"): the header cluster, the active
    /// and snapshot L1 tables, the refcount table and blocks, the snapshot table and the L2
    /// tables, each with the guest range it maps.
    async fn layout(&self, flen: u64) -> intact::Layout {
        let h = &self.header;
        let cs = self.cluster_size();
        let mut layout = intact::Layout::new(self.file, flen, cs);
        layout.meta(0, cs, "header cluster");
        layout.meta(h.l1_table_offset, u64::from(h.l1_size) * 8, "L1 table");
        let reftable = u64::from(h.refcount_table_clusters) * cs;
        layout.meta(h.refcount_table_offset, reftable, "refcount table");
        // Bits 9-63 of a refcount table entry: the refcount block's offset.
        if let Ok(t) = read_vec(&*self.src, h.refcount_table_offset, reftable, "").await {
            for e in t.chunks_exact(8).map(|c| be64(c, 0) & !0x1ff) {
                if e != 0 {
                    layout.meta(e, cs, "refcount block");
                }
            }
        }
        if h.nb_snapshots > 0 {
            // Each entry takes at least 48 bytes (40 fixed, an ID and a name, 8-aligned).
            let least = u64::from(h.nb_snapshots) * 48;
            layout.meta(h.snapshots_offset, least, "snapshot table");
        }
        for s in &self.snapshots {
            let bytes = u64::from(s.l1_size) * 8;
            layout.meta(s.l1_table_offset, bytes, "snapshot L1 table");
        }
        let span = cs << self.l2_bits;
        for (i, &entry) in self.l1.iter().enumerate() {
            let at = entry & OFFSET_MASK;
            if at != 0 && at.is_multiple_of(cs) {
                let from = i as u64 * span;
                layout.table(self.file, (at, cs), "L2 table", (from, from + span));
            }
        }
        layout
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
}

#[async_trait(?Send)]
impl Image for Qcow2 {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Qcow2, self.header.size, self.file, &self.findings)
    }

    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        self.map_range(start, end).await
    }

    fn backing(&self) -> Backing<'_> {
        match &self.backing {
            None => Backing::None,
            Some(b) => backing_of(&b.name, b.image.as_deref()),
        }
    }

    fn details(&self) -> serde_json::Value {
        let h = &self.header;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("compat", if h.version == 2 { "0.10" } else { "1.1" }.into());
        put(
            "compression-type",
            match self.codec {
                Codec::Zstd => "zstd",
                _ => "zlib",
            }
            .into(),
        );
        put(
            "lazy-refcounts",
            (h.compatible & header::COMPAT_LAZY_REFCOUNTS != 0).into(),
        );
        put("refcount-bits", (1u64 << h.refcount_order).into());
        put(
            "corrupt",
            (h.incompatible & header::INCOMPAT_CORRUPT != 0).into(),
        );
        put("extended-l2", self.extended_l2.into());
        put("cluster-size", self.cluster_size().into());
        put(
            "dirty",
            (h.incompatible & header::INCOMPAT_DIRTY != 0).into(),
        );
        put("encrypted", (h.crypt_method != 0).into());
        match h.crypt_method {
            0 => {}
            1 => put("encryption-format", "aes".into()),
            2 => put("encryption-format", "luks".into()),
            _ => put("encryption-format", "unknown".into()),
        }
        if let Some(b) = &self.backing {
            put("backing-file", b.name.clone().into());
            if let Some(f) = &b.format {
                put("backing-file-format", f.clone().into());
            }
        }
        if h.incompatible & header::INCOMPAT_DATA_FILE != 0 {
            put(
                "data-file",
                self.ext.data_file.clone().unwrap_or_default().into(),
            );
        }
        if let Some(n) = self.ext.bitmaps {
            put("bitmap-count", n.into());
        }
        if !self.snapshots.is_empty() {
            put(
                "snapshots",
                self.snapshots.iter().map(Snapshot::to_json).collect(),
            );
        }
        serde_json::Value::Object(m)
    }

    fn readable(&self) -> Result<()> {
        match &self.blocked {
            Some(b) => Err(b.error()),
            None => Ok(()),
        }
    }
}
