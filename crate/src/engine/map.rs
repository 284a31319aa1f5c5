//! `vmdisk map`: the resolved extent map as qemu-img-shaped rows.

use super::MAP_WINDOW;
use crate::chain::{Resolved, resolved_map};
use crate::error::Result;
use crate::extent::Mapping;
use crate::image::Image;
use crate::source::ImageSet;

/// One row of `vmdisk map --json`, shaped like `qemu-img map --output=json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub depth: usize,
    pub present: bool,
    pub zero: bool,
    pub data: bool,
    pub compressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Which file `offset` is in (qemu-img leaves this implicit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl MapEntry {
    fn from_resolved(set: &ImageSet, r: &Resolved) -> MapEntry {
        let e = &r.extent;
        let (present, zero, data, compressed, offset, file) = match e.mapping {
            Mapping::Zero => (true, true, false, false, None, None),
            Mapping::Unallocated => (false, true, false, false, None, None),
            Mapping::Data { file, offset } => (true, false, true, false, Some(offset), Some(file)),
            Mapping::Compressed { .. } => (true, false, true, true, None, None),
        };
        MapEntry {
            start: e.start,
            length: e.len,
            depth: r.depth,
            present,
            zero,
            data,
            compressed,
            offset,
            file: file.map(|f| set.file(f).name().to_string()),
        }
    }

    /// Extend `self` by `next` when qemu-img would print them as one row.
    fn absorb(&mut self, next: &MapEntry) -> bool {
        let same = (
            self.depth,
            self.present,
            self.zero,
            self.data,
            self.compressed,
            &self.file,
        ) == (
            next.depth,
            next.present,
            next.zero,
            next.data,
            next.compressed,
            &next.file,
        );
        let contiguous = match (self.offset, next.offset) {
            (Some(a), Some(b)) => a + self.length == b,
            (None, None) => true,
            _ => false,
        };
        if same && contiguous && self.start + self.length == next.start {
            self.length += next.length;
            true
        } else {
            false
        }
    }
}

/// The whole map, a window at a time, with rows merged across windows. `emit` receives each
/// finished row, so a huge fragmented image never holds its whole map in memory.
pub async fn map(set: &ImageSet, image: &dyn Image, emit: &mut dyn FnMut(MapEntry)) -> Result<()> {
    let size = image.virtual_size();
    let mut pending: Option<MapEntry> = None;
    let mut start = 0;
    while start < size {
        let len = MAP_WINDOW.min(size - start);
        for r in resolved_map(image, start, len).await? {
            let row = MapEntry::from_resolved(set, &r);
            if pending.as_mut().is_some_and(|p| p.absorb(&row)) {
                continue;
            }
            if let Some(p) = pending.replace(row) {
                emit(p);
            }
        }
        start += len;
    }
    if let Some(p) = pending {
        emit(p);
    }
    Ok(())
}
