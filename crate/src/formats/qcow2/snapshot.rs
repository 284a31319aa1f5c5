//! The internal snapshot table (qcow2.txt "Snapshots"). vmdisk lists snapshots; it reads and
//! converts the active layer only, so snapshot L1 tables are validated but never followed.

use super::header::c_string;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{be16, be32, be64};
use crate::source::{Source, read_exact, read_vec};

/// qemu's limits (block/qcow2.h): a table larger than these is refused.
pub const MAX_SNAPSHOTS: u32 = 65536;
const MAX_TABLE_BYTES: u64 = 1024 * MAX_SNAPSHOTS as u64;
const MAX_EXTRA_DATA: u32 = 1024;
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

/// One table entry's fixed part and where it lies (qcow2.txt "Snapshot table entry").
pub(crate) struct Entry {
    /// The entry's place in the table, from 0.
    pub index: u32,
    /// Where the entry starts (8-aligned).
    pub at: u64,
    head: [u8; ENTRY_HEAD],
}

impl Entry {
    pub fn l1_table_offset(&self) -> u64 {
        be64(&self.head, 0)
    }

    pub fn l1_size(&self) -> u32 {
        be32(&self.head, 8)
    }

    fn id_len(&self) -> u64 {
        u64::from(be16(&self.head, 12))
    }

    fn name_len(&self) -> u64 {
        u64::from(be16(&self.head, 14))
    }

    fn extra_len(&self) -> u64 {
        u64::from(be32(&self.head, 36))
    }

    /// The bytes after the fixed part: extra data, ID, then name.
    fn body_len(&self) -> u64 {
        self.extra_len() + self.id_len() + self.name_len()
    }

    /// Where the entry ends: right after its name, before any padding.
    pub fn end(&self) -> u64 {
        self.at + ENTRY_HEAD as u64 + self.body_len()
    }

    /// The snapshot this entry describes, given its body (extra data, ID and name).
    fn snapshot(&self, body: &[u8]) -> Snapshot {
        let (extra, rest) = body.split_at(self.extra_len() as usize);
        let (id, name) = rest.split_at(self.id_len() as usize);
        let field = |at: usize| (extra.len() >= at + 8).then(|| be64(extra, at));
        let head = &self.head;
        Snapshot {
            id: c_string(id),
            name: c_string(name),
            l1_table_offset: self.l1_table_offset(),
            l1_size: self.l1_size(),
            date_sec: be32(head, 16),
            date_nsec: be32(head, 20),
            vm_clock_nsec: be64(head, 24),
            // Extra data bytes 40-47 (offset 0 of the extra data) supersede the 32-bit field.
            vm_state_size: field(0).unwrap_or(u64::from(be32(head, 32))),
            disk_size: field(8),
            icount: field(16),
        }
    }
}

/// The table's entries in order, walked like qemu's `qcow2_read_snapshots`: each entry
/// starts at the next 8-aligned offset after the previous one's name. Only qemu's count
/// and extra-data limits are enforced here (and each fixed part must lie in the file);
/// the driver adds its own rules, while `vmdisk check` walks whatever the header points at.
pub(crate) struct Entries<'a> {
    src: &'a dyn Source,
    count: u32,
    index: u32,
    next: u64,
}

impl<'a> Entries<'a> {
    pub fn new(src: &'a dyn Source, offset: u64, count: u32) -> Result<Self> {
        if count > MAX_SNAPSHOTS {
            return Err(Error::corrupt(format!(
                "qcow2 header lists {count} snapshots (at most {MAX_SNAPSHOTS} allowed)"
            )));
        }
        Ok(Entries {
            src,
            count,
            index: 0,
            next: offset,
        })
    }

    /// The next entry's fixed part, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Entry>> {
        if self.index == self.count {
            return Ok(None);
        }
        let at = self.next.div_ceil(8) * 8;
        let mut head = [0u8; ENTRY_HEAD];
        read_exact(self.src, at, &mut head, "qcow2 snapshot table entry").await?;
        let entry = Entry {
            index: self.index,
            at,
            head,
        };
        let extra_len = entry.extra_len();
        if extra_len > u64::from(MAX_EXTRA_DATA) {
            return Err(Error::corrupt(format!(
                "qcow2 snapshot {} has {extra_len} bytes of extra data (at most {MAX_EXTRA_DATA} allowed)",
                entry.index
            )));
        }
        self.index += 1;
        self.next = entry.end();
        Ok(Some(entry))
    }
}

/// Read `count` entries from `offset`. The table must be cluster-aligned, lie in the file
/// and stay within qemu's size limits, so neither an absurd count nor absurd entry sizes
/// can make us allocate much.
pub async fn read_table(
    src: &dyn Source,
    offset: u64,
    count: u32,
    cluster_size: u64,
) -> Result<Vec<Snapshot>> {
    let mut entries = Entries::new(src, offset, count)?;
    if count == 0 {
        return Ok(vec![]);
    }
    if offset == 0 || !offset.is_multiple_of(cluster_size) {
        return Err(Error::corrupt(format!(
            "qcow2 snapshot table offset {offset} is not a non-zero multiple of the cluster size"
        )));
    }
    let mut list = Vec::with_capacity(count.min(1024) as usize);
    while let Some(entry) = entries.next().await? {
        // Like qemu, the limit is on the unpadded length.
        if entry.end() - offset > MAX_TABLE_BYTES {
            return Err(Error::corrupt(format!(
                "qcow2 snapshot table is larger than {MAX_TABLE_BYTES} bytes"
            )));
        }
        let body_at = entry.at + ENTRY_HEAD as u64;
        let body = read_vec(src, body_at, entry.body_len(), "qcow2 snapshot table entry").await?;
        list.push(entry.snapshot(&body));
    }
    Ok(list)
}
