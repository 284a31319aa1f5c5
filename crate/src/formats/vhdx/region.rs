//! The region table ([MS-VHDX] 2.2.3): where the BAT and the metadata region lie.
//! [`region_table`] is the one parser the driver and detection share.

use super::MIB;
use super::checksum::crc_ok;
use super::log::Overlay;
use crate::error::{Error, Result};
use crate::finding_code::FindingCode;
use crate::formats::common::bytes::guid;
use crate::formats::common::layout::on_disk;
use crate::report::{Finding, Severity};
use crate::source::Source;
use zerocopy::FromBytes;
use zerocopy::byteorder::little_endian::{U32, U64};

/// Where the two region tables lie, and their size.
pub(crate) const REGION_TABLES: [u64; 2] = [192 << 10, 256 << 10];
pub(crate) const REGION_TABLE_LEN: usize = 64 << 10;
/// The most entries a 64 KiB table holds.
pub(crate) const MAX_REGIONS: usize = 2047;

pub(crate) const GUID_BAT: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
pub(crate) const GUID_METADATA: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";

on_disk! {
    /// The region table header as stored (little-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct RegionTableHeader: 16 {
        0 signature: [u8; 4],
        4 checksum: U32,
        8 entry_count: U32,
        12 reserved: U32,
    }

    /// A region table entry as stored (little-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct RegionEntry: 32 {
        0 guid: [u8; 16],
        16 file_offset: U64,
        24 length: U32,
        /// Bit 0: a reader that does not know the region must refuse the file.
        28 required: U32,
    }
}

impl RegionEntry {
    pub(crate) fn id(&self) -> String {
        guid(self.guid)
    }

    pub(crate) fn is_required(&self) -> bool {
        self.required.get() & 1 != 0
    }
}

/// A region table (64 KiB) whose signature and CRC-32C are valid: the entry count it declares
/// and its first `min(count, 2047)` entries (each side judges a larger count).
pub(crate) fn region_table(b: &[u8]) -> Option<(u32, Vec<RegionEntry>)> {
    let (h, rest) = RegionTableHeader::read_from_prefix(b).ok()?;
    if &h.signature != b"regi" || !crc_ok(b) {
        return None;
    }
    let count = h.entry_count.get();
    let n = (count as usize).min(MAX_REGIONS);
    let (entries, _) = <[RegionEntry]>::ref_from_prefix_with_elems(rest, n).ok()?;
    Some((count, entries.to_vec()))
}

#[derive(Clone)]
pub(super) struct Region {
    pub(super) offset: u64,
    pub(super) length: u64,
}

/// Read both region tables (through the log overlay): both are checked, the first valid one
/// is used, and its BAT and metadata regions are returned.
pub(super) async fn read(
    overlay: &Overlay,
    src: &dyn Source,
    findings: &mut Vec<Finding>,
) -> Result<(Region, Region)> {
    let mut tables = vec![];
    for at in REGION_TABLES {
        let mut b = vec![0u8; REGION_TABLE_LEN];
        overlay.read(src, at, &mut b, "VHDX region table").await?;
        tables.push(region_table(&b).is_some().then_some(b));
    }
    let table = match (&tables[0], &tables[1]) {
        (Some(t), other) | (None, other @ Some(t)) => {
            if other.is_none() || tables[0].is_none() {
                let bad = if tables[0].is_none() { 1 } else { 2 };
                findings.push(Finding::new(
                    FindingCode::Corrupt,
                    Severity::Warning,
                    format!("VHDX region table {bad} is damaged (bad signature or checksum); the other one is used"),
                ));
            } else if tables[0] != tables[1] {
                findings.push(Finding::new(
                    FindingCode::Corrupt,
                    Severity::Warning,
                    "the two VHDX region tables differ; the first is used",
                ));
            }
            t.clone()
        }
        (None, None) => {
            return Err(Error::corrupt(
                "neither VHDX region table has a valid signature and checksum",
            ));
        }
    };
    regions(&table, overlay, src)
}

/// The BAT and metadata regions of a region table, checked against the file.
fn regions(t: &[u8], overlay: &Overlay, src: &dyn Source) -> Result<(Region, Region)> {
    let (count, entries) = region_table(t).unwrap_or_default();
    if count as usize > MAX_REGIONS {
        return Err(Error::corrupt(format!(
            "the VHDX region table has {count} entries (at most 2047)"
        )));
    }
    let (mut bat, mut meta) = (None, None);
    let flen = overlay.len.max(src.len());
    let mut seen: Vec<(u64, u64)> = vec![];
    for e in &entries {
        let id = e.id();
        let offset = e.file_offset.get();
        let length = u64::from(e.length.get());
        let required = e.is_required();
        let slot = match id.as_str() {
            GUID_BAT => &mut bat,
            GUID_METADATA => &mut meta,
            _ if required => {
                return Err(Error::unsupported(format!(
                    "the VHDX requires region {id}, which vmdisk does not know"
                )));
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::corrupt(format!("VHDX region {id} appears twice")));
        }
        if offset < MIB || !offset.is_multiple_of(MIB) || !length.is_multiple_of(MIB) || length == 0
        {
            return Err(Error::corrupt(format!(
                "VHDX region {id} at offset {offset} (+{length} bytes) is not aligned to 1 MiB"
            )));
        }
        if offset.checked_add(length).is_none_or(|end| end > flen) {
            return Err(Error::truncated(format!(
                "VHDX region {id} at offset {offset} (+{length} bytes) lies past the end of {} ({flen} bytes)",
                src.name()
            )));
        }
        if seen
            .iter()
            .any(|&(o, l)| offset < o + l && o < offset + length)
        {
            return Err(Error::corrupt(format!(
                "VHDX region {id} overlaps another region"
            )));
        }
        seen.push((offset, length));
        *slot = Some(Region { offset, length });
    }
    let bat = bat.ok_or_else(|| Error::corrupt("the VHDX has no BAT region"))?;
    let meta = meta.ok_or_else(|| Error::corrupt("the VHDX has no metadata region"))?;
    Ok((bat, meta))
}
