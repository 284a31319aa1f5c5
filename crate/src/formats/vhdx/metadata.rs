//! The metadata region ([MS-VHDX] 2.6): file parameters, virtual disk size, sector sizes,
//! page 83 data and the parent locator.

use super::region::Region;
use super::{MIB, Vhdx};
use crate::error::{Error, Result};
use crate::formats::common::bytes::{arr, guid, has, le16, le32, le64, slice, utf16};

const METADATA_TABLE_LEN: usize = 64 << 10;
/// [MS-VHDX] 2.6.1.3: no metadata item is larger than 1 MiB.
const MAX_ITEM_LEN: u32 = 1 << 20;
/// [MS-VHDX] 2.6.2.2: at most 64 TiB.
const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

const GUID_FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const GUID_VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const GUID_PAGE83: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";
const GUID_LOGICAL_SECTOR: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const GUID_PHYSICAL_SECTOR: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";
const GUID_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const GUID_VHDX_LOCATOR_TYPE: &str = "B04AEFB7-D19E-4A81-B789-25B8E9445913";

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
        if !has(&t, 0, b"metadata") {
            return Err(Error::corrupt("the VHDX metadata table has no signature"));
        }
        let count = usize::from(le16(&t, 10));
        if count > 2047 {
            return Err(Error::corrupt(format!(
                "the VHDX metadata table has {count} entries (at most 2047)"
            )));
        }
        let mut seen: Vec<String> = vec![];
        let (mut params, mut size, mut logical, mut physical) = (None, None, None, None);
        for i in 0..count {
            let e = slice(&t, 32 + i * 32, 32);
            let id = guid(arr(e, 0));
            let (off, len) = (le32(e, 16), le32(e, 20));
            let required = le32(e, 24) & 4 != 0;
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
        let kind = guid(arr(b, 0));
        if kind != GUID_VHDX_LOCATOR_TYPE {
            return Err(Error::unsupported(format!(
                "VHDX parent locator type {kind}"
            )));
        }
        let n = usize::from(le16(b, 18));
        if 20 + n * 12 > b.len() {
            return Err(Error::corrupt(format!(
                "the VHDX parent locator's {n} entries do not fit in it"
            )));
        }
        for i in 0..n {
            let e = slice(b, 20 + i * 12, 12);
            let (ko, vo) = (le32(e, 0) as usize, le32(e, 4) as usize);
            let (kl, vl) = (usize::from(le16(e, 8)), usize::from(le16(e, 10)));
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
