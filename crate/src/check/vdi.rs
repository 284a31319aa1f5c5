//! The VDI check, with qemu-img check's semantics (qemu block/vdi.c `vdi_co_check`): each
//! allocated block map entry names a data block inside the image's block count and no other
//! entry names the same one, and the header's allocated count matches. vmdisk also checks
//! that each data block lies inside the file (qemu does not look at the file's length).

use super::Progress;
use super::result::{CheckResult, Kind};
use crate::error::{Error, Result};
use crate::formats::vdi::header::{HEADER1_END, VdiHeader};
use crate::source::{Source, read_vec};

/// Block map entries from this value up are not allocated (VirtualBox VDICore.h:
/// 0xffffffff free, 0xfffffffe discarded, read as zeros).
const FIRST_UNALLOCATED: u32 = 0xffff_fffe;

pub async fn check(
    src: &dyn Source,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let head = read_vec(src, 0, src.len().min(HEADER1_END), "VDI header").await?;
    let h = VdiHeader::parse(&head).ok_or_else(|| Error::corrupt("not a VDI header"))?;
    let blocks = h.blocks.get();
    let block_size = u64::from(h.block_size.get());
    let map_at = u64::from(h.offset_blocks.get());
    let map = read_vec(src, map_at, u64::from(blocks) * 4, "VDI block map").await?;
    progress.set_total(1);
    // For each data block, the guest block that uses it (u32::MAX: none yet).
    let mut owner = vec![u32::MAX; blocks as usize];
    let mut allocated = 0u32;
    let data_at = u64::from(h.offset_data.get());
    let flen = src.len();
    for (block, e) in map.chunks_exact(4).enumerate() {
        let entry = u32::from_le_bytes(e.try_into().expect("4 bytes"));
        if entry >= FIRST_UNALLOCATED {
            continue;
        }
        if entry >= blocks {
            r.note(
                Kind::Corruption,
                format!(
                    "guest block {block}: data block {entry} is beyond the image's {blocks} blocks"
                ),
            );
            continue;
        }
        allocated += 1;
        match owner[entry as usize] {
            u32::MAX => owner[entry as usize] = block as u32,
            first => r.note(
                Kind::Corruption,
                format!("guest blocks {first} and {block} both use data block {entry}"),
            ),
        }
        let end = data_at + (u64::from(entry) + 1) * block_size;
        if end > flen {
            r.note(
                Kind::Corruption,
                format!("guest block {block}: data block {entry} ends at {end}, past the end of the file ({flen} bytes)"),
            );
        }
    }
    if allocated != h.blocks_allocated.get() {
        r.note(
            Kind::Corruption,
            format!(
                "the header counts {} allocated blocks, the block map {allocated}",
                h.blocks_allocated.get()
            ),
        );
    }
    progress.step(1)?;
    Ok(())
}
