//! Filesystems found at the start of a file or partition: the Linux root filesystems that make a
//! bare image an AMI (ext2/3/4, XFS, Btrfs), and what a partition or superfloppy may hold (FAT,
//! exFAT, NTFS, swap, LUKS, LVM, squashfs).
//!
//! Layouts: ext4 "Disk layout" (kernel.org wiki: superblock at 1024), XFS "xfs_sb" (big-endian,
//! at 0), Btrfs "btrfs_super_block" (at 64 KiB), Microsoft FAT specification (BPB), NTFS boot
//! sector, exFAT specification (main boot region), Linux `swap_header`.

use super::bytes::{arr, be16, be32, be64, has, le16, le32, le64, slice, text, uuid};
use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;
use serde_json::{Map, Value, json};

/// Offset of the Btrfs primary superblock.
pub const BTRFS_SB: usize = 0x10000;

/// What a filesystem's superblock says about it.
#[derive(Debug, Default)]
pub struct Fs {
    /// `ext4`, `xfs`, `btrfs`, `fat32`, `ntfs`, `swap`, `luks`, ...
    pub kind: &'static str,
    /// The filesystem's own size, from its superblock.
    pub size: Option<u64>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub extra: Map<String, Value>,
}

impl Fs {
    /// A filesystem a Linux root can live on: a bare one is an AMI.
    pub fn is_linux_root(&self) -> bool {
        matches!(self.kind, "ext2" | "ext3" | "ext4" | "xfs" | "btrfs")
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("filesystem".into(), self.kind.into());
        if let Some(l) = &self.label {
            m.insert("label".into(), l.as_str().into());
        }
        if let Some(u) = &self.uuid {
            m.insert("uuid".into(), u.as_str().into());
        }
        if let Some(s) = self.size {
            m.insert("fs-size".into(), s.into());
        }
        m.extend(self.extra.clone());
        m
    }
}

/// Identify the filesystem whose first bytes are `at0` (at least 4 KiB when available) and whose
/// bytes from 64 KiB on are `at64k` (empty when unknown).
pub fn identify(at0: &[u8], at64k: &[u8]) -> Option<Fs> {
    if has(at0, 0, b"LUKS\xba\xbe") {
        return Some(Fs {
            kind: "luks",
            uuid: text(slice(at0, 168, 40)),
            ..Fs::default()
        });
    }
    xfs(at0)
        .or_else(|| ext(at0))
        .or_else(|| ntfs(at0))
        .or_else(|| exfat(at0))
        .or_else(|| fat(at0))
        .or_else(|| swap(at0))
        .or_else(|| lvm(at0))
        .or_else(|| squashfs(at0))
        .or_else(|| btrfs(at64k))
}

fn ext(b: &[u8]) -> Option<Fs> {
    let sb = slice(b, 1024, 1024);
    if le16(sb, 56) != 0xef53 {
        return None;
    }
    let log_block = le32(sb, 24);
    let (inodes, per_group) = (le32(sb, 0), le32(sb, 32));
    if log_block > 6 || inodes == 0 || per_group == 0 || le32(sb, 76) > 1 {
        return None;
    }
    let (compat, incompat, ro) = (le32(sb, 92), le32(sb, 96), le32(sb, 100));
    let mut blocks = u64::from(le32(sb, 4));
    if incompat & 0x80 != 0 {
        blocks |= u64::from(le32(sb, 0x150)) << 32;
    }
    // As blkid decides: ext4-only features, else a journal makes ext3.
    let ext4 = incompat & (0x40 | 0x80 | 0x200 | 0x10000) != 0
        || ro & (0x8 | 0x10 | 0x20 | 0x40 | 0x400) != 0;
    let kind = if ext4 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    let mut extra = Map::new();
    extra.insert("block-size".into(), (1024u64 << log_block).into());
    if incompat & 0x4 != 0 {
        extra.insert("needs-recovery".into(), true.into());
    }
    Some(Fs {
        kind,
        size: blocks.checked_mul(1024 << log_block),
        label: text(slice(sb, 120, 16)),
        uuid: Some(uuid(arr(sb, 104))),
        extra,
    })
}

fn xfs(b: &[u8]) -> Option<Fs> {
    if !has(b, 0, b"XFSB") {
        return None;
    }
    let block = be32(b, 4);
    let blocks = be64(b, 8);
    if !block.is_power_of_two() || !(512..=65536).contains(&block) || blocks == 0 {
        return None;
    }
    let mut extra = Map::new();
    extra.insert("block-size".into(), block.into());
    extra.insert("version".into(), (be16(b, 100) & 0xf).into());
    Some(Fs {
        kind: "xfs",
        size: blocks.checked_mul(u64::from(block)),
        label: text(slice(b, 108, 12)),
        uuid: Some(uuid(arr(b, 32))),
        extra,
    })
}

fn btrfs(sb: &[u8]) -> Option<Fs> {
    if !has(sb, 0x40, b"_BHRfS_M") {
        return None;
    }
    let mut extra = Map::new();
    extra.insert("sector-size".into(), le32(sb, 0x90).into());
    extra.insert("node-size".into(), le32(sb, 0x94).into());
    let devices = le64(sb, 0x88);
    extra.insert("devices".into(), devices.into());
    Some(Fs {
        kind: "btrfs",
        size: Some(le64(sb, 0x70)),
        label: text(slice(sb, 0x12b, 256)),
        uuid: Some(uuid(arr(sb, 0x20))),
        extra,
    })
}

fn ntfs(b: &[u8]) -> Option<Fs> {
    if !has(b, 3, b"NTFS    ") {
        return None;
    }
    let bps = u64::from(le16(b, 11));
    Some(Fs {
        kind: "ntfs",
        size: le64(b, 0x28).checked_mul(bps),
        uuid: Some(format!("{:016X}", le64(b, 0x48))),
        ..Fs::default()
    })
}

fn exfat(b: &[u8]) -> Option<Fs> {
    if !has(b, 3, b"EXFAT   ") {
        return None;
    }
    let shift = u32::from(b.get(108).copied().unwrap_or(9)).min(12);
    let serial = le32(b, 100);
    Some(Fs {
        kind: "exfat",
        size: le64(b, 72).checked_mul(1 << shift),
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff)),
        ..Fs::default()
    })
}

/// A FAT boot sector: the BPB must be self-consistent ([FAT spec] 3.1-3.5).
fn fat(b: &[u8]) -> Option<Fs> {
    let jump = matches!(
        (b.first(), b.get(2)),
        (Some(0xeb), Some(0x90)) | (Some(0xe9), _)
    );
    let bps = u32::from(le16(b, 11));
    let spc = u32::from(b.get(13).copied().unwrap_or(0));
    let reserved = u32::from(le16(b, 14));
    let fats = u32::from(b.get(16).copied().unwrap_or(0));
    let media = b.get(21).copied().unwrap_or(0);
    if !jump
        || !matches!(bps, 512 | 1024 | 2048 | 4096)
        || !spc.is_power_of_two()
        || reserved == 0
        || !(1..=2).contains(&fats)
        || !(media == 0xf0 || media >= 0xf8)
    {
        return None;
    }
    let root_entries = u64::from(le16(b, 17));
    let total = u64::from(match le16(b, 19) {
        0 => le32(b, 32),
        n => u32::from(n),
    });
    let fat_size = u64::from(match le16(b, 22) {
        0 => le32(b, 36),
        n => u32::from(n),
    });
    let (bps, spc) = (u64::from(bps), u64::from(spc));
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let meta = u64::from(reserved) + u64::from(fats) * fat_size + root_sectors;
    if total == 0 || fat_size == 0 || meta >= total {
        return None;
    }
    let clusters = (total - meta) / spc;
    // The FAT spec (3.5) decides by cluster count; Linux takes the FAT32 BPB layout (a zero
    // 16-bit FAT size) as FAT32 whatever the count, and small FAT32 volumes exist. Do the same.
    let kind = if le16(b, 22) == 0 {
        "fat32"
    } else if clusters < 4085 {
        "fat12"
    } else if clusters < 65525 {
        "fat16"
    } else {
        "fat32"
    };
    let (label_at, serial_at) = if le16(b, 22) == 0 { (71, 67) } else { (43, 39) };
    let label = text(slice(b, label_at, 11)).filter(|l| l != "NO NAME");
    let serial = le32(b, serial_at);
    Some(Fs {
        kind,
        size: Some(total * bps),
        label,
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff)),
        extra: Map::new(),
    })
}

fn swap(b: &[u8]) -> Option<Fs> {
    // The signature ends the first page; 4 KiB pages are what x86 and most ARM images use.
    if !has(b, 4086, b"SWAPSPACE2") && !has(b, 4086, b"SWAP-SPACE") {
        return None;
    }
    Some(Fs {
        kind: "swap",
        size: Some((u64::from(le32(b, 1028)) + 1) * 4096),
        label: text(slice(b, 1052, 16)),
        uuid: Some(uuid(arr(b, 1036))),
        extra: Map::new(),
    })
}

fn lvm(b: &[u8]) -> Option<Fs> {
    (has(b, 512, b"LABELONE") && has(b, 536, b"LVM2 001")).then(|| Fs {
        kind: "lvm2-pv",
        ..Fs::default()
    })
}

fn squashfs(b: &[u8]) -> Option<Fs> {
    if !has(b, 0, b"hsqs") {
        return None;
    }
    let mut extra = Map::new();
    extra.insert(
        "version".into(),
        json!(format!("{}.{}", le16(b, 28), le16(b, 30))),
    );
    Some(Fs {
        kind: "squashfs",
        size: Some(le64(b, 40)),
        extra,
        ..Fs::default()
    })
}

/// A bare Linux root filesystem at offset 0 (no partition table): an AMI.
pub fn detect_bare(cx: &Ctx<'_>, scan: &mut Scan) {
    let at64k = slice(&cx.head, BTRFS_SB, 4096);
    let Some(fs) = identify(&cx.head, at64k).filter(Fs::is_linux_root) else {
        return;
    };
    let mut d = Detection::new(Format::Ami);
    d.virtual_size = Some(cx.len);
    d.details = fs.to_json();
    d.finding(
        FindingCode::BareFilesystem,
        Severity::Warning,
        format!(
            "a bare {} filesystem with no partition table or boot loader: it boots only as an EC2-style machine image (AMI) with a separate kernel (AKI) and ramdisk (ARI)",
            fs.kind
        ),
    );
    if let Some(size) = fs.size.filter(|&s| s > cx.len) {
        d.finding(
            FindingCode::Truncated,
            Severity::Critical,
            format!(
                "the file ({} bytes) is shorter than the {} filesystem it holds ({size} bytes)",
                cx.len, fs.kind
            ),
        );
    }
    let at = if fs.kind == "btrfs" {
        BTRFS_SB as u64
    } else {
        0
    };
    scan.add(at, d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_type_from_cluster_count() {
        let mut b = vec![0u8; 512];
        b[0] = 0xeb;
        b[2] = 0x90;
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 8;
        b[14] = 1;
        b[16] = 2;
        b[17..19].copy_from_slice(&512u16.to_le_bytes());
        b[19..21].copy_from_slice(&20480u16.to_le_bytes());
        b[21] = 0xf8;
        b[22..24].copy_from_slice(&20u16.to_le_bytes());
        let fs = identify(&b, &[]).unwrap();
        assert_eq!(fs.kind, "fat12");
        assert_eq!(fs.size, Some(20480 * 512));
    }
}
