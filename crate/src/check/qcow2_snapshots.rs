//! The qcow2 snapshot table as the check needs it: each snapshot's L1 table and the bytes
//! the table itself takes (qcow2.txt "Snapshots").

use crate::error::{Error, Result};
use crate::formats::common::bytes::{be16, be32, be64};
use crate::formats::qcow2::snapshot::{MAX_EXTRA_DATA, MAX_SNAPSHOTS};
use crate::source::Source;
use crate::source::read_exact;

/// The fixed part of an entry.
const ENTRY_HEAD: u64 = 40;

pub struct SnapshotL1 {
    pub l1_table_offset: u64,
    pub l1_size: u32,
}

/// The snapshots' L1 tables and the table's length in bytes. Like qemu
/// (`qcow2_read_snapshots`), each entry starts 8-aligned and the length ends right after
/// the last entry's name.
pub async fn read(src: &dyn Source, offset: u64, count: u32) -> Result<(Vec<SnapshotL1>, u64)> {
    if count == 0 {
        return Ok((vec![], 0));
    }
    if count > MAX_SNAPSHOTS {
        return Err(Error::corrupt(format!(
            "qcow2 header lists {count} snapshots (at most {MAX_SNAPSHOTS})"
        )));
    }
    let mut list = Vec::with_capacity(count.min(1024) as usize);
    let mut pos = offset;
    for i in 0..count {
        pos = pos.div_ceil(8) * 8;
        let mut head = [0u8; ENTRY_HEAD as usize];
        read_exact(src, pos, &mut head, "qcow2 snapshot table entry").await?;
        let extra = u64::from(be32(&head, 36));
        if extra > u64::from(MAX_EXTRA_DATA) {
            return Err(Error::corrupt(format!(
                "qcow2 snapshot {i} has {extra} bytes of extra data (at most {MAX_EXTRA_DATA})"
            )));
        }
        let body = extra + u64::from(be16(&head, 12)) + u64::from(be16(&head, 14));
        pos += ENTRY_HEAD + body;
        list.push(SnapshotL1 {
            l1_table_offset: be64(&head, 0),
            l1_size: be32(&head, 8),
        });
    }
    if pos > src.len() {
        return Err(Error::truncated(
            "the qcow2 snapshot table runs past the end of the file",
        ));
    }
    Ok((list, pos - offset))
}
