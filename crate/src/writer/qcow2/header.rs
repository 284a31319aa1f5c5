//! The qcow2 header, written last (spec: "Header").

use super::Qcow2Writer;
use crate::codec::Codec;
use crate::formats::qcow2::layout::MAGIC;
use crate::writer::Qcow2Compat;

/// 16-bit refcounts (the only width version 2 knows).
const REFCOUNT_ORDER: u32 = 4;
/// Header length of version 3 with the compression type byte, padded to 8 (spec: "Header").
const V3_HEADER_LEN: usize = 112;
const V2_HEADER_LEN: usize = 72;

impl Qcow2Writer {
    pub(super) fn header(&self, l1_at: u64, reftable_at: u64, reftable_clusters: u64) -> Vec<u8> {
        let v3 = self.compat == Qcow2Compat::V1_1;
        let zstd = self.codec == Some(Codec::Zstd);
        let mut h = Vec::with_capacity(V3_HEADER_LEN);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&(if v3 { 3u32 } else { 2 }).to_be_bytes());
        h.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset
        h.extend_from_slice(&0u32.to_be_bytes()); // backing_file_size
        h.extend_from_slice(&self.cluster_bits.to_be_bytes());
        // qemu drops a partial last sector of a qcow2 disk (and reads a raw file's as a whole
        // sector, zero-padded): round up like `qemu-img convert`.
        h.extend_from_slice(&self.size.next_multiple_of(512).to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
        h.extend_from_slice(&(self.l1.len() as u32).to_be_bytes());
        h.extend_from_slice(&l1_at.to_be_bytes());
        h.extend_from_slice(&reftable_at.to_be_bytes());
        h.extend_from_slice(&(reftable_clusters as u32).to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
        h.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
        debug_assert_eq!(h.len(), V2_HEADER_LEN);
        if v3 {
            // Incompatible bit 3: a compression type other than zlib.
            let incompatible: u64 = if zstd { 1 << 3 } else { 0 };
            h.extend_from_slice(&incompatible.to_be_bytes());
            h.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
            h.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
            h.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
            h.extend_from_slice(&(V3_HEADER_LEN as u32).to_be_bytes());
            h.push(u8::from(zstd)); // compression_type: 0 zlib, 1 zstd
            h.resize(V3_HEADER_LEN, 0);
        }
        // What follows is zero: the end of the (empty) header extension area.
        h
    }
}
