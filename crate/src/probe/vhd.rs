//! Microsoft VHD (Virtual PC) and VHDX.
//!
//! VHD: "Virtual Hard Disk Image Format Specification" (Microsoft, 2006). Every VHD ends with a
//! 512-byte footer (`conectix`); dynamic and differencing disks also keep a copy at offset 0. A
//! fixed VHD is raw data plus that footer, so it is found from the tail (qemu only looks at offset
//! 0 and calls it raw). Virtual PC before 2004 wrote a 511-byte footer.
//!
//! VHDX: [MS-VHDX] sections 2.2 (headers at 64 and 128 KiB, region table at 192 KiB) and 2.6
//! (metadata region: file parameters, virtual disk size, sector sizes, parent locator).

use super::bytes::{arr, be16, be32, be64, guid, has, is_zero, le16, le32, le64, slice, utf16};
use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::report::Severity;
use crate::source::is_plain_name;
use serde_json::json;

pub async fn detect_vhd(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let head_copy = has(&cx.head, 0, b"conectix");
    // The footer proper: the last 512 bytes, or the last 511 of an old Virtual PC file.
    let tail = [0usize, 1].into_iter().find_map(|short| {
        cx.footer(512, short)
            .filter(|f| has(f, 0, b"conectix"))
            .map(|f| (f, short))
    });
    let (footer, short, at) = match (tail, head_copy) {
        (Some((f, short)), _) => {
            let at = if head_copy {
                0
            } else {
                cx.len - (512 - short) as u64
            };
            // A stray "conectix" at the end of some other file must at least look like a footer.
            if !head_copy && !plausible(f) {
                return Ok(());
            }
            (f, short, at)
        }
        (None, true) => (slice(&cx.head, 0, 512), 0, 0),
        (None, false) => return Ok(()),
    };
    let mut d = Detection::new(Format::Vhd);
    if short == 1 {
        d.set("footer-size", 511);
    }
    if tail.is_none() {
        d.finding(
            FindingCode::Truncated,
            Severity::Critical,
            "the VHD footer at the end of the file is missing (only the copy at offset 0 is there): the file is truncated",
        );
    }
    if footer.len() < 85 {
        d.truncated("VHD footer");
    }
    if !checksum_ok(footer) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Warning,
            "the VHD footer checksum does not match its contents",
        );
    }
    let current = be64(footer, 48);
    d.virtual_size = Some(current);
    let disk_type = be32(footer, 60);
    let type_name = match disk_type {
        2 => "fixed",
        3 => "dynamic",
        4 => "differencing",
        _ => "unknown",
    };
    d.set("disk-type", type_name);
    if let Some(c) = super::bytes::text(slice(footer, 28, 4)) {
        d.set("creator", c);
    }
    let (cyl, heads, spt) = (be16(footer, 56), footer.get(58), footer.get(59));
    let (heads, spt) = (
        u64::from(heads.copied().unwrap_or(0)),
        u64::from(spt.copied().unwrap_or(0)),
    );
    d.set(
        "geometry",
        json!({"cylinders": cyl, "heads": heads, "sectors": spt}),
    );
    // qemu sizes images made by Virtual PC and by itself from the CHS geometry (block/vpc.c).
    let chs = u64::from(cyl) * heads * spt * 512;
    let creator = arr::<4>(footer, 28);
    if chs != current && (&creator == b"vpc " || &creator == b"qemu") && chs != 0 {
        d.set("chs-size", chs);
        d.finding(
            FindingCode::SizeAmbiguous,
            Severity::Info,
            format!("the footer says {current} bytes but its CHS geometry gives {chs}: Virtual PC and qemu use the geometry, Hyper-V the footer"),
        );
    }
    d.set("uuid", super::bytes::uuid(arr(footer, 68)));
    match disk_type {
        2 => {
            let data = cx.len.saturating_sub(512 - short as u64);
            if head_copy {
                d.finding(
                    FindingCode::Corrupt,
                    Severity::Warning,
                    "a fixed VHD with a footer copy at offset 0",
                );
            } else if data < current {
                d.finding(
                    FindingCode::Truncated,
                    Severity::Critical,
                    format!(
                        "the fixed VHD holds {data} bytes of data but its footer says {current}"
                    ),
                );
            }
        }
        3 | 4 => dynamic_header(cx, &mut d, be64(footer, 16), disk_type == 4).await?,
        t => d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown VHD disk type {t}"),
        ),
    }
    scan.add(at, d);
    Ok(())
}

fn checksum_ok(f: &[u8]) -> bool {
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum == be32(f, 64)
}

fn plausible(f: &[u8]) -> bool {
    checksum_ok(f) || (matches!(be32(f, 60), 2..=4) && be32(f, 12) == 0x0001_0000)
}

/// The dynamic disk header (`cxsparse`) of a dynamic or differencing VHD.
async fn dynamic_header(cx: &Ctx<'_>, d: &mut Detection, offset: u64, diff: bool) -> Result<()> {
    let Some(h) = cx.bytes(offset, 1024, "VHD dynamic header").await? else {
        d.truncated("VHD dynamic disk header");
        return Ok(());
    };
    if !has(&h, 0, b"cxsparse") {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("no VHD dynamic disk header (cxsparse) at offset {offset}"),
        );
        return Ok(());
    }
    let entries = be32(&h, 28);
    let block = be32(&h, 32);
    d.set("block-size", block);
    d.set("max-table-entries", entries);
    if !block.is_power_of_two() || block < 512 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("VHD block size {block} is not a power of two"),
        );
    } else if u64::from(entries) * u64::from(block) < d.virtual_size.unwrap_or(0) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VHD block table is too small for the disk size",
        );
    }
    if diff {
        let name = utf16(slice(&h, 64, 512), true);
        let mut locators = vec![];
        for i in 0..8 {
            let e = slice(&h, 576 + i * 24, 24);
            let code = arr::<4>(e, 0);
            if code != [0; 4] {
                locators.push(String::from_utf8_lossy(&code).trim().to_string());
            }
        }
        d.set("parent-locators", locators);
        d.set("parent-uuid", super::bytes::uuid(arr(&h, 40)));
        let shown = name.clone().unwrap_or_else(|| "(unnamed)".into());
        if let Some(n) = name {
            d.set("parent", n);
        }
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("this differencing VHD depends on its parent {shown:?}"),
        );
    }
    Ok(())
}

const GUID_METADATA: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const GUID_BAT: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const GUID_FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const GUID_VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const GUID_LOGICAL_SECTOR: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const GUID_PHYSICAL_SECTOR: &str = "CDA348C7-445D-4471-9CC9-E9885251C556";
const GUID_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const GUID_PAGE83: &str = "BECA12AB-B2E6-4523-93EF-C309E000C746";

/// Offsets of the VHDX structures ([MS-VHDX] 2.2).
const HEADERS: [u64; 2] = [64 << 10, 128 << 10];
const REGION_TABLES: [u64; 2] = [192 << 10, 256 << 10];
const TABLE_LEN: u64 = 64 << 10;

pub async fn detect_vhdx(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    if !has(&cx.head, 0, b"vhdxfile") {
        return Ok(());
    }
    let mut d = Detection::new(Format::Vhdx);
    if let Some(c) = utf16(slice(&cx.head, 8, 512), false) {
        d.set("creator", c);
    }
    // The current header: the valid one with the higher sequence number.
    let mut current: Option<(u64, Vec<u8>)> = None;
    for at in HEADERS {
        if let Some(h) = cx.bytes(at, 4096, "VHDX header").await?
            && has(&h, 0, b"head")
            && crc_ok(&h)
        {
            let seq = le64(&h, 8);
            if current.as_ref().is_none_or(|(s, _)| seq > *s) {
                current = Some((seq, h.into_owned()));
            }
        }
    }
    let Some((_, header)) = current else {
        if cx.len < HEADERS[1] + 4096 {
            d.truncated("VHDX header");
        } else {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                "neither VHDX header is valid",
            );
        }
        scan.add(0, d);
        return Ok(());
    };
    d.set("version", le16(&header, 66));
    if !is_zero(slice(&header, 48, 16)) {
        d.set("log-replay-needed", true);
        d.finding(
            FindingCode::Dirty,
            Severity::Warning,
            "the VHDX log holds writes not yet applied to the file (vmdisk replays them in memory; Hyper-V does on the next attach)",
        );
    }
    match region_table(cx).await? {
        None => d.truncated("VHDX region table"),
        Some(t) => metadata(cx, &mut d, &t).await?,
    }
    scan.add(0, d);
    Ok(())
}

/// Region table entries (guid, offset, length, required) from the first valid table.
async fn region_table(cx: &Ctx<'_>) -> Result<Option<Vec<(String, u64, u32, bool)>>> {
    let mut seen_any = false;
    for at in REGION_TABLES {
        let Some(t) = cx.bytes(at, TABLE_LEN, "VHDX region table").await? else {
            continue;
        };
        seen_any = true;
        if !has(&t, 0, b"regi") || !crc_ok(&t) {
            continue;
        }
        let count = (le32(&t, 8) as usize).min(2047);
        let entries = (0..count)
            .map(|i| {
                let e = slice(&t, 16 + i * 32, 32);
                (
                    guid(arr(e, 0)),
                    le64(e, 16),
                    le32(e, 24),
                    le32(e, 28) & 1 != 0,
                )
            })
            .collect();
        return Ok(Some(entries));
    }
    Ok(if seen_any { Some(vec![]) } else { None })
}

async fn metadata(
    cx: &Ctx<'_>,
    d: &mut Detection,
    regions: &[(String, u64, u32, bool)],
) -> Result<()> {
    if regions.is_empty() {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "no valid VHDX region table",
        );
        return Ok(());
    }
    for (g, _, _, required) in regions {
        if *required && g != GUID_METADATA && g != GUID_BAT {
            d.finding(
                FindingCode::UnknownFeature,
                Severity::Critical,
                format!("the VHDX requires an unknown region {g}"),
            );
        }
    }
    let Some(&(_, base, region_len, _)) = regions.iter().find(|r| r.0 == GUID_METADATA) else {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VHDX has no metadata region",
        );
        return Ok(());
    };
    let table_len = u64::from(region_len).min(TABLE_LEN);
    let Some(t) = cx.bytes(base, table_len, "VHDX metadata table").await? else {
        d.truncated("VHDX metadata region");
        return Ok(());
    };
    if !has(&t, 0, b"metadata") {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VHDX metadata table has no signature",
        );
        return Ok(());
    }
    let count = usize::from(le16(&t, 10)).min(2047);
    let mut has_parent = false;
    for i in 0..count {
        let e = slice(&t, 32 + i * 32, 32);
        let id = guid(arr(e, 0));
        let (off, len) = (le32(e, 16), le32(e, 20));
        let required = le32(e, 24) & 4 != 0;
        if u64::from(off) + u64::from(len) > u64::from(region_len) || len > (1 << 20) {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("VHDX metadata item {id} lies outside its region"),
            );
            continue;
        }
        let at = base.saturating_add(u64::from(off));
        let item = async |n: u64| cx.bytes(at, n, "VHDX metadata item").await;
        match id.as_str() {
            GUID_VIRTUAL_DISK_SIZE => match item(8).await? {
                Some(b) => d.virtual_size = Some(le64(&b, 0)),
                None => d.truncated("VHDX virtual disk size"),
            },
            GUID_FILE_PARAMETERS => {
                if let Some(b) = item(8).await? {
                    d.set("block-size", le32(&b, 0));
                    has_parent = le32(&b, 4) & 2 != 0;
                    d.set(
                        "disk-type",
                        if has_parent {
                            "differencing"
                        } else if le32(&b, 4) & 1 != 0 {
                            "fixed"
                        } else {
                            "dynamic"
                        },
                    );
                }
            }
            GUID_LOGICAL_SECTOR => {
                if let Some(b) = item(4).await? {
                    d.set("logical-sector-size", le32(&b, 0));
                }
            }
            GUID_PHYSICAL_SECTOR => {
                if let Some(b) = item(4).await? {
                    d.set("physical-sector-size", le32(&b, 0));
                }
            }
            GUID_PARENT_LOCATOR => {
                if let Some(b) = item(u64::from(len)).await? {
                    parent_locator(d, &b);
                }
            }
            GUID_PAGE83 => {}
            _ if required => d.finding(
                FindingCode::UnknownFeature,
                Severity::Critical,
                format!("the VHDX requires unknown metadata {id}"),
            ),
            _ => {}
        }
    }
    if has_parent && !d.details.contains_key("parent") {
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            "this differencing VHDX depends on a parent disk",
        );
    }
    Ok(())
}

/// The parent locator's key/value pairs ([MS-VHDX] 2.6.2.6): report the parent's path.
fn parent_locator(d: &mut Detection, b: &[u8]) {
    let n = usize::from(le16(b, 18)).min(256);
    let mut paths = serde_json::Map::new();
    for i in 0..n {
        let e = slice(b, 20 + i * 12, 12);
        let (ko, vo) = (le32(e, 0) as usize, le32(e, 4) as usize);
        let (kl, vl) = (usize::from(le16(e, 8)), usize::from(le16(e, 10)));
        let (Some(k), Some(v)) = (
            utf16(slice(b, ko, kl), false),
            utf16(slice(b, vo, vl), false),
        ) else {
            continue;
        };
        paths.insert(k, v.into());
    }
    let parent = ["relative_path", "absolute_win32_path", "volume_path"]
        .iter()
        .find_map(|k| paths.get(*k).and_then(|v| v.as_str()).map(str::to_string));
    d.set("parent-locator", serde_json::Value::Object(paths));
    if let Some(p) = parent {
        let how = if is_plain_name(&p) { "" } else { " (a path)" };
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("this differencing VHDX depends on its parent {p:?}{how}"),
        );
        d.set("parent", p);
    }
}

/// CRC-32C over a VHDX structure whose checksum field (bytes 4..8) counts as zero.
fn crc_ok(buf: &[u8]) -> bool {
    let mut c = !0u32;
    for (i, &b) in buf.iter().enumerate() {
        let b = if (4..8).contains(&i) { 0 } else { b };
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c == le32(buf, 4)
}
