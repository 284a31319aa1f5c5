//! The metadata region ([MS-VHDX] 2.6): file parameters, virtual disk size, sector sizes,
//! page 83 data and the parent locator. The table and locator layouts here are shared with
//! detection.

use super::region::Region;
use super::{MIB, Vhdx};
use crate::error::{Error, Result};
use crate::formats::common::bytes::{arr, guid, le32, le64, utf16, whole_fields};
use crate::formats::common::layout::on_disk;
use core::mem::size_of;
use zerocopy::byteorder::little_endian::{U16, U32};

pub(crate) const METADATA_TABLE_LEN: usize = 64 << 10;
/// The most entries a 64 KiB table holds.
pub(crate) const MAX_METADATA_ENTRIES: usize = 2047;
/// [MS-VHDX] 2.6.1.3: no metadata item is larger than 1 MiB.
const MAX_ITEM_LEN: u32 = 1 << 20;
/// [MS-VHDX] 2.6.2.2: at most 64 TiB.
const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

pub(crate) const GUID_FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
pub(crate) const GUID_VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
pub(crate) const GUID_PAGE83: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";
pub(crate) const GUID_LOGICAL_SECTOR: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
pub(crate) const GUID_PHYSICAL_SECTOR: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";
pub(crate) const GUID_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const GUID_VHDX_LOCATOR_TYPE: &str = "B04AEFB7-D19E-4A81-B789-25B8E9445913";

on_disk! {
    /// The metadata table header as stored (little-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct MetadataTableHeader: 32 {
        0 signature: [u8; 8],
        8 reserved: U16,
        10 entry_count: U16,
        12 reserved2: [u8; 20],
    }

    /// A metadata table entry as stored (little-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct MetadataEntry: 32 {
        0 item_id: [u8; 16],
        /// From the start of the metadata region.
        16 offset: U32,
        20 length: U32,
        /// Bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired.
        24 flags: U32,
        28 reserved: U32,
    }

    /// The parent locator header ([MS-VHDX] 2.6.2.6) as stored (little-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct LocatorHeader: 20 {
        0 locator_type: [u8; 16],
        16 reserved: U16,
        18 key_value_count: U16,
    }

    /// A parent locator key/value entry: offsets and lengths of UTF-16 strings in the locator.
    #[derive(Clone, Copy)]
    pub(crate) struct LocatorEntry: 12 {
        0 key_offset: U32,
        4 value_offset: U32,
        8 key_length: U16,
        10 value_length: U16,
    }
}

impl MetadataTableHeader {
    /// The table header at the start of `t`; None without the `metadata` signature.
    pub(crate) fn parse(t: &[u8]) -> Option<MetadataTableHeader> {
        let h: MetadataTableHeader = whole_fields(t);
        (&h.signature == b"metadata").then_some(h)
    }

    /// Entry `i` of the table `t` (fields past its end read as zeros).
    pub(crate) fn entry(t: &[u8], i: usize) -> MetadataEntry {
        let at = size_of::<MetadataTableHeader>() + i * size_of::<MetadataEntry>();
        whole_fields(t.get(at..).unwrap_or_default())
    }
}

impl MetadataEntry {
    pub(crate) fn id(&self) -> String {
        guid(self.item_id)
    }

    pub(crate) fn is_required(&self) -> bool {
        self.flags.get() & 4 != 0
    }
}

impl LocatorEntry {
    /// (offset, length) of the key in the locator.
    pub(crate) fn key(&self) -> (usize, usize) {
        (
            self.key_offset.get() as usize,
            usize::from(self.key_length.get()),
        )
    }

    /// (offset, length) of the value in the locator.
    pub(crate) fn value(&self) -> (usize, usize) {
        (
            self.value_offset.get() as usize,
            usize::from(self.value_length.get()),
        )
    }
}

impl LocatorHeader {
    /// The header at the start of `b` (fields past its end read as zeros).
    pub(crate) fn parse(b: &[u8]) -> LocatorHeader {
        whole_fields(b)
    }

    /// Key/value entry `i` of the locator `b` (fields past its end read as zeros).
    pub(crate) fn entry(b: &[u8], i: usize) -> LocatorEntry {
        let at = size_of::<LocatorHeader>() + i * size_of::<LocatorEntry>();
        whole_fields(b.get(at..).unwrap_or_default())
    }
}

impl Vhdx {
    /// The metadata region ([MS-VHDX] 2.6).
    pub(super) async fn metadata(&mut self, meta: &Region) -> Result<()> {
        if meta.length < METADATA_TABLE_LEN as u64 {
            return Err(Error::corrupt(
                "the VHDX metadata region is smaller than its 64 KiB table",
            ));
        }
        let t = self
            .read(meta.offset, METADATA_TABLE_LEN, "VHDX metadata table")
            .await?;
        let Some(header) = MetadataTableHeader::parse(&t) else {
            return Err(Error::corrupt("the VHDX metadata table has no signature"));
        };
        let count = usize::from(header.entry_count.get());
        if count > MAX_METADATA_ENTRIES {
            return Err(Error::corrupt(format!(
                "the VHDX metadata table has {count} entries (at most 2047)"
            )));
        }
        let mut seen: Vec<String> = vec![];
        let (mut params, mut size, mut logical, mut physical) = (None, None, None, None);
        for i in 0..count {
            let e = MetadataTableHeader::entry(&t, i);
            let id = e.id();
            let (off, len) = (e.offset.get(), e.length.get());
            let required = e.is_required();
            if seen.contains(&id) {
                return Err(Error::corrupt(format!(
                    "VHDX metadata item {id} appears twice"
                )));
            }
            seen.push(id.clone());
            let inside = u64::from(off) >= METADATA_TABLE_LEN as u64
                && u64::from(off) + u64::from(len) <= meta.length
                && len <= MAX_ITEM_LEN;
            let item = async |n: u32| -> Result<Vec<u8>> {
                if !inside || len < n {
                    return Err(Error::corrupt(format!(
                        "VHDX metadata item {id} (offset {off}, {len} bytes) is too short or lies outside the metadata region"
                    )));
                }
                self.read(
                    meta.offset + u64::from(off),
                    n as usize,
                    "VHDX metadata item",
                )
                .await
            };
            match id.as_str() {
                GUID_FILE_PARAMETERS => params = Some(item(8).await?),
                GUID_VIRTUAL_DISK_SIZE => size = Some(le64(&item(8).await?, 0)),
                GUID_LOGICAL_SECTOR => logical = Some(le32(&item(4).await?, 0)),
                GUID_PHYSICAL_SECTOR => physical = Some(le32(&item(4).await?, 0)),
                GUID_PAGE83 => self.page83 = Some(arr(&item(16).await?, 0)),
                GUID_PARENT_LOCATOR => {
                    let b = item(len).await?;
                    self.parse_locator(&b)?;
                }
                _ if required => {
                    return Err(Error::unsupported(format!(
                        "the VHDX requires metadata item {id}, which vmdisk does not know"
                    )));
                }
                _ => {}
            }
        }
        let missing = |what: &str| Error::corrupt(format!("the VHDX metadata has no {what}"));
        let params = params.ok_or_else(|| missing("file parameters"))?;
        let bs = u64::from(le32(&params, 0));
        let flags = le32(&params, 4);
        if !bs.is_power_of_two() || !(MIB..=256 * MIB).contains(&bs) {
            return Err(Error::corrupt(format!(
                "VHDX block size {bs} (a power of two from 1 MiB to 256 MiB)"
            )));
        }
        self.block_size = bs;
        self.leave_allocated = flags & 1 != 0;
        self.has_parent = flags & 2 != 0;
        let logical = logical.ok_or_else(|| missing("logical sector size"))?;
        let physical = physical.ok_or_else(|| missing("physical sector size"))?;
        for (what, v) in [("logical", logical), ("physical", physical)] {
            if v != 512 && v != 4096 {
                return Err(Error::corrupt(format!(
                    "VHDX {what} sector size {v} (512 or 4096)"
                )));
            }
        }
        self.logical_sector = u64::from(logical);
        self.physical_sector = u64::from(physical);
        let size = size.ok_or_else(|| missing("virtual disk size"))?;
        if size > MAX_VIRTUAL_SIZE {
            return Err(Error::corrupt(format!(
                "VHDX virtual disk size {size} exceeds 64 TiB"
            )));
        }
        if !size.is_multiple_of(self.logical_sector) {
            return Err(Error::corrupt(format!(
                "VHDX virtual disk size {size} is not a multiple of the {logical}-byte logical sector"
            )));
        }
        self.virtual_size = size;
        if self.page83.is_none() {
            return Err(missing("page 83 data (disk identifier)"));
        }
        if self.has_parent && self.locator.is_empty() {
            return Err(Error::corrupt(
                "this differencing VHDX has no parent locator",
            ));
        }
        Ok(())
    }

    /// The parent locator ([MS-VHDX] 2.6.2.6): a type GUID and UTF-16 key/value pairs.
    pub(super) fn parse_locator(&mut self, b: &[u8]) -> Result<()> {
        let header = LocatorHeader::parse(b);
        let kind = guid(header.locator_type);
        if kind != GUID_VHDX_LOCATOR_TYPE {
            return Err(Error::unsupported(format!(
                "VHDX parent locator type {kind}"
            )));
        }
        let n = usize::from(header.key_value_count.get());
        if 20 + n * 12 > b.len() {
            return Err(Error::corrupt(format!(
                "the VHDX parent locator's {n} entries do not fit in it"
            )));
        }
        for i in 0..n {
            let e = LocatorHeader::entry(b, i);
            let ((ko, kl), (vo, vl)) = (e.key(), e.value());
            let fits = |o: usize, l: usize| o.checked_add(l).is_some_and(|end| end <= b.len());
            if !fits(ko, kl) || !fits(vo, vl) || kl == 0 || vl == 0 {
                return Err(Error::corrupt(format!(
                    "VHDX parent locator entry {i} lies outside the locator"
                )));
            }
            let k = utf16(&b[ko..ko + kl], false).unwrap_or_default();
            let v = utf16(&b[vo..vo + vl], false).unwrap_or_default();
            self.locator.push((k, v));
        }
        Ok(())
    }

    pub(super) fn locator(&self, key: &str) -> Option<&str> {
        self.locator
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
