//! Guest ranges to extents (qcow2.txt "Cluster mapping", "Extended L2 Entries",
//! "Compressed Clusters Descriptor"): L1 entry to L2 table, L2 entry to cluster or subclusters.

use super::Qcow2;
use super::layout::{FLAG_COMPRESSED, FLAG_COPIED, FLAG_ZERO, OFFSET_MASK, compressed_offset_bits};
use crate::error::{Error, Result};
use crate::extent::{Extent, Mapping};
use crate::formats::common::extents::{extent, push_data};
use crate::formats::common::intact::push_past_end;
use std::rc::Rc;

/// Extended L2 entries divide a cluster into this many subclusters.
const SUBCLUSTERS: u32 = 32;

impl Qcow2 {
    /// The extents of guest `[start, end)`, which lies inside the virtual size.
    pub(super) async fn map_range(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
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

    /// The L2 table at host offset `offset`, from the cache or the file.
    pub(super) async fn l2_table(&self, offset: u64) -> Result<Rc<[u64]>> {
        let entries = (self.cluster_size() / 8) as usize;
        self.l2_cache
            .get(&*self.src, offset, entries, "qcow2 L2 table")
            .await
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
            // Past the end of the file: mapped all the same, for the integrity walk to count
            // (reading is refused then).
            out.push(Extent {
                start: pos,
                len: end - pos,
                mapping: Mapping::Compressed {
                    file: self.file,
                    offset,
                    len: len.min(flen.saturating_sub(offset)),
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
        Ok(())
    }

    /// Guest `[pos, end)` stored from host offset `at` of the cluster at `cluster_host`. qemu
    /// writes whole clusters, but a cluster with extended L2 entries, or the last one of a
    /// file cut by a tool, can end past EOF: qemu reads zeros there, and so do we. A cluster
    /// that starts past EOF is mapped where it should be, for the integrity walk to count
    /// (reading is refused then).
    fn push_data(
        &self,
        out: &mut Vec<Extent>,
        pos: u64,
        end: u64,
        at: u64,
        cluster_host: u64,
    ) -> Result<()> {
        if cluster_host >= self.src.len() {
            push_past_end(out, self.file, pos, end, at);
            return Ok(());
        }
        push_data(out, self.file, self.src.len(), pos, end, at);
        Ok(())
    }

    fn header_pointer(&self, guest: u64) -> Error {
        Error::corrupt(format!(
            "qcow2 L2 entry for guest offset {guest} points at offset 0, the header"
        ))
    }
}

/// The host offset of the L2 table named by L1 entry `entry` (index `index`), None when the
/// whole range is unallocated.
pub(super) fn l2_table_offset(entry: u64, index: usize, cs: u64, flen: u64) -> Result<Option<u64>> {
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
