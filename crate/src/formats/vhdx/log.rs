//! The VHDX log ([MS-VHDX] 2.3), replayed in memory: the source file is never written.
//!
//! The log is a circular buffer of entries. Each entry is a 4 KiB-aligned run of sectors: a
//! header ('loge', 64 bytes) followed by 32-byte descriptors ('desc' for a 4 KiB data write whose
//! middle 4084 bytes sit in a following 'data' sector, 'zero' for a zeroed range), checksummed
//! with CRC-32C over the whole entry. The *active sequence* (2.3.3) is the run of valid entries
//! with consecutive sequence numbers whose last entry (the head) has the highest sequence number
//! and whose `Tail` names an entry of the run; replaying applies its entries from the tail to the
//! head. The result here is an [`Overlay`]: a map from file ranges to what the replayed log put
//! there, consulted whenever metadata (region tables, metadata region, BAT, sector bitmaps) or a
//! payload block is read.

use super::checksum::{crc_append, crc_zeroed};
use crate::error::{Error, Result};
use crate::formats::common::bytes::{has, le32, le64};
use crate::source::{Source, read_exact};
use std::collections::BTreeMap;

pub const SECTOR: u64 = 4096;
const ENTRY_HEADER: u64 = 64;
const DESCRIPTOR: u64 = 32;
/// Logs longer than this are refused (qemu makes 1 MiB logs; Hyper-V's are similar).
pub const MAX_LOG_LENGTH: u64 = 256 << 20;
/// Writes below this offset would rewrite the file identifier or the headers, which the log
/// never does ([MS-VHDX] 2.3: headers are updated in place, regions through the log).
const FIRST_LOGGED_OFFSET: u64 = 192 << 10;

/// What a replayed write left in a 4 KiB-aligned file range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A 'zero' descriptor: reads as zeros.
    Zero,
    /// A 'desc' descriptor for one 4 KiB sector: 8 leading bytes from the descriptor, 4084
    /// bytes at `data + 8` in the file (inside the log's data sector), 4 trailing bytes.
    Sector {
        data: u64,
        leading: [u8; 8],
        trailing: [u8; 4],
    },
}

/// Replayed writes by file offset: non-overlapping ranges `start -> (end, piece)`.
#[derive(Default, Debug)]
pub struct Overlay {
    ranges: BTreeMap<u64, (u64, Piece)>,
    /// The file's length once the log is replayed (at least the real length).
    pub len: u64,
}

impl Overlay {
    /// No replayed writes, for a file of `len` bytes.
    pub fn empty(len: u64) -> Self {
        Overlay {
            ranges: BTreeMap::new(),
            len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Record a write of `[start, end)`, replacing what earlier writes left there.
    fn insert(&mut self, start: u64, end: u64, piece: Piece) {
        // Cut every range overlapping [start, end); ranges are 4 KiB aligned, sector pieces
        // exactly one sector, so only zero ranges are ever split.
        let overlapping: Vec<u64> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(_, (e, _))| *e > start)
            .map(|(s, _)| *s)
            .collect();
        for s in overlapping {
            let (e, p) = self.ranges.remove(&s).expect("present");
            if s < start {
                self.ranges.insert(s, (start, p.clone()));
            }
            if e > end {
                self.ranges.insert(end, (e, p));
            }
        }
        self.ranges.insert(start, (end, piece));
    }

    /// The replayed pieces overlapping `[start, end)`, clipped to it, in file order.
    pub fn pieces(&self, start: u64, end: u64) -> Vec<(u64, u64, Piece)> {
        let first = self
            .ranges
            .range(..=start)
            .next_back()
            .filter(|(_, (e, _))| *e > start)
            .map(|(s, _)| *s)
            .unwrap_or(start);
        self.ranges
            .range(first..end)
            .map(|(s, (e, p))| ((*s).max(start), (*e).min(end), p.clone()))
            .collect()
    }

    /// Read `buf.len()` bytes at `offset` of the file as it is after replay: real bytes, zeros
    /// between the real end and the replayed length, and the replayed writes on top.
    pub async fn read(
        &self,
        src: &dyn Source,
        offset: u64,
        buf: &mut [u8],
        what: &str,
    ) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len.max(src.len()))
            .ok_or_else(|| {
                Error::truncated(format!(
                    "{what} at offset {offset} (+{} bytes) lies past the end of {} ({} bytes)",
                    buf.len(),
                    src.name(),
                    self.len.max(src.len())
                ))
            })?;
        let real_end = end.min(src.len());
        if real_end > offset {
            let n = (real_end - offset) as usize;
            read_exact(src, offset, &mut buf[..n], what).await?;
            buf[n..].fill(0);
        } else {
            buf.fill(0);
        }
        for (s, e, piece) in self.pieces(offset, end) {
            let dst = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match piece {
                Piece::Zero => dst.fill(0),
                Piece::Sector {
                    data,
                    leading,
                    trailing,
                } => {
                    // The whole sector, then the part of it that was asked for.
                    let sector_start = s - (s % SECTOR);
                    let mut sector = vec![0u8; SECTOR as usize];
                    sector[..8].copy_from_slice(&leading);
                    read_exact(src, data + 8, &mut sector[8..4092], "VHDX log data sector").await?;
                    sector[4092..].copy_from_slice(&trailing);
                    let from = (s - sector_start) as usize;
                    dst.copy_from_slice(&sector[from..from + dst.len()]);
                }
            }
        }
        Ok(())
    }
}

/// A parsed, checksum-verified log entry.
#[derive(Clone, Debug)]
struct Entry {
    /// Offset of the entry inside the log.
    at: u64,
    len: u64,
    tail: u64,
    seq: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
}

/// What the replay found, for the report.
#[derive(Clone, Debug, Default)]
pub struct LogState {
    /// Entries of the active sequence that were replayed.
    pub entries: usize,
    pub head_sequence: u64,
}

/// The log region of the file, read circularly.
struct Log<'a> {
    src: &'a dyn Source,
    offset: u64,
    length: u64,
    guid: [u8; 16],
    /// Bytes checksummed so far: a hostile log cannot make the search quadratic.
    budget: u64,
}

impl Log<'_> {
    /// Log sector at log offset `at` (taken modulo the log length).
    async fn sector(&self, at: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; SECTOR as usize];
        read_exact(
            self.src,
            self.offset + at % self.length,
            &mut b,
            "VHDX log sector",
        )
        .await?;
        Ok(b)
    }

    /// The file offset of log offset `at`.
    fn file_offset(&self, at: u64) -> u64 {
        self.offset + at % self.length
    }

    /// The entry at log offset `at` when it is valid: signature, sizes, log GUID, checksum.
    async fn entry(&mut self, at: u64) -> Result<Option<Entry>> {
        let h = self.sector(at).await?;
        if !has(&h, 0, b"loge") {
            return Ok(None);
        }
        let len = u64::from(le32(&h, 8));
        let tail = u64::from(le32(&h, 12));
        let seq = le64(&h, 16);
        let count = u64::from(le32(&h, 24));
        if len == 0
            || !len.is_multiple_of(SECTOR)
            || len > self.length
            || !tail.is_multiple_of(SECTOR)
            || tail >= self.length
            || h[32..48] != self.guid
            || seq == 0
        {
            return Ok(None);
        }
        let desc_sectors = (ENTRY_HEADER + count * DESCRIPTOR).div_ceil(SECTOR);
        if desc_sectors > len / SECTOR {
            return Ok(None);
        }
        if self.budget < len {
            return Err(Error::corrupt(
                "the VHDX log is too damaged to search for its active sequence",
            ));
        }
        self.budget -= len;
        // CRC-32C over the whole entry with the checksum field as zero.
        let mut crc = crc_zeroed(&h);
        let mut pos = SECTOR;
        while pos < len {
            let s = self.sector(at + pos).await?;
            crc = crc_append(crc, &s);
            pos += SECTOR;
        }
        if crc != le32(&h, 4) {
            return Ok(None);
        }
        Ok(Some(Entry {
            at,
            len,
            tail,
            seq,
            flushed_file_offset: le64(&h, 48),
            last_file_offset: le64(&h, 56),
        }))
    }
}

/// Replay the log at `[offset, offset + length)` of `src` for log GUID `guid` into an overlay.
pub async fn replay(
    src: &dyn Source,
    offset: u64,
    length: u64,
    guid: [u8; 16],
) -> Result<(Overlay, LogState)> {
    if length == 0 || length > MAX_LOG_LENGTH {
        return Err(Error::corrupt(format!(
            "the VHDX log length {length} is invalid (1 byte to {MAX_LOG_LENGTH} bytes)"
        )));
    }
    let mut log = Log {
        src,
        offset,
        length,
        guid,
        budget: length.saturating_mul(16),
    };
    // Scan the log once: from every position that starts a valid entry, follow the chain of
    // entries with consecutive sequence numbers (wrapping around the end). Positions inside a
    // chain are not scanned again, so the search is linear.
    let mut best: Option<Vec<Entry>> = None;
    let mut pos = 0;
    while pos < length {
        let Some(first) = log.entry(pos).await? else {
            pos += SECTOR;
            continue;
        };
        let mut chain = vec![first];
        let mut covered = chain[0].len;
        loop {
            let last = chain.last().expect("non-empty");
            let next_at = (last.at + last.len) % length;
            if covered >= length || next_at == chain[0].at {
                break;
            }
            match log.entry(next_at).await? {
                Some(e) if e.seq == last.seq.wrapping_add(1) => {
                    covered += e.len;
                    chain.push(e);
                }
                _ => break,
            }
        }
        // Valid when the head's tail names an entry of the chain ([MS-VHDX] 2.3.3).
        let head = chain.last().expect("non-empty");
        if let Some(t) = chain.iter().position(|e| e.at == head.tail) {
            let better = best
                .as_ref()
                .is_none_or(|b| b.last().expect("non-empty").seq < head.seq);
            if better {
                best = Some(chain[t..].to_vec());
            }
        }
        // Continue after the part of the chain that lies before the end of the log.
        let mut next = pos;
        for e in &chain {
            if e.at < pos {
                break;
            }
            next = e.at + e.len;
        }
        pos = next.max(pos + SECTOR);
    }
    let Some(active) = best else {
        return Err(Error::corrupt(
            "the VHDX log is dirty but holds no valid sequence of entries to replay",
        ));
    };
    let head = active.last().expect("non-empty").clone();
    if head.flushed_file_offset > src.len() {
        return Err(Error::truncated(format!(
            "the VHDX log expects the file to be at least {} bytes, but {} has {}",
            head.flushed_file_offset,
            src.name(),
            src.len()
        )));
    }
    let mut overlay = Overlay {
        ranges: BTreeMap::new(),
        len: src.len().max(head.last_file_offset),
    };
    for e in &active {
        apply(&log, e, &mut overlay).await?;
    }
    let state = LogState {
        entries: active.len(),
        head_sequence: head.seq,
    };
    Ok((overlay, state))
}

/// Apply entry `e`'s descriptors, in order, to the overlay.
async fn apply(log: &Log<'_>, e: &Entry, overlay: &mut Overlay) -> Result<()> {
    let h = log.sector(e.at).await?;
    let count = u64::from(le32(&h, 24));
    let desc_sectors = (ENTRY_HEADER + count * DESCRIPTOR).div_ceil(SECTOR);
    let mut data_at = e.at + desc_sectors * SECTOR;
    let mut sector = h;
    let mut sector_index = 0;
    for i in 0..count {
        let pos = ENTRY_HEADER + i * DESCRIPTOR;
        if pos / SECTOR != sector_index {
            sector_index = pos / SECTOR;
            sector = log.sector(e.at + sector_index * SECTOR).await?;
        }
        let d = &sector[(pos % SECTOR) as usize..(pos % SECTOR + DESCRIPTOR) as usize];
        let bad = |why: &str| {
            Error::corrupt(format!(
                "VHDX log entry {} (sequence {}), descriptor {i}: {why}",
                e.at / SECTOR,
                e.seq
            ))
        };
        let file_offset = le64(d, 16);
        if le64(d, 24) != e.seq {
            return Err(bad("its sequence number differs from the entry's"));
        }
        if !file_offset.is_multiple_of(SECTOR) || file_offset < FIRST_LOGGED_OFFSET {
            return Err(bad(&format!("invalid file offset {file_offset}")));
        }
        if has(d, 0, b"zero") {
            let len = le64(d, 8);
            let end = file_offset.checked_add(len);
            if len == 0 || !len.is_multiple_of(SECTOR) || end.is_none() {
                return Err(bad(&format!("invalid zero length {len}")));
            }
            let end = end.expect("checked");
            overlay.len = overlay.len.max(end);
            overlay.insert(file_offset, end, Piece::Zero);
        } else if has(d, 0, b"desc") {
            if data_at >= e.at + e.len {
                return Err(bad("more data descriptors than data sectors"));
            }
            let s = log.sector(data_at).await?;
            if !has(&s, 0, b"data")
                || u64::from(le32(&s, 4)) != e.seq >> 32
                || u64::from(le32(&s, 4092)) != e.seq & 0xffff_ffff
            {
                return Err(bad("its data sector is not valid"));
            }
            let leading: [u8; 8] = d[8..16].try_into().expect("8 bytes");
            let trailing: [u8; 4] = d[4..8].try_into().expect("4 bytes");
            let end = file_offset + SECTOR;
            overlay.len = overlay.len.max(end);
            overlay.insert(
                file_offset,
                end,
                Piece::Sector {
                    data: log.file_offset(data_at),
                    leading,
                    trailing,
                },
            );
            data_at += SECTOR;
        } else {
            return Err(bad("unknown descriptor signature"));
        }
    }
    if data_at != e.at + e.len {
        return Err(Error::corrupt(format!(
            "VHDX log entry {} (sequence {}) has data sectors no descriptor uses",
            e.at / SECTOR,
            e.seq
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_later_writes_win_and_split_zero_ranges() {
        let mut o = Overlay::default();
        o.insert(0, 4 * SECTOR, Piece::Zero);
        let s = Piece::Sector {
            data: 1 << 20,
            leading: [1; 8],
            trailing: [2; 4],
        };
        o.insert(SECTOR, 2 * SECTOR, s.clone());
        let p = o.pieces(0, 8 * SECTOR);
        assert_eq!(
            p,
            vec![
                (0, SECTOR, Piece::Zero),
                (SECTOR, 2 * SECTOR, s.clone()),
                (2 * SECTOR, 4 * SECTOR, Piece::Zero)
            ]
        );
        // A zero range over everything replaces all of it.
        o.insert(0, 8 * SECTOR, Piece::Zero);
        assert_eq!(o.pieces(100, 200), vec![(100, 200, Piece::Zero)]);
        assert_eq!(o.ranges.len(), 1);
    }
}
