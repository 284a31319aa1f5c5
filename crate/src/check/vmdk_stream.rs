//! A streamOptimized VMDK's markers against its grain directory (VMware "Virtual Disk Format
//! 5.0", "Stream-Optimized Compressed Sparse Extents"): the stream is walked marker by
//! marker from the header's overhead; a grain directory or grain table among the grains
//! must sit behind a GD / GT marker, each grain table entry must name a grain marker of the guest
//! sector it maps, the stream must end with an end-of-stream marker or exactly at the file's end
//! after a whole marker (qemu-img writes no end-of-stream marker: it only pads the file to a
//! sector, so a stream of incompressible grains ends on its last grain), and a directory
//! written at the end must be named by a valid footer. A grain no table names is counted as leaked.
//! (qemu-img check does none of this; decoding each grain is [`super::tables`]' part.)

use super::Progress;
use super::result::{CheckResult, Kind};
use crate::error::{Error, Result};
use crate::formats::vmdk::sparse_header::{
    FLAG_COMPRESSED, FLAG_MARKERS, GD_AT_END, HostedHeader, MARKER_EOS, MARKER_FOOTER, MARKER_GD,
    MARKER_GT,
};
use crate::source::{Source, read_vec};
use std::collections::HashSet;

const SECTOR: u64 = 512;
/// The most grains one check lists (16 bytes each: 1 GiB).
const MAX_GRAINS: usize = 64 << 20;

/// What the walk found: grains (file sector, LBA), and where GT and GD data start (sectors).
#[derive(Default)]
struct Stream {
    grains: Vec<(u64, u64)>,
    tables: HashSet<u64>,
    directories: HashSet<u64>,
}

/// True when `src` is a streamOptimized sparse extent (compressed grains with markers).
pub async fn is_stream(src: &dyn Source) -> bool {
    match read_vec(src, 0, src.len().min(SECTOR), "VMDK header").await {
        Ok(b) if b.len() == SECTOR as usize && &b[..4] == b"KDMV" => {
            let flags = HostedHeader::parse(&b).flags.get();
            flags & FLAG_COMPRESSED != 0 && flags & FLAG_MARKERS != 0
        }
        _ => false,
    }
}

pub async fn check(
    src: &dyn Source,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let mut h = HostedHeader::parse(&read_vec(src, 0, SECTOR, "VMDK header").await?);
    if h.gd_offset.get() == GD_AT_END {
        match footer(src).await? {
            Some(f) => h = f,
            None => {
                r.note(
                    Kind::Corruption,
                    "the grain directory is at the end of the stream, but there is no valid footer",
                );
                return Ok(());
            }
        }
    }
    let s = walk(src, h.overhead.get().saturating_mul(SECTOR), r).await?;
    progress.set_total(1);
    let grain = h.grain_size.get();
    let per_gt = u64::from(h.num_gtes_per_gt.get());
    if grain == 0 || per_gt == 0 {
        return Err(Error::corrupt(
            "VMDK grain size or grain table size is zero",
        ));
    }
    // Tables inside the overhead (before the first grain) need no marker: qemu-img writes
    // its streams so; tables among the grains do (VMware writes them so).
    let overhead = h.overhead.get();
    let gd = h.gd_offset.get();
    if gd >= overhead && !s.directories.contains(&gd) {
        r.note(
            Kind::Corruption,
            format!("the header's grain directory at sector {gd} is not behind a GD marker"),
        );
    }
    let gts = h.capacity.get().div_ceil(grain).div_ceil(per_gt);
    let dir = read_vec(
        src,
        gd.saturating_mul(SECTOR),
        gts.saturating_mul(4),
        "VMDK grain directory",
    )
    .await?;
    let mut named = vec![false; s.grains.len()];
    for (i, e) in dir.chunks_exact(4).enumerate() {
        let gt = u64::from(u32::from_le_bytes(e.try_into().expect("4 bytes")));
        if gt == 0 {
            continue;
        }
        if gt >= overhead && !s.tables.contains(&gt) {
            r.note(
                Kind::Corruption,
                format!("grain directory entry {i}: the grain table at sector {gt} is not behind a GT marker"),
            );
            continue;
        }
        let table = match read_vec(
            src,
            gt * SECTOR,
            per_gt.saturating_mul(4),
            "VMDK grain table",
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                r.note(Kind::Corruption, format!("grain directory entry {i}: {e}"));
                continue;
            }
        };
        for (j, e) in table.chunks_exact(4).enumerate() {
            let at = u64::from(u32::from_le_bytes(e.try_into().expect("4 bytes")));
            if at <= 1 {
                continue; // unallocated, or a zeroed grain
            }
            let lba = (i as u64 * per_gt + j as u64).saturating_mul(grain);
            match s.grains.binary_search_by_key(&at, |g| g.0) {
                Ok(k) if s.grains[k].1 == lba => named[k] = true,
                Ok(k) => r.note(
                    Kind::Corruption,
                    format!(
                        "guest sector {lba}: the grain marker at sector {at} is for sector {}",
                        s.grains[k].1
                    ),
                ),
                Err(_) => r.note(
                    Kind::Corruption,
                    format!("guest sector {lba}: no grain marker at sector {at}"),
                ),
            }
        }
    }
    let unnamed = named.iter().filter(|n| !**n).count() as u64;
    if unnamed > 0 {
        r.leaks += unnamed;
        r.keep(format!(
            "{unnamed} grains of the stream are named by no grain table"
        ));
    }
    progress.step(1)?;
    Ok(())
}

/// The header copy of a valid footer (footer marker, header, end-of-stream marker).
async fn footer(src: &dyn Source) -> Result<Option<HostedHeader>> {
    let Some(at) = src.len().checked_sub(3 * SECTOR) else {
        return Ok(None);
    };
    let f = read_vec(src, at, 3 * SECTOR, "VMDK stream footer").await?;
    let marker_type = |b: &[u8]| u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
    let valid = marker_type(&f) == MARKER_FOOTER
        && &f[512..516] == b"KDMV"
        && marker_type(&f[1024..]) == MARKER_EOS
        && f[1024..1036].iter().all(|&b| b == 0);
    Ok(valid.then(|| HostedHeader::parse(&f[512..1024])))
}

/// Walk the markers from `start` to the end-of-stream marker or the end of the file.
/// Ending on the file's end after a whole marker is fine (qemu-img's streams end so).
async fn walk(src: &dyn Source, start: u64, r: &mut CheckResult) -> Result<Stream> {
    let flen = src.len();
    let mut s = Stream::default();
    let mut pos = start;
    while pos + 16 <= flen {
        let m = read_vec(src, pos, 16, "VMDK marker").await?;
        let lba = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
        let size = u64::from(u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")));
        let kind = u32::from_le_bytes(m[12..16].try_into().expect("4 bytes"));
        let next = if size > 0 {
            if s.grains.len() >= MAX_GRAINS {
                return Err(Error::unsupported(
                    "the stream holds too many grains to check",
                ));
            }
            s.grains.push((pos / SECTOR, lba));
            (pos + 12 + size).div_ceil(SECTOR) * SECTOR
        } else {
            let data = pos + SECTOR;
            match kind {
                MARKER_EOS => return Ok(s),
                MARKER_GT => {
                    s.tables.insert(data / SECTOR);
                }
                MARKER_GD => {
                    s.directories.insert(data / SECTOR);
                }
                MARKER_FOOTER => {}
                _ => {
                    r.note(
                        Kind::Corruption,
                        format!("unknown marker type {kind} at offset {pos:#x}"),
                    );
                    return Ok(s);
                }
            }
            data.saturating_add(lba.saturating_mul(SECTOR))
        };
        if next > flen {
            r.note(
                Kind::Corruption,
                format!("the marker at offset {pos:#x} runs past the end of the file"),
            );
            return Ok(s);
        }
        pos = next;
    }
    if pos != flen {
        r.note(
            Kind::Corruption,
            format!(
                "the stream ends at offset {pos:#x} inside a marker, with no end-of-stream marker"
            ),
        );
    }
    Ok(s)
}
