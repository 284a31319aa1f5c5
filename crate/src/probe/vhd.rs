//! Microsoft VHD (Virtual PC) and VHDX.
//!
//! VHD: "Virtual Hard Disk Image Format Specification" (Microsoft, 2006). Every VHD ends with a
//! 512-byte footer (`conectix`); dynamic and differencing disks also keep a copy at offset 0. A
//! fixed VHD is raw data plus that footer, so it is found from the tail (qemu only looks at offset
//! 0 and calls it raw). Virtual PC before 2004 wrote a 511-byte footer.
//!
//! VHDX: [MS-VHDX] sections 2.2 (headers at 64 and 128 KiB, region table at 192 KiB) and 2.6
//! (metadata region: file parameters, virtual disk size, sector sizes, parent locator).

use super::bytes::{has, le32, le64, slice, text, utf16, uuid};
use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::formats::vhd::dynamic::{DynHeaderProblem, VhdDynamicHeader};
use crate::formats::vhd::footer::{DiskType, FooterProblem, VhdFooter};
use crate::formats::vhd::guest_size;
use crate::formats::vhdx::header::{HEADER_LEN, HEADERS, VhdxFileIdentifier, VhdxHeader};
use crate::formats::vhdx::metadata::{
    GUID_FILE_PARAMETERS, GUID_LOGICAL_SECTOR, GUID_PAGE83, GUID_PARENT_LOCATOR,
    GUID_PHYSICAL_SECTOR, GUID_VIRTUAL_DISK_SIZE, LocatorHeader, MAX_METADATA_ENTRIES,
    MetadataTableHeader,
};
use crate::formats::vhdx::region::{
    GUID_BAT, GUID_METADATA, REGION_TABLE_LEN, REGION_TABLES, region_table,
};
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
    let (raw, short, at) = match (tail, head_copy) {
        (Some((f, short)), _) => {
            let at = if head_copy {
                0
            } else {
                cx.len - (512 - short) as u64
            };
            (f, short, at)
        }
        (None, true) => (slice(&cx.head, 0, 512), 0, 0),
        (None, false) => return Ok(()),
    };
    let (footer, problems) = VhdFooter::parse(raw);
    let checksum_ok = !problems
        .iter()
        .any(|p| matches!(p, FooterProblem::Checksum { .. }));
    // A stray "conectix" at the end of some other file must at least look like a footer.
    let plausible = checksum_ok
        || (matches!(footer.disk_type.get(), 2..=4) && footer.format_version.get() == 0x0001_0000);
    if tail.is_some() && !head_copy && !plausible {
        return Ok(());
    }
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
    if raw.len() < 85 {
        d.truncated("VHD footer");
    }
    if !checksum_ok {
        d.finding(
            FindingCode::Corrupt,
            Severity::Warning,
            "the VHD footer checksum does not match its contents",
        );
    }
    let current = footer.current_size.get();
    let chs = footer.chs_sectors() * 512;
    let creator = &footer.creator_app;
    let size = guest_size(creator, current, footer.chs_sectors());
    d.virtual_size = Some(size);
    let disk_type = footer.disk_type();
    d.set("disk-type", disk_type.map_or("unknown", DiskType::name));
    // The creator as far as a cut footer holds it.
    if let Some(c) = text(slice(raw, 28, 4)) {
        d.set("creator", c);
    }
    let (cyl, heads, spt) = (footer.cylinders.get(), footer.heads, footer.sectors);
    d.set(
        "geometry",
        json!({"cylinders": cyl, "heads": heads, "sectors": spt}),
    );
    // Virtual PC and qemu (creator `qemu`) size a disk by its geometry, Hyper-V by the footer
    // (qemu block/vpc.c): the size not used is kept here.
    if chs != current && (creator == b"vpc " || creator == b"qemu") && chs != 0 {
        d.set("chs-size", chs);
        let (used, other, by) = if size == chs {
            (
                chs,
                current,
                "its CHS geometry, as Virtual PC and qemu read it; Hyper-V would use the footer's",
            )
        } else {
            (
                current,
                chs,
                "the footer's current size (the geometry is the maximum one, or larger than the disk); Virtual PC would use the geometry's",
            )
        };
        d.finding(
            FindingCode::SizeAmbiguous,
            Severity::Info,
            format!("the disk is {used} bytes by {by} {other}"),
        );
    }
    d.set("uuid", uuid(footer.uuid));
    match disk_type {
        Some(DiskType::Fixed) => {
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
        Some(t) => {
            let diff = t == DiskType::Differencing;
            dynamic_header(cx, &mut d, footer.data_offset.get(), diff).await?;
        }
        None => d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            FooterProblem::UnknownDiskType(footer.disk_type.get()).message(),
        ),
    }
    scan.add(at, d);
    Ok(())
}

/// The dynamic disk header (`cxsparse`) of a dynamic or differencing VHD. Detection does not
/// check its checksum (the driver does).
async fn dynamic_header(cx: &Ctx<'_>, d: &mut Detection, offset: u64, diff: bool) -> Result<()> {
    let Some(raw) = cx.bytes(offset, 1024, "VHD dynamic header").await? else {
        d.truncated("VHD dynamic disk header");
        return Ok(());
    };
    let (h, problems) = VhdDynamicHeader::parse(&raw, offset);
    if let Some(p @ DynHeaderProblem::NoCookie { .. }) = problems.first() {
        d.finding(FindingCode::Corrupt, Severity::Critical, p.message());
        return Ok(());
    }
    let entries = h.max_table_entries.get();
    let block = h.block_size.get();
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
        let name = h.parent_name();
        let locators: Vec<String> = h
            .locators()
            .map(|l| String::from_utf8_lossy(&l.platform_code).trim().to_string())
            .collect();
        d.set("parent-locators", locators);
        d.set("parent-uuid", uuid(h.parent_uuid));
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

const TABLE_LEN: u64 = REGION_TABLE_LEN as u64;

pub async fn detect_vhdx(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    if VhdxFileIdentifier::parse(&cx.head).is_none() {
        return Ok(());
    }
    let mut d = Detection::new(Format::Vhdx);
    if let Some(c) = VhdxFileIdentifier::creator(&cx.head) {
        d.set("creator", c);
    }
    // The current header: the valid one with the higher sequence number.
    let mut current: Option<VhdxHeader> = None;
    for at in HEADERS {
        if let Some(b) = cx.bytes(at, HEADER_LEN as u64, "VHDX header").await?
            && let Some(h) = VhdxHeader::parse(&b)
        {
            let seq = h.sequence_number.get();
            if current
                .as_ref()
                .is_none_or(|c| seq > c.sequence_number.get())
            {
                current = Some(h);
            }
        }
    }
    let Some(header) = current else {
        if cx.len < HEADERS[1] + HEADER_LEN as u64 {
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
    d.set("version", header.version.get());
    if header.log_pending() {
        d.set("log-replay-needed", true);
        d.finding(
            FindingCode::Dirty,
            Severity::Warning,
            "the VHDX log holds writes not yet applied to the file (vmdisk replays them in memory; Hyper-V does on the next attach)",
        );
    }
    match regions(cx).await? {
        None => d.truncated("VHDX region table"),
        Some(t) => metadata(cx, &mut d, &t).await?,
    }
    scan.add(0, d);
    Ok(())
}

/// Region table entries (guid, offset, length, required) from the first valid table.
async fn regions(cx: &Ctx<'_>) -> Result<Option<Vec<(String, u64, u32, bool)>>> {
    let mut seen_any = false;
    for at in REGION_TABLES {
        let Some(t) = cx.bytes(at, TABLE_LEN, "VHDX region table").await? else {
            continue;
        };
        seen_any = true;
        let Some((_, entries)) = region_table(&t) else {
            continue;
        };
        let entries = entries
            .iter()
            .map(|e| (e.id(), e.file_offset.get(), e.length.get(), e.is_required()))
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
    let Some(header) = MetadataTableHeader::parse(&t) else {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VHDX metadata table has no signature",
        );
        return Ok(());
    };
    let count = usize::from(header.entry_count.get()).min(MAX_METADATA_ENTRIES);
    let mut has_parent = false;
    for i in 0..count {
        let e = MetadataTableHeader::entry(&t, i);
        let id = e.id();
        let (off, len) = (e.offset.get(), e.length.get());
        let required = e.is_required();
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
    let n = usize::from(LocatorHeader::parse(b).key_value_count.get()).min(256);
    let mut paths = serde_json::Map::new();
    for i in 0..n {
        let e = LocatorHeader::entry(b, i);
        let ((ko, kl), (vo, vl)) = (e.key(), e.value());
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
