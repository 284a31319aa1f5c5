//! qcow2 reader: versions 2 and 3 as specified by qemu's `docs/interop/qcow2.txt`.
//!
//! Opening parses and validates the header, its extensions, the backing file reference, the
//! snapshot table and the active L1 table. `map` then reads L2 tables lazily (a few recently
//! used ones are cached) and turns each guest cluster, or subcluster with extended L2 entries,
//! into an [`Extent`]. Guest data is never read here: the copy engine does that.
//!
//! Every offset read from the file is checked (alignment, inside the file, not the header)
//! before use, and every size that drives an allocation is capped by qemu's own limits.

mod header;
pub(crate) mod layout;
mod snapshot;

use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::image::{Backing, Image};
use crate::probe::Format;
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, check_range, is_plain_name, read_vec};
use async_trait::async_trait;
use header::{Extensions, Header, shown};
use layout::{
    FLAG_COMPRESSED, FLAG_COPIED, FLAG_ZERO, MAX_L1_BYTES, MAX_REFTABLE_BYTES, OFFSET_MASK,
    compressed_offset_bits,
};
use snapshot::Snapshot;
use std::cell::RefCell;
use std::rc::Rc;

/// Bytes of L2 tables kept between `map` calls (at least one table whatever the cluster size).
const L2_CACHE_BYTES: u64 = 8 << 20;
const L2_CACHE_MAX_TABLES: usize = 16;
/// Extended L2 entries divide a cluster into this many subclusters.
const SUBCLUSTERS: u32 = 32;

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

struct BackingFile {
    /// The name exactly as written in the image.
    name: String,
    format: Option<String>,
    /// None when the file was not supplied.
    image: Option<Box<dyn Image>>,
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
    l2_cache: RefCell<Vec<(u64, Rc<[u64]>)>>,
    l2_cache_tables: usize,
}

impl Qcow2 {
    /// Open file `file` of `set` as qcow2. `depth` is this image's level in a backing chain.
    pub async fn open(set: &ImageSet, file: FileId, depth: usize) -> Result<Self> {
        let src = set.file(file).clone();
        let name = src.name().to_string();
        let flen = src.len();

        // Header (qcow2.txt "Header").
        let prefix = read_vec(&*src, 0, flen.min(Header::PREFIX as u64), "qcow2 header").await?;
        let h = Header::parse(&prefix, &name)?;
        if h.cluster_bits < 9 {
            return Err(Error::corrupt(format!(
                "qcow2 cluster_bits {} (clusters must be at least 512 bytes)",
                h.cluster_bits
            )));
        }
        if h.cluster_bits > 21 {
            return Err(Error::unsupported(format!(
                "qcow2 cluster_bits {} (clusters larger than 2 MiB are not supported)",
                h.cluster_bits
            )));
        }
        let cs = h.cluster_size();
        if u64::from(h.header_length) > cs {
            return Err(Error::corrupt(format!(
                "qcow2 header length {} exceeds the {cs}-byte cluster",
                h.header_length
            )));
        }
        if h.refcount_order > 6 {
            return Err(Error::corrupt(format!(
                "qcow2 refcount_order {} (at most 6, i.e. 64-bit refcounts)",
                h.refcount_order
            )));
        }
        let extended_l2 = h.incompatible & header::INCOMPAT_EXTL2 != 0;
        if extended_l2 && h.cluster_bits < 14 {
            return Err(Error::corrupt(format!(
                "qcow2 extended L2 entries need clusters of at least 16 KiB, not {cs} bytes"
            )));
        }

        // The header cluster: extensions and the backing file name live here.
        let head = read_vec(&*src, 0, flen.min(cs), "qcow2 header cluster").await?;
        let ext = header::parse_extensions(&head, u64::from(h.header_length), h.extensions_end())?;
        let backing_name = backing_file_name(&h, &head)?;
        drop(head);

        let mut findings = vec![];
        let mut blocked: Option<Blocked> = None;
        let block = |blocked: &mut Option<Blocked>, b: Blocked| {
            blocked.get_or_insert(b);
        };

        // Incompatible features (qcow2.txt bytes 72-79): unknown bits forbid reading.
        let unknown = h.incompatible & !header::INCOMPAT_KNOWN;
        if unknown != 0 {
            let names: Vec<String> = (0..64)
                .filter(|b| unknown & (1 << b) != 0)
                .map(|b| match ext.incompatible_name(b) {
                    Some(n) => format!("bit {b} ({})", shown(n)),
                    None => format!("bit {b}"),
                })
                .collect();
            let msg = format!(
                "qcow2 image uses unknown incompatible features: {}",
                names.join(", ")
            );
            findings.push(Finding::new("unknown-feature", Severity::Critical, &msg));
            block(&mut blocked, Blocked::Unsupported(msg));
        }
        if h.incompatible & header::INCOMPAT_CORRUPT != 0 {
            // qemu still opens such an image read-only, so we read it too, but say so loudly.
            findings.push(Finding::new(
                "corrupt",
                Severity::Critical,
                "the qcow2 corrupt bit is set: qemu found inconsistent metadata in this image",
            ));
        }
        if h.incompatible & header::INCOMPAT_DIRTY != 0 {
            findings.push(Finding::new(
                "dirty",
                Severity::Warning,
                "the qcow2 dirty bit is set (lazy refcounts not flushed): refcounts may be stale until qemu-img check -r repairs them; the data is readable",
            ));
        }
        if h.incompatible & header::INCOMPAT_DATA_FILE != 0 {
            let what = match &ext.data_file {
                Some(n) if !n.is_empty() => format!(" {}", shown(n)),
                _ => String::new(),
            };
            let msg =
                format!("guest data is stored in an external data file{what}, not in this image");
            findings.push(Finding::new("data-file", Severity::Critical, &msg));
            block(&mut blocked, Blocked::Unsupported(msg));
        }

        // Compression type (qcow2.txt "Additional fields", byte 104).
        let has_type_bit = h.incompatible & header::INCOMPAT_COMPRESSION != 0;
        let codec = match (has_type_bit, h.compression_type) {
            (false, 0) => Codec::Deflate,
            (false, t) => {
                return Err(Error::corrupt(format!(
                    "qcow2 compression_type {t} is set without the compression type feature bit"
                )));
            }
            (true, 0) => {
                return Err(Error::corrupt(
                    "qcow2 compression type feature bit is set but compression_type is zlib or absent",
                ));
            }
            (true, 1) => Codec::Zstd,
            (true, t) => {
                let msg = format!("qcow2 compression type {t} is unknown");
                findings.push(Finding::new("unknown-feature", Severity::Critical, &msg));
                block(&mut blocked, Blocked::Unsupported(msg));
                Codec::Deflate
            }
        };

        // Encryption. Critical rather than a warning: the guest data is ciphertext, so neither
        // vmdisk nor a cloud importer can read or boot it without the key being configured.
        match h.crypt_method {
            0 => {}
            m => {
                let kind = match m {
                    1 => "AES-CBC (legacy qcow2 encryption)".to_string(),
                    2 => "LUKS".to_string(),
                    m => format!("unknown method {m}"),
                };
                let msg = format!("the guest data is encrypted with {kind}");
                findings.push(Finding::new("encrypted", Severity::Critical, &msg));
                block(&mut blocked, Blocked::Unsupported(msg));
            }
        }

        // Geometry: how many L1 entries the virtual size needs (qcow2.txt "Cluster mapping").
        let l2_bits = h.cluster_bits - 3 - u32::from(extended_l2);
        let span_bits = h.cluster_bits + l2_bits;
        let needed = h.size.div_ceil(1 << span_bits);
        let max_entries = MAX_L1_BYTES / 8;
        if needed > max_entries {
            return Err(Error::unsupported(format!(
                "qcow2 virtual size {} needs {needed} L1 entries with {cs}-byte clusters (qemu's limit is {max_entries})",
                h.size
            )));
        }
        if u64::from(h.l1_size) > max_entries {
            return Err(Error::corrupt(format!(
                "qcow2 L1 table of {} entries exceeds qemu's limit of {max_entries}",
                h.l1_size
            )));
        }
        if u64::from(h.l1_size) < needed {
            return Err(Error::corrupt(format!(
                "qcow2 L1 table has {} entries but the virtual size {} needs {needed}",
                h.l1_size, h.size
            )));
        }
        if h.l1_size > 0 {
            check_table(
                &*src,
                "L1 table",
                h.l1_table_offset,
                u64::from(h.l1_size) * 8,
                cs,
            )?;
        }
        // The refcount table is not needed to read, but qemu refuses an image without a
        // valid one, and one past the end of the file is a sure sign of truncation.
        let reftable_bytes = u64::from(h.refcount_table_clusters) * cs;
        if h.refcount_table_clusters == 0 {
            return Err(Error::corrupt("qcow2 image has no refcount table"));
        }
        if reftable_bytes > MAX_REFTABLE_BYTES {
            return Err(Error::corrupt(format!(
                "qcow2 refcount table of {reftable_bytes} bytes exceeds qemu's limit of {MAX_REFTABLE_BYTES}"
            )));
        }
        check_table(
            &*src,
            "refcount table",
            h.refcount_table_offset,
            reftable_bytes,
            cs,
        )?;

        // Backing file (qcow2.txt bytes 8-19, extension 0xe2792aca). It is opened before our own
        // tables are read, so a chain that loops fails at the depth limit having held little.
        let backing = match backing_name {
            None => None,
            Some(bname) => {
                let mut msg = format!(
                    "the image reads unallocated clusters from backing file {}",
                    shown(&bname)
                );
                if !is_plain_name(&bname) {
                    msg.push_str(&format!(
                        "; the name is a path, which would make a host read that file ({} is matched by its base name only)",
                        shown(crate::source::base_name(&bname))
                    ));
                }
                let image = match set.find(&bname) {
                    None => {
                        msg.push_str("; it was not supplied");
                        None
                    }
                    Some(id) if id == file => {
                        return Err(Error::corrupt(format!(
                            "{} names itself as its backing file",
                            shown(&name)
                        )));
                    }
                    Some(id) => {
                        // Boxed: opening the backing may open a qcow2 again (async recursion).
                        let opening =
                            Box::pin(open_backing(set, id, depth, ext.backing_format.as_deref()));
                        let (image, mismatch) = opening.await.map_err(|e| in_backing(e, &bname))?;
                        if let Some(m) = mismatch {
                            findings.push(Finding::new("backing-format", Severity::Critical, m));
                        }
                        image
                    }
                };
                findings.insert(0, Finding::new("backing-file", Severity::Critical, msg));
                Some(BackingFile {
                    name: bname,
                    format: ext.backing_format.clone(),
                    image,
                })
            }
        };

        // The active L1 table: only the entries covering the virtual size are kept.
        let l1_bytes = if needed == 0 {
            vec![]
        } else {
            read_vec(&*src, h.l1_table_offset, needed * 8, "qcow2 L1 table").await?
        };
        let l1: Vec<u64> = l1_bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        drop(l1_bytes);
        // Cheap damage check: every L2 table must be aligned and inside the file. A truncated
        // file shows up here, before a conversion starts.
        for (i, &entry) in l1.iter().enumerate() {
            if let Err(e) = l2_table_offset(entry, i, cs, flen) {
                let (code, b) = match e {
                    Error {
                        kind: ErrorKind::Truncated,
                        message: m,
                    } => ("truncated", Blocked::Truncated(m)),
                    other => ("corrupt", Blocked::Corrupt(other_message(other))),
                };
                let msg = match &b {
                    Blocked::Truncated(m) | Blocked::Corrupt(m) | Blocked::Unsupported(m) => {
                        m.clone()
                    }
                };
                findings.push(Finding::new(code, Severity::Critical, msg));
                block(&mut blocked, b);
                break;
            }
        }

        // Snapshots (qcow2.txt "Snapshots"): listed, never read.
        let snapshots = snapshot::read_table(&*src, h.snapshots_offset, h.nb_snapshots, cs).await?;
        for (i, s) in snapshots.iter().enumerate() {
            let bytes = u64::from(s.l1_size) * 8;
            let bad = if bytes > MAX_L1_BYTES {
                Some(format!(
                    "its L1 table of {} entries is too large",
                    s.l1_size
                ))
            } else if bytes > 0 && (s.l1_table_offset == 0 || !s.l1_table_offset.is_multiple_of(cs))
            {
                Some(format!(
                    "its L1 table offset {} is not cluster aligned",
                    s.l1_table_offset
                ))
            } else if check_range(&*src, s.l1_table_offset, bytes, "").is_err() {
                Some(format!(
                    "its L1 table at offset {} lies past the end of the file",
                    s.l1_table_offset
                ))
            } else {
                None
            };
            if let Some(why) = bad {
                findings.push(Finding::new(
                    "corrupt",
                    Severity::Critical,
                    format!("snapshot {i} ({}): {why}", shown(&s.name)),
                ));
            }
        }

        let l2_cache_tables = ((L2_CACHE_BYTES / cs) as usize).clamp(1, L2_CACHE_MAX_TABLES);
        Ok(Qcow2 {
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
            findings,
            blocked,
            l2_cache: RefCell::new(vec![]),
            l2_cache_tables,
            header: h,
            ext,
        })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The L2 table at host offset `offset`, from the cache or the file.
    async fn l2_table(&self, offset: u64) -> Result<Rc<[u64]>> {
        {
            let mut cache = self.l2_cache.borrow_mut();
            if let Some(i) = cache.iter().position(|(o, _)| *o == offset) {
                let hit = cache.remove(i);
                let table = hit.1.clone();
                cache.insert(0, hit);
                return Ok(table);
            }
        }
        let bytes = read_vec(&*self.src, offset, self.cluster_size(), "qcow2 L2 table").await?;
        let table: Rc<[u64]> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let mut cache = self.l2_cache.borrow_mut();
        cache.insert(0, (offset, table.clone()));
        cache.truncate(self.l2_cache_tables);
        Ok(table)
    }

    /// Append the extents of guest range `[pos, end)`, which lies inside one cluster, described
    /// by L2 entry `entry` (and `bitmap` for extended L2 entries).
    fn map_cluster(
        &self,
        pos: u64,
        end: u64,
        entry: u64,
        bitmap: u64,
        out: &mut Vec<Extent>,
    ) -> Result<()> {
        let cs = self.cluster_size();
        let cluster_start = pos & !(cs - 1);
        let flen = self.src.len();

        if entry & FLAG_COMPRESSED != 0 {
            // qcow2.txt "Compressed Clusters Descriptor": x bits of host offset, then the
            // count of 512-byte sectors after the first. The compressed
            // bytes run from the offset to the end of the last sector, which may lie past EOF
            // (the final sector of the file is often short). Subcluster bitmaps do not apply.
            let x = compressed_offset_bits(self.cluster_bits);
            let offset = entry & ((1 << x) - 1);
            let more_sectors = (entry >> x) & ((1 << (self.cluster_bits - 8)) - 1);
            let len = (more_sectors + 1) * 512 - (offset & 511);
            if offset < cs {
                return Err(Error::corrupt(format!(
                    "compressed cluster for guest offset {cluster_start} points into the header cluster (offset {offset})"
                )));
            }
            if offset >= flen {
                return Err(self.past_eof("compressed cluster", cluster_start, offset));
            }
            out.push(Extent {
                start: pos,
                len: end - pos,
                mapping: Mapping::Compressed {
                    file: self.file,
                    offset,
                    len: len.min(flen - offset),
                    codec: self.codec,
                    unit: cs,
                    skip: pos - cluster_start,
                },
            });
            return Ok(());
        }

        let host = entry & OFFSET_MASK;
        if !self.extended_l2 {
            if self.zero_flag && entry & FLAG_ZERO != 0 {
                // A zero cluster, possibly preallocated: its host offset is never read.
                Extent::push_merged(out, extent(pos, end - pos, Mapping::Zero));
                return Ok(());
            }
            if host == 0 {
                if entry & FLAG_COPIED != 0 {
                    return Err(self.header_pointer(cluster_start));
                }
                Extent::push_merged(out, extent(pos, end - pos, Mapping::Unallocated));
                return Ok(());
            }
            self.check_data_cluster(host, cluster_start)?;
            return self.push_data(out, pos, end, host + (pos - cluster_start), host);
        }

        // qcow2.txt "Extended L2 Entries": bit x allocates subcluster x, bit 32 + x zeroes it.
        let alloc = bitmap as u32;
        let zero = (bitmap >> 32) as u32;
        if alloc & zero != 0 {
            return Err(Error::corrupt(format!(
                "qcow2 subclusters of guest cluster {cluster_start} are both allocated and zero (bitmap {bitmap:#018x})"
            )));
        }
        if alloc != 0 {
            if host == 0 {
                return Err(if entry & FLAG_COPIED != 0 {
                    self.header_pointer(cluster_start)
                } else {
                    Error::corrupt(format!(
                        "qcow2 guest cluster {cluster_start} has allocated subclusters but no host cluster"
                    ))
                });
            }
            self.check_data_cluster(host, cluster_start)?;
        }
        let sub_bits = self.cluster_bits - SUBCLUSTERS.trailing_zeros();
        let mut p = pos;
        while p < end {
            let sc = ((p - cluster_start) >> sub_bits) as u32;
            let sub_end = (cluster_start + (u64::from(sc + 1) << sub_bits)).min(end);
            if alloc & (1 << sc) != 0 {
                self.push_data(out, p, sub_end, host + (p - cluster_start), host)?;
            } else {
                let m = if zero & (1 << sc) != 0 {
                    Mapping::Zero
                } else {
                    Mapping::Unallocated
                };
                Extent::push_merged(out, extent(p, sub_end - p, m));
            }
            p = sub_end;
        }
        Ok(())
    }

    fn check_data_cluster(&self, host: u64, guest: u64) -> Result<()> {
        if !host.is_multiple_of(self.cluster_size()) {
            return Err(Error::corrupt(format!(
                "qcow2 data cluster for guest offset {guest} has unaligned host offset {host}"
            )));
        }
        if host >= self.src.len() {
            return Err(self.past_eof("data cluster", guest, host));
        }
        Ok(())
    }

    /// Guest `[pos, end)` stored from host offset `at` of the cluster at `cluster_host` (which
    /// starts inside the file). qemu writes whole clusters, but a cluster with extended L2
    /// entries, or the last one of a file cut by a tool, can end past EOF: qemu reads zeros
    /// there, and so do we.
    fn push_data(
        &self,
        out: &mut Vec<Extent>,
        pos: u64,
        end: u64,
        at: u64,
        cluster_host: u64,
    ) -> Result<()> {
        debug_assert!(cluster_host < self.src.len());
        let inside = self.src.len().saturating_sub(at).min(end - pos);
        let data = Mapping::Data {
            file: self.file,
            offset: at,
        };
        Extent::push_merged(out, extent(pos, inside, data));
        Extent::push_merged(out, extent(pos + inside, end - pos - inside, Mapping::Zero));
        Ok(())
    }

    fn past_eof(&self, what: &str, guest: u64, host: u64) -> Error {
        Error::truncated(format!(
            "qcow2 {what} for guest offset {guest} is at offset {host}, past the end of {} ({} bytes)",
            self.src.name(),
            self.src.len()
        ))
    }

    fn header_pointer(&self, guest: u64) -> Error {
        Error::corrupt(format!(
            "qcow2 L2 entry for guest offset {guest} points at offset 0, the header"
        ))
    }
}

fn extent(start: u64, len: u64, mapping: Mapping) -> Extent {
    Extent {
        start,
        len,
        mapping,
    }
}

/// The backing file name (header bytes 8-19): at most 1023 bytes, inside the header cluster.
fn backing_file_name(h: &Header, head: &[u8]) -> Result<Option<String>> {
    if h.backing_file_offset == 0 {
        return Ok(None);
    }
    let (off, len) = (h.backing_file_offset, u64::from(h.backing_file_size));
    if len > header::MAX_NAME as u64 {
        return Err(Error::corrupt(format!(
            "qcow2 backing file name is {len} bytes long (at most {} allowed)",
            header::MAX_NAME
        )));
    }
    if off < u64::from(h.header_length) || off.checked_add(len).is_none_or(|e| e > h.cluster_size())
    {
        return Err(Error::corrupt(format!(
            "qcow2 backing file name at offset {off} (+{len} bytes) is not inside the header cluster"
        )));
    }
    if off + len > head.len() as u64 {
        return Err(Error::truncated(format!(
            "the file ends inside the qcow2 backing file name at offset {off}"
        )));
    }
    let name = header::c_string(&head[off as usize..(off + len) as usize]);
    // An empty name means no backing file, as for qemu.
    Ok((!name.is_empty()).then_some(name))
}

/// A table of `bytes` bytes at `offset`: cluster aligned, not the header, inside the file.
fn check_table(src: &dyn Source, what: &str, offset: u64, bytes: u64, cs: u64) -> Result<()> {
    if !offset.is_multiple_of(cs) {
        return Err(Error::corrupt(format!(
            "qcow2 {what} offset {offset} is not aligned to the {cs}-byte cluster"
        )));
    }
    if offset == 0 {
        return Err(Error::corrupt(format!(
            "qcow2 {what} is at offset 0, over the header"
        )));
    }
    check_range(src, offset, bytes, &format!("qcow2 {what}"))
}

/// The host offset of the L2 table named by L1 entry `entry` (index `index`), None when the
/// whole range is unallocated.
fn l2_table_offset(entry: u64, index: usize, cs: u64, flen: u64) -> Result<Option<u64>> {
    let offset = entry & OFFSET_MASK;
    if offset == 0 {
        if entry & FLAG_COPIED != 0 {
            return Err(Error::corrupt(format!(
                "qcow2 L1 entry {index} points at offset 0, the header"
            )));
        }
        return Ok(None);
    }
    if !offset.is_multiple_of(cs) {
        return Err(Error::corrupt(format!(
            "qcow2 L1 entry {index} has unaligned L2 table offset {offset}"
        )));
    }
    if offset.checked_add(cs).is_none_or(|end| end > flen) {
        return Err(Error::truncated(format!(
            "qcow2 L2 table {index} at offset {offset} lies past the end of the file ({flen} bytes)"
        )));
    }
    Ok(Some(offset))
}

fn other_message(e: Error) -> String {
    match e.kind {
        ErrorKind::Cancelled => "cancelled".into(),
        _ => e.message,
    }
}

/// Name the backing file in an error from opening it, once (the innermost name wins).
fn in_backing(e: Error, name: &str) -> Error {
    let wrap = |m: String| {
        if m.starts_with("backing file ") {
            m
        } else {
            format!("backing file {}: {m}", shown(name))
        }
    };
    e.map_message(wrap)
}

/// Open the supplied backing file. When the image declares a backing format that differs from
/// what the file's content says, that is reported; a declared `raw` is honoured (that is how
/// qemu reads it: the bytes of the file, header and all, are the guest disk).
async fn open_backing(
    set: &ImageSet,
    id: FileId,
    depth: usize,
    declared: Option<&str>,
) -> Result<(Option<Box<dyn Image>>, Option<String>)> {
    let (probe, image) = crate::image::open_file(set, id, depth + 1).await?;
    let detected = probe.primary().format;
    let name = set.file(id).name();
    let mismatch = declared.filter(|d| {
        let same = *d == detected.name() || (*d == "raw" && detected.is_raw_content());
        !same
    });
    let Some(declared) = mismatch else {
        return Ok((image, None));
    };
    let msg = format!(
        "the image declares its backing file {} as {} but it contains {detected}",
        shown(name),
        shown(declared)
    );
    if declared == "raw" {
        let raw = crate::formats::raw::RawImage::new(Format::Raw, id, set.file(id).clone());
        return Ok((
            Some(Box::new(raw)),
            Some(msg + "; read as raw, as qemu would"),
        ));
    }
    Ok((image, Some(msg)))
}

#[async_trait(?Send)]
impl Image for Qcow2 {
    fn format(&self) -> Format {
        Format::Qcow2
    }

    fn virtual_size(&self) -> u64 {
        self.header.size
    }

    async fn map(&self, start: u64, len: u64) -> Result<Vec<Extent>> {
        self.readable()?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.header.size)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "range {start}+{len} is outside the virtual size {}",
                    self.header.size
                ))
            })?;
        let cs = self.cluster_size();
        let span_bits = self.cluster_bits + self.l2_bits;
        let stride = if self.extended_l2 { 2 } else { 1 };
        let mut out = vec![];
        let mut pos = start;
        while pos < end {
            let index = (pos >> span_bits) as usize;
            let span_end = ((index as u64 + 1) << span_bits).min(end);
            let entry = *self.l1.get(index).ok_or_else(|| {
                Error::corrupt(format!("qcow2 guest offset {pos} lies past the L1 table"))
            })?;
            let Some(table_offset) = l2_table_offset(entry, index, cs, self.src.len())? else {
                Extent::push_merged(&mut out, extent(pos, span_end - pos, Mapping::Unallocated));
                pos = span_end;
                continue;
            };
            let table = self.l2_table(table_offset).await?;
            while pos < span_end {
                let cluster_end = ((pos >> self.cluster_bits) + 1) << self.cluster_bits;
                let i = ((pos >> self.cluster_bits) & ((1 << self.l2_bits) - 1)) as usize;
                let entry = table[i * stride];
                let bitmap = if self.extended_l2 {
                    table[i * stride + 1]
                } else {
                    0
                };
                self.map_cluster(pos, cluster_end.min(span_end), entry, bitmap, &mut out)?;
                pos = cluster_end.min(span_end);
            }
        }
        Ok(out)
    }

    fn backing(&self) -> Backing<'_> {
        match &self.backing {
            None => Backing::None,
            Some(BackingFile {
                image: Some(image), ..
            }) => Backing::Present(&**image),
            Some(b) => Backing::Missing(b.name.clone()),
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

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn files(&self) -> Vec<(FileId, &'static str)> {
        vec![(self.file, "image")]
    }

    fn readable(&self) -> Result<()> {
        match &self.blocked {
            Some(b) => Err(b.error()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
