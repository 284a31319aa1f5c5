//! Persistent dirty bitmaps of a qcow2 image (qcow2.txt "Bitmaps extension", "Bitmap
//! directory", "Bitmap table"): the directory, each bitmap table and each data cluster are
//! counted as used, as qemu's `qcow2_check_bitmaps_refcounts` counts them; an unreadable
//! directory or table and a malformed table entry are corruptions.

use super::refcounts::UsedCounts;
use super::result::{CheckResult, Kind};
use crate::formats::common::bytes::{be16, be32, be64};
use crate::formats::qcow2::header::{EXT_BITMAPS, EXT_END, Header};
use crate::source::{Source, read_vec};

/// Autoclear bit 0: the bitmaps extension is valid (else qemu ignores it).
const AUTOCLEAR_BITMAPS: u64 = 1;
/// qemu's limits (block/qcow2.h QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIRECTORY_SIZE).
const MAX_BITMAPS: u32 = 65535;
const MAX_DIRECTORY_BYTES: u64 = 1024 * MAX_BITMAPS as u64;
/// Bitmap table entries: bits 9-55 the data cluster, bit 0 "all ones", the rest reserved.
const ENTRY_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const ENTRY_RESERVED_MASK: u64 = 0xff00_0000_0000_01fe;
const ENTRY_ALL_ONES: u64 = 1;
/// The fixed part of a directory entry.
const ENTRY_HEAD: usize = 24;

/// (directory offset, directory size) from the bitmaps extension of header cluster `head`.
fn extension(head: &[u8], h: &Header) -> Option<(u64, u64)> {
    let mut off = u64::from(h.header_length) as usize;
    let end = (h.extensions_end() as usize).min(head.len());
    while off + 8 <= end {
        let (kind, len) = (be32(head, off), be32(head, off + 4) as usize);
        if kind == EXT_END {
            break;
        }
        let data = off + 8;
        if kind == EXT_BITMAPS && len >= 24 && data + 24 <= end {
            return (be32(head, data) > 0).then(|| (be64(head, data + 16), be64(head, data + 8)));
        }
        off = data + len.div_ceil(8) * 8;
    }
    None
}

/// Count what the bitmaps use. `head` is the header cluster.
pub async fn count(
    src: &dyn Source,
    head: &[u8],
    h: &Header,
    used: &mut UsedCounts,
    r: &mut CheckResult,
) {
    if h.autoclear & AUTOCLEAR_BITMAPS == 0 {
        return;
    }
    let Some((dir_at, dir_len)) = extension(head, h) else {
        return;
    };
    used.add(dir_at, dir_len, "the bitmap directory", r);
    if dir_len > MAX_DIRECTORY_BYTES {
        r.note(
            Kind::Corruption,
            "the bitmap directory is larger than qemu allows",
        );
        return;
    }
    let dir = match read_vec(src, dir_at, dir_len, "qcow2 bitmap directory").await {
        Ok(d) => d,
        Err(e) => return r.note(Kind::Corruption, format!("the bitmap directory: {e}")),
    };
    let cs = h.cluster_size();
    let mut at = 0;
    while at + ENTRY_HEAD <= dir.len() {
        let table_at = be64(&dir, at);
        let table_len = u64::from(be32(&dir, at + 8));
        let name_len = usize::from(be16(&dir, at + 18));
        let extra_len = be32(&dir, at + 20) as usize;
        at += (ENTRY_HEAD + extra_len + name_len).div_ceil(8) * 8;
        used.add(table_at, table_len * 8, "a bitmap table", r);
        let table = match read_vec(src, table_at, table_len * 8, "qcow2 bitmap table").await {
            Ok(t) => t,
            Err(e) => {
                r.note(Kind::Corruption, format!("a bitmap table: {e}"));
                break;
            }
        };
        for (i, e) in table.chunks_exact(8).enumerate() {
            let entry = u64::from_be_bytes(e.try_into().expect("8 bytes"));
            let offset = entry & ENTRY_OFFSET_MASK;
            let malformed = entry & ENTRY_RESERVED_MASK != 0
                || (offset != 0 && (entry & ENTRY_ALL_ONES != 0 || offset & (cs - 1) != 0));
            if malformed {
                r.note(
                    Kind::Corruption,
                    format!("bitmap table at {table_at:#x} entry {i} is malformed ({entry:#x})"),
                );
                continue;
            }
            if offset != 0 {
                used.add(offset, cs, "a bitmap data cluster", r);
            }
        }
    }
}
