//! Byte edits of a qcow2 file for the damage tests: find an L2 entry or a refcount entry
//! (16-bit refcounts, the default) by walking the tables as qcow2.txt lays them out.

use std::path::Path;

pub struct Qcow2File {
    pub bytes: Vec<u8>,
}

impl Qcow2File {
    pub fn read(file: &Path) -> Self {
        Qcow2File {
            bytes: std::fs::read(file).unwrap(),
        }
    }

    pub fn write(&self, file: &Path) {
        std::fs::write(file, &self.bytes).unwrap();
    }

    pub fn be64(&self, at: u64) -> u64 {
        let at = at as usize;
        u64::from_be_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }

    pub fn set_be64(&mut self, at: u64, v: u64) {
        let at = at as usize;
        self.bytes[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }

    pub fn cluster_bits(&self) -> u32 {
        self.be32(20)
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits()
    }

    /// Where the active L2 entry of guest cluster `n` is stored (its L2 table must exist).
    pub fn l2_entry_at(&self, n: u64) -> u64 {
        let per_table = self.cluster_size() / 8;
        let l1 = self.be64(40) + (n / per_table) * 8;
        let l2 = self.be64(l1) & 0x00ff_ffff_ffff_fe00;
        assert_ne!(l2, 0, "guest cluster {n} has no L2 table");
        l2 + (n % per_table) * 8
    }

    /// The host cluster offset of guest cluster `n` (a standard entry).
    pub fn host_offset(&self, n: u64) -> u64 {
        self.be64(self.l2_entry_at(n)) & 0x00ff_ffff_ffff_fe00
    }

    /// Where the 16-bit refcount of host cluster `cluster` is stored (its block must exist).
    pub fn refcount_at(&self, cluster: u64) -> u64 {
        let per_block = self.cluster_size() / 2;
        let table = self.be64(48);
        let block = self.be64(table + (cluster / per_block) * 8);
        assert_ne!(block, 0, "no refcount block covers cluster {cluster}");
        block + (cluster % per_block) * 2
    }

    pub fn set_refcount(&mut self, cluster: u64, n: u16) {
        let at = self.refcount_at(cluster) as usize;
        self.bytes[at..at + 2].copy_from_slice(&n.to_be_bytes());
    }
}
