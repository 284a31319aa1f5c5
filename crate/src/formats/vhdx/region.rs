//! The region table ([MS-VHDX] 2.2.3): where the BAT and the metadata region lie.

use super::MIB;
use super::checksum::crc_ok;
use super::log::Overlay;
use crate::error::{Error, Result};
use crate::finding_code::FindingCode;
use crate::formats::common::bytes::{arr, guid, has, le32, le64, slice};
use crate::report::{Finding, Severity};
use crate::source::Source;

const REGION_TABLES: [u64; 2] = [192 << 10, 256 << 10];
const REGION_TABLE_LEN: usize = 64 << 10;

const GUID_BAT: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const GUID_METADATA: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";

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
        tables.push((has(&b, 0, b"regi") && crc_ok(&b)).then_some(b));
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
    let count = le32(t, 8) as usize;
    if count > 2047 {
        return Err(Error::corrupt(format!(
            "the VHDX region table has {count} entries (at most 2047)"
        )));
    }
    let (mut bat, mut meta) = (None, None);
    let flen = overlay.len.max(src.len());
    let mut seen: Vec<(u64, u64)> = vec![];
    for i in 0..count {
        let e = slice(t, 16 + i * 32, 32);
        let id = guid(arr(e, 0));
        let offset = le64(e, 16);
        let length = u64::from(le32(e, 24));
        let required = le32(e, 28) & 1 != 0;
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
