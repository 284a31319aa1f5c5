//! The internal snapshot table (qcow2.txt "Snapshots"). vmdisk lists snapshots; it reads and
//! converts the active layer only, so snapshot L1 tables are validated but never followed.

use super::header::c_string;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{be16, be32, be64};
use crate::source::{Source, read_exact, read_vec};

/// qemu's limits (block/qcow2.h): a table larger than these is refused.
pub const MAX_SNAPSHOTS: u32 = 65536;
const MAX_TABLE_BYTES: u64 = 1024 * MAX_SNAPSHOTS as u64;
pub(crate) const MAX_EXTRA_DATA: u32 = 1024;
/// The fixed part of a snapshot table entry.
const ENTRY_HEAD: usize = 40;

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub l1_table_offset: u64,
    pub l1_size: u32,
    pub date_sec: u32,
    pub date_nsec: u32,
    pub vm_clock_nsec: u64,
    pub vm_state_size: u64,
    /// Extra data bytes 48-55, when present.
    pub disk_size: Option<u64>,
    /// Extra data bytes 56-63 (record/replay instruction count), when present.
    pub icount: Option<u64>,
}

impl Snapshot {
    /// The object `details()` lists, in the shape of qemu-img info's `snapshots`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("name".into(), self.name.clone().into());
        m.insert("vm-state-size".into(), self.vm_state_size.into());
        m.insert("date-sec".into(), self.date_sec.into());
        m.insert("date-nsec".into(), self.date_nsec.into());
        m.insert(
            "vm-clock-sec".into(),
            (self.vm_clock_nsec / 1_000_000_000).into(),
        );
        m.insert(
            "vm-clock-nsec".into(),
            (self.vm_clock_nsec % 1_000_000_000).into(),
        );
        if let Some(icount) = self.icount {
            m.insert("icount".into(), icount.into());
        }
        if let Some(size) = self.disk_size {
            m.insert("disk-size".into(), size.into());
        }
        serde_json::Value::Object(m)
    }
}

/// Read `count` entries from `offset`. The table must lie in the file and within qemu's size
/// limits, so neither an absurd count nor absurd entry sizes can make us allocate much.
pub async fn read_table(
    src: &dyn Source,
    offset: u64,
    count: u32,
    cluster_size: u64,
) -> Result<Vec<Snapshot>> {
    if count == 0 {
        return Ok(vec![]);
    }
    if count > MAX_SNAPSHOTS {
        return Err(Error::corrupt(format!(
            "qcow2 header lists {count} snapshots (at most {MAX_SNAPSHOTS} allowed)"
        )));
    }
    if offset == 0 || !offset.is_multiple_of(cluster_size) {
        return Err(Error::corrupt(format!(
            "qcow2 snapshot table offset {offset} is not a non-zero multiple of the cluster size"
        )));
    }
    let mut list = Vec::with_capacity(count.min(1024) as usize);
    let mut pos = offset;
    for i in 0..count {
        let mut head = [0u8; ENTRY_HEAD];
        read_exact(src, pos, &mut head, "qcow2 snapshot table entry").await?;
        let id_len = u64::from(be16(&head, 12));
        let name_len = u64::from(be16(&head, 14));
        let extra_len = be32(&head, 36);
        if extra_len > MAX_EXTRA_DATA {
            return Err(Error::corrupt(format!(
                "qcow2 snapshot {i} has {extra_len} bytes of extra data (at most {MAX_EXTRA_DATA} allowed)"
            )));
        }
        let body_len = u64::from(extra_len) + id_len + name_len;
        let entry_len = (ENTRY_HEAD as u64 + body_len).div_ceil(8) * 8;
        if pos - offset + entry_len > MAX_TABLE_BYTES {
            return Err(Error::corrupt(format!(
                "qcow2 snapshot table is larger than {MAX_TABLE_BYTES} bytes"
            )));
        }
        let body = read_vec(
            src,
            pos + ENTRY_HEAD as u64,
            body_len,
            "qcow2 snapshot table entry",
        )
        .await?;
        let (extra, rest) = body.split_at(extra_len as usize);
        let (id, name) = rest.split_at(id_len as usize);
        let field = |at: usize| (extra.len() >= at + 8).then(|| be64(extra, at));
        list.push(Snapshot {
            id: c_string(id),
            name: c_string(name),
            l1_table_offset: be64(&head, 0),
            l1_size: be32(&head, 8),
            date_sec: be32(&head, 16),
            date_nsec: be32(&head, 20),
            vm_clock_nsec: be64(&head, 24),
            // Extra data bytes 40-47 (offset 0 of the extra data) supersede the 32-bit field.
            vm_state_size: field(0).unwrap_or(u64::from(be32(&head, 32))),
            disk_size: field(8),
            icount: field(16),
        });
        pos += entry_len;
    }
    Ok(list)
}
