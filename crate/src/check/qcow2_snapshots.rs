//! The qcow2 snapshot table as the check needs it: each snapshot's L1 table and the bytes
//! the table itself takes (qcow2.txt "Snapshots"). It walks the driver's entries but not
//! the driver's rules (alignment, total size), so an image the driver refuses is still checked.

use crate::error::{Error, Result};
use crate::formats::qcow2::snapshot::Entries;
use crate::source::Source;

pub struct SnapshotL1 {
    pub l1_table_offset: u64,
    pub l1_size: u32,
}

/// The snapshots' L1 tables and the table's length in bytes. Like qemu
/// (`qcow2_read_snapshots`), the length ends right after the last entry's name.
pub async fn read(src: &dyn Source, offset: u64, count: u32) -> Result<(Vec<SnapshotL1>, u64)> {
    let mut entries = Entries::new(src, offset, count)?;
    let mut list = Vec::with_capacity(count.min(1024) as usize);
    let mut end = offset;
    while let Some(entry) = entries.next().await? {
        list.push(SnapshotL1 {
            l1_table_offset: entry.l1_table_offset(),
            l1_size: entry.l1_size(),
        });
        end = entry.end();
    }
    if end > src.len() {
        return Err(Error::truncated(
            "the qcow2 snapshot table runs past the end of the file",
        ));
    }
    Ok((list, end - offset))
}
