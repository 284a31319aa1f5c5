//! The block allocation table ([MS-VHDX] 2.5): payload block and sector bitmap entries.

use super::{MIB, Vhdx};
use crate::error::{Error, ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::formats::common::bytes::le64;
use crate::report::{Finding, Severity};

/// BAT entries validated at open (larger BATs are checked as `map` reads them).
pub(super) const MAX_SCANNED_BAT: u64 = 16 << 20;
/// BAT entries read per request in `map`.
pub(super) const BAT_WINDOW: u64 = 4096;

// BAT entry states ([MS-VHDX] 2.5.1).
pub(super) const PAYLOAD_NOT_PRESENT: u64 = 0;
pub(super) const PAYLOAD_UNDEFINED: u64 = 1;
pub(super) const PAYLOAD_ZERO: u64 = 2;
pub(super) const PAYLOAD_UNMAPPED: u64 = 3;
pub(super) const PAYLOAD_FULLY_PRESENT: u64 = 6;
pub(super) const PAYLOAD_PARTIALLY_PRESENT: u64 = 7;
pub(super) const SB_NOT_PRESENT: u64 = 0;
pub(super) const SB_PRESENT: u64 = 6;

impl Vhdx {
    pub(super) fn blocks(&self) -> u64 {
        self.virtual_size.div_ceil(self.block_size)
    }

    /// BAT entries covering the virtual size ([MS-VHDX] 2.5).
    pub(super) fn bat_entries(&self) -> u64 {
        let blocks = self.blocks();
        if self.has_parent {
            blocks.div_ceil(self.chunk_ratio) * (self.chunk_ratio + 1)
        } else if blocks == 0 {
            0
        } else {
            blocks + (blocks - 1) / self.chunk_ratio
        }
    }

    /// Read BAT entries `[first, first + n)`.
    pub(super) async fn bat_read(&self, first: u64, n: u64) -> Result<Vec<u64>> {
        let b = self
            .read(self.bat.offset + first * 8, (n * 8) as usize, "VHDX BAT")
            .await?;
        Ok(b.chunks_exact(8).map(|c| le64(c, 0)).collect())
    }

    /// Validate every BAT entry once at open (bounded): a damaged or truncated image shows up
    /// as a finding before a conversion starts.
    pub(super) async fn scan_bat(&mut self) -> Result<()> {
        let total = self.bat_entries().min(MAX_SCANNED_BAT);
        let mut i = 0;
        while i < total {
            let n = (total - i).min(64 * BAT_WINDOW);
            let entries = self.bat_read(i, n).await?;
            for (k, &e) in entries.iter().enumerate() {
                if let Err(err) = self.check_entry(i + k as u64, e) {
                    let msg = match err.kind {
                        ErrorKind::Corrupt => err.message,
                        _ => err.to_string(),
                    };
                    let code = FindingCode::Corrupt;
                    self.findings
                        .push(Finding::new(code, Severity::Critical, msg.clone()));
                    self.blocked = Some((false, msg));
                    return Ok(());
                }
            }
            i += n;
        }
        Ok(())
    }

    /// Is BAT entry `index` a sector bitmap entry?
    pub(super) fn is_bitmap_entry(&self, index: u64) -> bool {
        index % (self.chunk_ratio + 1) == self.chunk_ratio
    }

    /// Check one BAT entry: a known state and, when it points into the file, a block past the
    /// header section.
    pub(super) fn check_entry(&self, index: u64, e: u64) -> Result<()> {
        let state = e & 7;
        let offset = (e >> 20) << 20;
        let (known, with_offset) = if self.is_bitmap_entry(index) {
            (
                matches!(state, SB_NOT_PRESENT | SB_PRESENT),
                state == SB_PRESENT,
            )
        } else {
            let known = matches!(
                state,
                PAYLOAD_NOT_PRESENT
                    | PAYLOAD_UNDEFINED
                    | PAYLOAD_ZERO
                    | PAYLOAD_UNMAPPED
                    | PAYLOAD_FULLY_PRESENT
            ) || (state == PAYLOAD_PARTIALLY_PRESENT && self.has_parent);
            (
                known,
                matches!(state, PAYLOAD_FULLY_PRESENT | PAYLOAD_PARTIALLY_PRESENT),
            )
        };
        if !known {
            return Err(Error::corrupt(format!(
                "VHDX BAT entry {index} has invalid state {state}"
            )));
        }
        // A block past the end of the file is mapped all the same: the integrity walk counts
        // it (`Vhdx::layout`).
        if with_offset && offset < MIB {
            return Err(Error::corrupt(format!(
                "VHDX BAT entry {index} points into the header section (offset {offset})"
            )));
        }
        Ok(())
    }
}
