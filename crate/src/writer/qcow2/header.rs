//! The qcow2 header, written last (spec: "Header"), laid out by the reader's on-disk struct.

use super::Qcow2Writer;
use crate::codec::Codec;
use crate::formats::qcow2::header::{INCOMPAT_COMPRESSION, Qcow2Header, V2_HEADER_LEN};
use crate::formats::qcow2::layout::MAGIC;
use crate::writer::Qcow2Compat;
use zerocopy::{FromZeros, IntoBytes};

/// 16-bit refcounts (the only width version 2 knows).
const REFCOUNT_ORDER: u32 = 4;

impl Qcow2Writer {
    pub(super) fn header(&self, l1_at: u64, reftable_at: u64, reftable_clusters: u64) -> Vec<u8> {
        let v3 = self.compat == Qcow2Compat::V1_1;
        let zstd = self.codec == Some(Codec::Zstd);
        // Everything not set here is zero: no backing file, no encryption, no snapshots.
        let mut h = Qcow2Header::new_zeroed();
        h.magic = *MAGIC;
        h.version.set(if v3 { 3 } else { 2 });
        h.cluster_bits.set(self.cluster_bits);
        // qemu drops a partial last sector of a qcow2 disk (and reads a raw file's as a whole
        // sector, zero-padded): round up like `qemu-img convert`.
        h.size.set(self.size.next_multiple_of(512));
        h.l1_size.set(self.l1.len() as u32);
        h.l1_table_offset.set(l1_at);
        h.refcount_table_offset.set(reftable_at);
        h.refcount_table_clusters.set(reftable_clusters as u32);
        if !v3 {
            return h.as_bytes()[..V2_HEADER_LEN as usize].to_vec();
        }
        // A compression type other than zlib needs its incompatible bit.
        if zstd {
            h.incompatible_features.set(INCOMPAT_COMPRESSION);
        }
        h.refcount_order.set(REFCOUNT_ORDER);
        // The whole struct: version 3 with the compression type byte, padded to 8.
        h.header_length.set(size_of::<Qcow2Header>() as u32);
        h.compression_type = u8::from(zstd); // 0 zlib, 1 zstd
        // What follows is zero: the end of the (empty) header extension area.
        h.as_bytes().to_vec()
    }
}
