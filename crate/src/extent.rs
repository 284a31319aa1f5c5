//! The extent map: where each byte of the guest disk lives. Every format driver produces one;
//! the copy engine and `vmdisk map` consume it.

use crate::codec::Codec;
use serde::Serialize;

/// Index of a file in the [`crate::ImageSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FileId(pub usize);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Reads as zeros, stated by this layer (qcow2 zero flag, VMDK zeroed grain, ...).
    Zero,
    /// Not stored in this layer: comes from the backing image, or zeros when there is none.
    Unallocated,
    /// Stored verbatim at `offset` in `file`; the extent's bytes are contiguous there.
    Data { file: FileId, offset: u64 },
    /// Stored compressed: `len` bytes at `offset` in `file` inflate to a unit of `unit` bytes
    /// (a cluster or grain), of which this extent is `[skip, skip + extent.len)`.
    Compressed {
        file: FileId,
        offset: u64,
        len: u64,
        codec: Codec,
        unit: u64,
        skip: u64,
    },
}

/// `len` guest bytes from `start`, all mapped the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
    pub mapping: Mapping,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Append `next` to `list`, merging it into the last extent when they continue each other
    /// (same kind, adjacent in the guest and, for data, in the file).
    pub fn push_merged(list: &mut Vec<Extent>, next: Extent) {
        if next.len == 0 {
            return;
        }
        if let Some(last) = list.last_mut()
            && last.end() == next.start
        {
            let joined = match (&last.mapping, &next.mapping) {
                (Mapping::Zero, Mapping::Zero) | (Mapping::Unallocated, Mapping::Unallocated) => {
                    true
                }
                (
                    Mapping::Data {
                        file: a,
                        offset: oa,
                    },
                    Mapping::Data {
                        file: b,
                        offset: ob,
                    },
                ) => a == b && oa + last.len == *ob,
                _ => false,
            };
            if joined {
                last.len += next.len;
                return;
            }
        }
        list.push(next);
    }
}
