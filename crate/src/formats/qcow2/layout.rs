//! On-disk constants of qcow2 (qemu docs/interop/qcow2.txt), shared by the reader and the writer.

pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Bits 9-55 of L1 and standard L2 entries: a host offset ("Cluster mapping").
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Standard cluster offsets must stay below this (bits 9-55).
pub const MAX_OFFSET: u64 = 1 << 56;
/// Bit 63 of L1/L2 entries: refcount exactly one. With offset 0 it would name the header cluster.
pub const FLAG_COPIED: u64 = 1 << 63;
/// Bit 62 of an L2 entry: compressed cluster.
pub const FLAG_COMPRESSED: u64 = 1 << 62;
/// Bit 0 of a standard cluster descriptor: reads as zeros (version 3 without extended L2).
pub const FLAG_ZERO: u64 = 1;
/// qemu's limit on the L1 table (block/qcow2.h QCOW_MAX_L1_SIZE): 32 MiB of entries.
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// qemu's limit on the refcount table (QCOW_MAX_REFTABLE_SIZE).
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// "Compressed Clusters Descriptor": the host offset takes bits 0..x-1 and the count of
/// 512-byte sectors after the first takes bits x..61, where x = 62 - (cluster_bits - 8).
pub fn compressed_offset_bits(cluster_bits: u32) -> u32 {
    62 - (cluster_bits - 8)
}
