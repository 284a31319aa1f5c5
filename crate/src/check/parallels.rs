//! What qemu-img check adds for a Parallels image to the block-table check ([`super::tables`]:
//! clusters inside the file, none used twice), with qemu's semantics (block/parallels.c
//! `parallels_co_check`): an image left in use is a corruption, so is a `data_off` before the
//! BAT's end or past the file; whole clusters past the last one the BAT names are leaked; and
//! qemu's statistics (image end, total, allocated and fragmented clusters).

use super::Progress;
use super::result::{CheckResult, Kind};
use crate::error::Result;
use crate::formats::parallels::header::{HEADER_LEN, ParallelsHeader};
use crate::source::{Source, read_vec};

const SECTOR: u64 = 512;
/// BAT entries read at a time.
const CHUNK: u64 = 64 << 10;

/// Runs after the table check; a file that is not an expanding image (a bundle's
/// `DiskDescriptor.xml`) has nothing to add.
pub async fn check(
    src: &dyn Source,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let head = read_vec(src, 0, src.len().min(HEADER_LEN), "Parallels header").await?;
    let Some(h) = ParallelsHeader::parse(&head) else {
        return Ok(());
    };
    let cluster = u64::from(h.tracks.get()) * SECTOR;
    if cluster == 0 {
        return Ok(()); // the driver refused it, and the table check counted that
    }
    if h.is_dirty() {
        r.note(Kind::Corruption, "the image was not closed correctly");
    }
    let entries = u64::from(h.bat_entries.get());
    let bat_end = HEADER_LEN + entries * 4;
    if !data_off_valid(&h, bat_end, cluster, src.len()) {
        r.note(
            Kind::Corruption,
            format!(
                "data_off (sector {}) is before the BAT's end or past the file's end",
                h.data_off.get()
            ),
        );
    }
    let unit = if h.extended() { cluster } else { SECTOR };
    let (mut highest, mut previous) = (0u64, 0u64);
    progress.set_total(entries.div_ceil(CHUNK));
    let mut at = 0;
    while at < entries {
        let n = CHUNK.min(entries - at);
        let bat = read_vec(src, HEADER_LEN + at * 4, n * 4, "Parallels BAT").await?;
        for e in bat.chunks_exact(4) {
            let off = u64::from(u32::from_le_bytes(e.try_into().expect("4 bytes"))) * unit;
            if off == 0 {
                previous = 0;
                continue;
            }
            r.allocated_clusters += 1;
            if previous != 0 && previous + cluster != off {
                r.fragmented_clusters += 1;
            }
            previous = off;
            highest = highest.max(off);
        }
        at += n;
        progress.step(1)?;
    }
    r.total_clusters = entries;
    r.image_end_offset = if highest == 0 {
        data_start(&h, bat_end, cluster) * SECTOR
    } else {
        highest + cluster
    };
    if let Some(extra) = src.len().checked_sub(r.image_end_offset).filter(|&n| n > 0) {
        r.leaks += extra.div_ceil(cluster);
        r.keep(format!("{extra} bytes leaked at the end of the image"));
    }
    Ok(())
}

/// The first data sector qemu accepts: the BAT's end in sectors, a whole cluster for the
/// extended format.
fn min_data_off(h: &ParallelsHeader, bat_end: u64, cluster: u64) -> u64 {
    let min = bat_end.div_ceil(SECTOR);
    if h.extended() {
        min.next_multiple_of(cluster / SECTOR)
    } else {
        min
    }
}

/// Where data starts, in sectors: `data_off`, or the BAT's end when the original format
/// leaves it zero.
fn data_start(h: &ParallelsHeader, bat_end: u64, cluster: u64) -> u64 {
    match u64::from(h.data_off.get()) {
        0 => min_data_off(h, bat_end, cluster),
        n => n,
    }
}

/// qemu `parallels_test_data_off`: zero is allowed in the original format only.
fn data_off_valid(h: &ParallelsHeader, bat_end: u64, cluster: u64, file_len: u64) -> bool {
    let data_off = u64::from(h.data_off.get());
    if data_off == 0 && !h.extended() {
        return true;
    }
    data_off >= min_data_off(h, bat_end, cluster) && data_off <= file_len / SECTOR
}
