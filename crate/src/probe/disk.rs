//! Raw content: the partition table (MBR, GPT) or boot-sector filesystem of a raw disk, named in
//! `details` (`partition-table`, `partitions`, `filesystem`). These never make a format of their
//! own: a raw disk stays `raw`, a hybrid ISO stays `iso`.
//!
//! Specs: UEFI 2.10 section 5 (GPT header and entries, protective MBR), the classic MBR layout
//! (four 16-byte entries at 446, 0x55AA at 510; logical partitions chained through EBRs).

use super::Ctx;
use super::bytes::{arr, guid, has, le32, le64, slice, utf16};
use super::fs::{self, BTRFS_SB};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};
use serde_json::{Map, Value, json};

/// Partitions whose filesystem is sniffed (two small reads each).
const MAX_SNIFFED: usize = 16;
/// Partitions listed in details.
const MAX_LISTED: usize = 128;
/// Logical partitions followed along an EBR chain.
const MAX_LOGICAL: usize = 64;
/// GPT partition entry array limits (the spec minimum is 128 x 128 bytes).
const MAX_GPT_ENTRIES: u32 = 4096;
const MAX_GPT_ARRAY: u64 = 1 << 20;

/// What the raw bytes of the disk hold.
#[derive(Default)]
pub struct Content {
    pub details: Map<String, Value>,
    pub findings: Vec<Finding>,
    /// An MBR or GPT partition table is present.
    pub has_table: bool,
}

struct Part {
    json: Map<String, Value>,
    start: u64,
    size: u64,
}

pub async fn analyse(cx: &Ctx<'_>) -> Result<Content> {
    let mut c = Content::default();
    let h = &cx.head;
    if let Some(problem) = glance_mbr_problem(h) {
        c.details.insert("mbr-problem".into(), problem.into());
    }
    let boot_fs = fs::identify(h, slice(h, BTRFS_SB, 4096));
    let mbr = if boot_fs.is_none() {
        mbr_entries(h)
    } else {
        None
    };
    let gpt_sector = [512usize, 4096]
        .into_iter()
        .find(|&s| has(h, s, b"EFI PART"));
    let parts = if let Some(ss) = gpt_sector {
        c.has_table = true;
        c.details.insert("partition-table".into(), "gpt".into());
        if !mbr.as_ref().is_some_and(|m| m.iter().any(|e| e.1 == 0xee)) {
            c.details.insert("protective-mbr".into(), false.into());
        }
        gpt(cx, ss, &mut c).await?
    } else if let Some(entries) = mbr {
        c.has_table = true;
        c.details.insert("partition-table".into(), "mbr".into());
        if entries.iter().any(|e| e.1 == 0xee) {
            c.findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                "a protective MBR (type 0xee) but no GPT header at LBA 1",
            ));
        }
        mbr_partitions(cx, &entries, &mut c).await?
    } else {
        if let Some(f) = boot_fs {
            c.details.extend(f.to_json());
        }
        return Ok(c);
    };
    let mut listed = vec![];
    for (i, p) in parts.into_iter().enumerate() {
        let mut j = p.json;
        if p.start.saturating_add(p.size) > cx.len {
            c.findings.push(Finding::new(
                FindingCode::PartitionPastEnd,
                Severity::Warning,
                format!(
                    "partition {} ends at byte {}, past the end of the file ({} bytes): the disk image is truncated or was shrunk",
                    j.get("index").and_then(Value::as_u64).unwrap_or(0),
                    p.start.saturating_add(p.size),
                    cx.len
                ),
            ));
        } else if i < MAX_SNIFFED
            && let Some(f) = sniff(cx, p.start, p.size).await?
        {
            j.insert("filesystem".into(), f.kind.into());
            for k in ["label", "uuid"] {
                if let Some(v) = f.to_json().remove(k) {
                    j.insert(k.into(), v);
                }
            }
        }
        if listed.len() < MAX_LISTED {
            listed.push(Value::Object(j));
        }
    }
    c.details.insert("partitions".into(), Value::Array(listed));
    Ok(c)
}

/// The filesystem at the start of a partition.
async fn sniff(cx: &Ctx<'_>, start: u64, size: u64) -> Result<Option<fs::Fs>> {
    let n = size.min(4096);
    let Some(at0) = cx.bytes(start, n, "partition start").await? else {
        return Ok(None);
    };
    if let Some(f) = fs::identify(&at0, &[]) {
        return Ok(Some(f));
    }
    if size < (BTRFS_SB + 4096) as u64 {
        return Ok(None);
    }
    let Some(sb) = cx
        .bytes(start + BTRFS_SB as u64, 4096, "partition superblock")
        .await?
    else {
        return Ok(None);
    };
    Ok(fs::identify(&[], &sb))
}

/// What glance's partition-table check (oslo.utils format_inspector `GPTInspector`) refuses
/// in a first sector that bears the 0x55AA signature and is not a FAT boot sector: a boot
/// flag other than 0x00/0x80, a protective entry (0xEE) that does not start at CHS 0/2/0 and
/// LBA 1 or is not the only entry, or no partition at all.
fn glance_mbr_problem(h: &[u8]) -> Option<String> {
    if !has(h, 510, &[0x55, 0xaa]) || (h[0x10] == 2 && h[0x15] == 0xf8) {
        return None;
    }
    let mut used = vec![];
    let mut protective = false;
    for i in 0..4 {
        let e = slice(h, 446 + i * 16, 16);
        if e[0] != 0 && e[0] != 0x80 {
            return Some(format!(
                "partition entry {} has an invalid boot flag",
                i + 1
            ));
        }
        if e[4] != 0 {
            used.push(i);
        }
        if e[4] == 0xee {
            protective = true;
            if e[1..4] != [0, 2, 0] {
                return Some("the protective MBR entry does not start at CHS 0/2/0".into());
            }
            if le32(e, 8) != 1 {
                return Some("the protective MBR entry does not start at LBA 1".into());
            }
        }
    }
    if protective && used != [0] {
        return Some("the protective MBR defines partitions besides the GPT's".into());
    }
    if used.is_empty() {
        return Some("the MBR signature is there but no partition is defined".into());
    }
    None
}

/// The four primary MBR entries as (status, type, start LBA, sectors), or None when sector 0
/// is not an MBR with at least one partition.
fn mbr_entries(h: &[u8]) -> Option<Vec<(u8, u8, u32, u32)>> {
    if !has(h, 510, &[0x55, 0xaa]) {
        return None;
    }
    let entries: Vec<_> = (0..4)
        .map(|i| {
            let e = slice(h, 446 + i * 16, 16);
            (e[0], e[4], le32(e, 8), le32(e, 12))
        })
        .collect();
    let valid = entries.iter().all(|e| e.0 == 0 || e.0 == 0x80);
    let used = entries.iter().any(|e| e.1 != 0 && e.3 != 0);
    (valid && used).then_some(entries)
}

fn mbr_type(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 | 0x06 => "FAT16",
        0x05 | 0x0f | 0x85 => "extended",
        0x07 => "NTFS/exFAT",
        0x0b | 0x0c => "FAT32",
        0x0e => "FAT16 (LBA)",
        0x17 => "hidden NTFS",
        0x27 => "Windows recovery",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xee => "GPT protective",
        0xef => "EFI System",
        0xfd => "Linux RAID",
        _ => "unknown",
    }
}

fn mbr_part(index: usize, e: (u8, u8, u32, u32), base: u64) -> Part {
    let start = (base + u64::from(e.2)) * 512;
    let size = u64::from(e.3) * 512;
    let mut j = Map::new();
    j.insert("index".into(), index.into());
    j.insert("type".into(), format!("0x{:02x}", e.1).into());
    j.insert("type-name".into(), mbr_type(e.1).into());
    j.insert("start".into(), start.into());
    j.insert("size".into(), size.into());
    if e.0 == 0x80 {
        j.insert("bootable".into(), true.into());
    }
    Part {
        json: j,
        start,
        size,
    }
}

async fn mbr_partitions(
    cx: &Ctx<'_>,
    entries: &[(u8, u8, u32, u32)],
    c: &mut Content,
) -> Result<Vec<Part>> {
    let mut parts = vec![];
    let mut extended = None;
    for (i, e) in entries.iter().enumerate() {
        if e.1 == 0 || e.3 == 0 {
            continue;
        }
        if matches!(e.1, 0x05 | 0x0f | 0x85) && extended.is_none() {
            extended = Some(u64::from(e.2));
        }
        parts.push(mbr_part(i + 1, *e, 0));
    }
    // Logical partitions: each EBR holds one partition (relative to itself) and a link to the
    // next EBR (relative to the extended partition). Offsets must strictly grow (no loops).
    if let Some(ext) = extended {
        let mut ebr = ext;
        for n in 0..MAX_LOGICAL {
            let Some(b) = cx.bytes(ebr * 512, 512, "extended boot record").await? else {
                c.findings.push(Finding::new(
                    FindingCode::PartitionPastEnd,
                    Severity::Warning,
                    "an extended boot record lies past the end of the file",
                ));
                break;
            };
            if !has(&b, 510, &[0x55, 0xaa]) {
                break;
            }
            let e = |i: usize| {
                let s = slice(&b, 446 + i * 16, 16);
                (s[0], s[4], le32(s, 8), le32(s, 12))
            };
            let (part, link) = (e(0), e(1));
            if part.1 != 0 && part.3 != 0 {
                parts.push(mbr_part(5 + n, part, ebr));
            }
            let next = ext + u64::from(link.2);
            if link.1 == 0 || link.2 == 0 || next <= ebr {
                break;
            }
            ebr = next;
        }
    }
    Ok(parts)
}

fn gpt_type(g: &str) -> &'static str {
    match g {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "44479540-F297-41B2-9AF7-D131D5F0458A" => "Linux root (x86)",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE" => "Linux root (ARM64)",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery",
        "48465300-0000-11AA-AA11-00306543ECAC" => "Apple HFS+",
        "6A898CC3-1DD2-11B2-99A6-080020736631" => "ZFS",
        _ => "unknown",
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// The GPT header at `ss` (the sector size) and its partition entries.
async fn gpt(cx: &Ctx<'_>, ss: usize, c: &mut Content) -> Result<Vec<Part>> {
    let h = slice(&cx.head, ss, ss);
    let warn = |c: &mut Content, msg: String| {
        c.findings
            .push(Finding::new(FindingCode::Corrupt, Severity::Warning, msg));
    };
    c.details.insert("sector-size".into(), ss.into());
    if h.len() < 92 {
        c.findings.push(Finding::new(
            FindingCode::Truncated,
            Severity::Critical,
            "the GPT header is cut off by the end of the file",
        ));
        return Ok(vec![]);
    }
    let hsize = (le32(h, 12) as usize).clamp(92, h.len());
    let mut copy = slice(h, 0, hsize).to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != le32(h, 16) {
        warn(c, "the GPT header checksum does not match".into());
    }
    c.details
        .insert("disk-guid".into(), guid(arr(h, 56)).into());
    let ssz = ss as u64;
    let alternate = le64(h, 32);
    match alternate.checked_mul(ssz).and_then(|a| a.checked_add(ssz)) {
        Some(end) if end <= cx.len => {
            // The backup header normally sits in the last sector, which the tail holds (for
            // 512-byte sectors; the tail is too short for a whole 4 KiB one).
            let last = cx.footer(512, 0);
            if ss == 512 && end == cx.len && !last.is_some_and(|t| has(t, 0, b"EFI PART")) {
                warn(c, "the backup GPT header in the last sector is missing".into());
            }
        }
        _ => c.findings.push(Finding::new(
            FindingCode::PartitionPastEnd,
            Severity::Warning,
            format!(
                "the backup GPT header (LBA {alternate}) lies past the end of the file: the disk image is truncated or was shrunk"
            ),
        )),
    }
    let (lba, count, esize) = (le64(h, 72), le32(h, 80), le32(h, 84));
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&esize) || esize % 8 != 0 {
        warn(
            c,
            format!("GPT partition array of {count} entries of {esize} bytes is out of range"),
        );
        return Ok(vec![]);
    }
    let total = u64::from(count) * u64::from(esize);
    if total > MAX_GPT_ARRAY {
        warn(
            c,
            format!("GPT partition array of {total} bytes is too large"),
        );
        return Ok(vec![]);
    }
    let Some(at) = lba.checked_mul(ssz) else {
        return Ok(vec![]);
    };
    let Some(array) = cx.bytes(at, total, "GPT partition entries").await? else {
        c.findings.push(Finding::new(
            FindingCode::Truncated,
            Severity::Critical,
            "the GPT partition entries lie past the end of the file",
        ));
        return Ok(vec![]);
    };
    if crc32(&array) != le32(h, 88) {
        warn(
            c,
            "the GPT partition entries checksum does not match".into(),
        );
    }
    let mut parts = vec![];
    for (i, e) in array.chunks_exact(esize as usize).enumerate() {
        let type_guid = arr::<16>(e, 0);
        if type_guid == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let start = first.saturating_mul(ssz);
        let size = last
            .checked_sub(first)
            .map_or(0, |n| (n + 1).saturating_mul(ssz));
        let t = guid(type_guid);
        let mut j = Map::new();
        j.insert("index".into(), (i + 1).into());
        j.insert("type-name".into(), gpt_type(&t).into());
        j.insert("type-guid".into(), t.into());
        j.insert("guid".into(), guid(arr(e, 16)).into());
        if let Some(n) = utf16(slice(e, 56, 72), false) {
            j.insert("name".into(), n.into());
        }
        j.insert("start".into(), start.into());
        j.insert("size".into(), size.into());
        if le64(e, 48) & 4 != 0 {
            j.insert("legacy-bootable".into(), json!(true));
        }
        parts.push(Part {
            json: j,
            start,
            size,
        });
    }
    Ok(parts)
}

/// Guest sectors read for the partition table: LBA 0 (the MBR) to 33, the end of a GPT's
/// entry array for 512-byte sectors (UEFI 2.10 section 5.3: the header at LBA 1, 128 entries of
/// 128 bytes from LBA 2). A 4 KiB-sector GPT's header (at 4096) lies inside too.
pub const GUEST_HEAD: u64 = 34 * 512;

/// The partition table (or boot-sector filesystem) in the first sectors of `guest`, a source
/// whose bytes are a guest disk read through its image: the same analysis a raw file gets, with
/// the same keys (`partition-table`, `partitions`, `mbr-problem`, `filesystem`, ...).
pub(crate) async fn guest_layout(guest: &dyn crate::source::Source) -> Result<Map<String, Value>> {
    let len = guest.len();
    if len == 0 {
        return Ok(Map::new());
    }
    let head = crate::source::read_vec(guest, 0, len.min(GUEST_HEAD), "guest's first sectors");
    // No tail: it serves only the backup-GPT finding, which the guest's details do not carry.
    let cx = Ctx {
        src: guest,
        head: head.await?,
        tail: vec![],
        len,
        depth: 1,
    };
    Ok(analyse(&cx).await?.details)
}
