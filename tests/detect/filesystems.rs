//! Bare filesystems (AMI) and raw content: ext4 (made by mkfs and by hand), XFS, btrfs, GPT
//! (512-byte and 4k sectors) and MBR disks, FAT and NTFS superfloppies, raw images of odd size,
//! disks made by sfdisk and mkfs.vfat when installed.

use super::*;

#[test]
fn bare_ext4_is_an_ami() {
    let dir = &scratch();
    if has_tool("mkfs.ext4") {
        ok(
            "mkfs.ext4",
            &["-F", "-q", "-L", "cloudimg-rootfs", "root.img", "16M"],
            dir,
        );
    } else {
        write(
            dir,
            "root.img",
            &ext4_superblock(16 * MIB, "cloudimg-rootfs"),
        );
        std::fs::File::options()
            .write(true)
            .open(path(dir, "root.img"))
            .unwrap()
            .set_len(16 * MIB)
            .unwrap();
    }
    let info = info_json(&["root.img"], dir);
    assert_eq!(info["format"], "ami", "{info}");
    assert_eq!(info["virtual-size"], 16 * MIB);
    let fs = &info["format-specific"];
    assert_eq!(fs["filesystem"], "ext4");
    assert_eq!(fs["label"], "cloudimg-rootfs");
    assert_eq!(fs["fs-size"], 16 * MIB);
    assert_eq!(fs["uuid"].as_str().unwrap().len(), 36);
    assert!(codes(&info).contains(&"bare-filesystem".into()));
    assert!(info["safety"]["safe"].as_bool().unwrap());

    // Cut in half: the file is shorter than the filesystem.
    let f = std::fs::File::options()
        .write(true)
        .open(path(dir, "root.img"))
        .unwrap();
    f.set_len(8 * MIB).unwrap();
    let info = info_json(&["root.img"], dir);
    assert_eq!(info["format"], "ami");
    assert!(codes(&info).contains(&"truncated".into()));
    assert_eq!(info["safety"]["safe"], false);
}

/// A hand-built ext4 superblock (for machines without e2fsprogs).
fn ext4_superblock(size: u64, label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    let sb = 1024;
    put(&mut b, sb, &4096u32.to_le_bytes()); // inodes
    put(&mut b, sb + 4, &((size / 4096) as u32).to_le_bytes()); // blocks
    put(&mut b, sb + 24, &2u32.to_le_bytes()); // 4 KiB blocks
    put(&mut b, sb + 32, &32768u32.to_le_bytes()); // blocks per group
    put(&mut b, sb + 40, &4096u32.to_le_bytes()); // inodes per group
    put(&mut b, sb + 56, &0xef53u16.to_le_bytes());
    put(&mut b, sb + 76, &1u32.to_le_bytes()); // dynamic revision
    put(&mut b, sb + 92, &4u32.to_le_bytes()); // has_journal
    put(&mut b, sb + 96, &0x40u32.to_le_bytes()); // extents
    put(&mut b, sb + 104, &[0x11; 16]);
    put(&mut b, sb + 120, label.as_bytes());
    b
}

#[test]
fn xfs_and_btrfs_superblocks() {
    let mut x = vec![0u8; 1 << 20];
    put(&mut x, 0, b"XFSB");
    put(&mut x, 4, &4096u32.to_be_bytes());
    put(&mut x, 8, &((64u64 << 20) / 4096).to_be_bytes());
    put(&mut x, 32, &[0xab; 16]);
    put(&mut x, 100, &0xb4a5u16.to_be_bytes());
    put(&mut x, 108, b"root");
    let p = probed(x);
    assert_filesystem(&p, Format::Ami, "xfs", "root");
    assert_eq!(p.primary().details["fs-size"], 64 * MIB);
    // The superblock says 64 MiB but the file holds 1 MiB.
    assert!(probe_codes(&p).contains(&"truncated"));

    let mut b = vec![0u8; 2 << 20];
    let sb = 0x10000;
    put(&mut b, sb + 0x20, &[0xcd; 16]);
    put(&mut b, sb + 0x40, b"_BHRfS_M");
    put(&mut b, sb + 0x70, &(2u64 << 20).to_le_bytes());
    put(&mut b, sb + 0x88, &1u64.to_le_bytes());
    put(&mut b, sb + 0x90, &4096u32.to_le_bytes());
    put(&mut b, sb + 0x94, &16384u32.to_le_bytes());
    put(&mut b, sb + 0x12b, b"fedora");
    let p = probed(b);
    assert_filesystem(&p, Format::Ami, "btrfs", "fedora");
    let uuid = &p.primary().details["uuid"];
    assert_eq!(uuid, "cdcdcdcd-cdcd-cdcd-cdcd-cdcdcdcdcdcd");
    assert!(!probe_codes(&p).contains(&"truncated"));
    assert!(probe_codes(&p).contains(&"bare-filesystem"));
}

/// The probe names `format` with a bare `filesystem` labelled `label`.
fn assert_filesystem(p: &Probe, format: Format, filesystem: &str, label: &str) {
    let d = p.primary();
    assert_eq!(d.format, format, "{filesystem}");
    assert_eq!(d.details["filesystem"], filesystem);
    assert_eq!(d.details["label"], label, "{filesystem}");
}

/// Write a GPT (protective MBR, primary and backup headers and entries) on a file of `size`
/// with sectors of `ss` bytes; partitions are (type GUID, first LBA, last LBA, name).
fn write_gpt(file: &Path, size: u64, ss: u64, parts: &[(&str, u64, u64, &str)]) {
    let lbas = size / ss;
    let mut entries = vec![0u8; 128 * 128];
    let es = (entries.len() as u64).div_ceil(ss);
    for (i, (ty, first, last, name)) in parts.iter().enumerate() {
        let e = &mut entries[i * 128..(i + 1) * 128];
        put(e, 0, &guid_bytes(ty));
        put(e, 16, &guid_bytes("01234567-89AB-CDEF-0123-456789ABCDE0"));
        e[16] = i as u8;
        put(e, 32, &first.to_le_bytes());
        put(e, 40, &last.to_le_bytes());
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        put(e, 56, &utf16);
    }
    let header = |my: u64, alt: u64, entries_lba: u64| {
        let mut h = vec![0u8; 512];
        put(&mut h, 0, b"EFI PART");
        put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
        put(&mut h, 12, &92u32.to_le_bytes());
        put(&mut h, 24, &my.to_le_bytes());
        put(&mut h, 32, &alt.to_le_bytes());
        put(&mut h, 40, &(2 + es).to_le_bytes());
        put(&mut h, 48, &(lbas - 2 - es).to_le_bytes());
        put(
            &mut h,
            56,
            &guid_bytes("DEADBEEF-0000-4000-8000-000000000001"),
        );
        put(&mut h, 72, &entries_lba.to_le_bytes());
        put(&mut h, 80, &128u32.to_le_bytes());
        put(&mut h, 84, &128u32.to_le_bytes());
        put(&mut h, 88, &crc32(&entries).to_le_bytes());
        let c = crc32(&h[..92]);
        put(&mut h, 16, &c.to_le_bytes());
        h
    };
    let mut mbr = vec![0u8; 512];
    put(&mut mbr, 446, &[0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff]);
    put(&mut mbr, 454, &1u32.to_le_bytes());
    let sectors = (lbas - 1).min(u64::from(u32::MAX)) as u32;
    put(&mut mbr, 458, &sectors.to_le_bytes());
    put(&mut mbr, 510, &[0x55, 0xaa]);
    write_at(file, 0, &mbr);
    write_at(file, ss, &header(1, lbas - 1, 2));
    write_at(file, 2 * ss, &entries);
    write_at(file, (lbas - 1 - es) * ss, &entries);
    write_at(file, (lbas - 1) * ss, &header(lbas - 1, 1, lbas - 1 - es));
}

#[test]
fn gpt_disk_lists_partitions_and_their_filesystems() {
    let dir = &scratch();
    let file = path(dir, "gpt.raw");
    let size = 12 * MIB;
    let linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    let esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    // An ext4 filesystem in partition 2 (from 2 MiB), made with mkfs when available.
    if has_tool("mkfs.ext4") {
        ok(
            "mkfs.ext4",
            &[
                "-F",
                "-q",
                "-L",
                "root",
                "-E",
                "offset=2097152",
                "gpt.raw",
                "8M",
            ],
            dir,
        );
    } else {
        write_at(&file, 2 * MIB, &ext4_superblock(8 * MIB, "root"));
    }
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(size)
        .unwrap();
    write_gpt(
        &file,
        size,
        512,
        &[
            (esp, 2048, 4095, "EFI"),
            (linux, 4096, 4096 + 16383, "root"),
        ],
    );
    let info = info_json(&["gpt.raw"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(detected(&info), vec!["raw"]);
    let fs = &info["format-specific"];
    assert_eq!(fs["partition-table"], "gpt");
    let parts = fs["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type-name"], "EFI System");
    assert_eq!(parts[0]["start"], MIB);
    assert_eq!(parts[0]["size"], MIB);
    assert_eq!(parts[1]["type-name"], "Linux filesystem");
    assert_eq!(parts[1]["name"], "root");
    assert_eq!(parts[1]["filesystem"], "ext4");
    assert_eq!(parts[1]["label"], "root");
    assert!(codes(&info).is_empty(), "{info}");

    // Shrunk: the backup header and the second partition now lie past the end.
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(6 * MIB)
        .unwrap();
    let info = info_json(&["gpt.raw"], dir);
    assert_eq!(info["format"], "raw");
    assert!(
        codes(&info).contains(&"partition-past-end".into()),
        "{info}"
    );
}

#[test]
fn mbr_with_logical_partitions() {
    let mut v = vec![0u8; 8 * MIB as usize];
    let entry = |status: u8, ty: u8, start: u32, sectors: u32| {
        let mut e = [0u8; 16];
        e[0] = status;
        e[4] = ty;
        put(&mut e, 8, &start.to_le_bytes());
        put(&mut e, 12, &sectors.to_le_bytes());
        e
    };
    put(&mut v, 446, &entry(0x80, 0x83, 2048, 4096));
    put(&mut v, 462, &entry(0, 0x05, 6144, 8192));
    put(&mut v, 510, &[0x55, 0xaa]);
    // EBR 1 at 6144: logical 5 (relative 2048), link to EBR 2 at 6144 + 4096.
    let ebr1 = 6144 * 512;
    put(&mut v, ebr1 + 446, &entry(0, 0x82, 2048, 1024));
    put(&mut v, ebr1 + 462, &entry(0, 0x05, 4096, 4096));
    put(&mut v, ebr1 + 510, &[0x55, 0xaa]);
    let ebr2 = (6144 + 4096) * 512;
    put(&mut v, ebr2 + 446, &entry(0, 0x83, 2048, 1024));
    put(&mut v, ebr2 + 510, &[0x55, 0xaa]);
    let fat = fat32_boot_sector(4096);
    put(&mut v, 2048 * 512, &fat);
    let p = probed(v);
    let d = p.primary();
    assert_eq!(d.format, Format::Raw);
    assert_eq!(d.details["partition-table"], "mbr");
    let parts = d.details["partitions"].as_array().unwrap();
    let idx: Vec<u64> = parts.iter().map(|p| p["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![1, 2, 5, 6]);
    assert_eq!(parts[0]["bootable"], true);
    assert_eq!(parts[0]["filesystem"], "fat32");
    assert_eq!(parts[2]["type-name"], "Linux swap");
    assert_eq!(parts[2]["start"], (6144 + 2048) * 512);
    assert_eq!(parts[3]["start"], (6144 + 4096 + 2048) * 512);
}

/// A FAT32 boot sector for a volume of `sectors` 512-byte sectors (one sector a cluster).
fn fat32_boot_sector(sectors: u32) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    put(&mut b, 0, &[0xeb, 0x58, 0x90]);
    put(&mut b, 3, b"mkfs.fat");
    put(&mut b, 11, &512u16.to_le_bytes());
    b[13] = 1;
    put(&mut b, 14, &32u16.to_le_bytes());
    b[16] = 2;
    b[21] = 0xf8;
    put(&mut b, 32, &sectors.to_le_bytes());
    put(&mut b, 36, &((sectors / 128) + 1).to_le_bytes());
    put(&mut b, 67, &0x1234_abcdu32.to_le_bytes());
    put(&mut b, 71, b"BOOT       ");
    put(&mut b, 82, b"FAT32   ");
    put(&mut b, 510, &[0x55, 0xaa]);
    b
}

#[test]
fn fat_and_ntfs_superfloppies_are_raw() {
    // 70000 sectors with one sector a cluster: more than 65525 clusters, so FAT32.
    let mut v = vec![0u8; 70000 * 512];
    put(&mut v, 0, &fat32_boot_sector(70000));
    let p = probed(v);
    assert_filesystem(&p, Format::Raw, "fat32", "BOOT");
    let d = p.primary();
    assert_eq!(d.details["uuid"], "1234-ABCD");
    assert!(d.details.get("partition-table").is_none());

    let mut n = vec![0u8; 4 * MIB as usize];
    put(&mut n, 0, &[0xeb, 0x52, 0x90]);
    put(&mut n, 3, b"NTFS    ");
    put(&mut n, 11, &512u16.to_le_bytes());
    n[13] = 8;
    put(&mut n, 0x28, &8191u64.to_le_bytes());
    put(&mut n, 0x48, &0x0123_4567_89ab_cdefu64.to_le_bytes());
    put(&mut n, 510, &[0x55, 0xaa]);
    let p = probed(n);
    assert_eq!(p.primary().format, Format::Raw);
    assert_eq!(p.primary().details["filesystem"], "ntfs");
    assert_eq!(p.primary().details["uuid"], "0123456789ABCDEF");
}

#[test]
fn raw_of_odd_size_is_flagged() {
    let dir = &scratch();
    write(dir, "odd.raw", &noise(1000, 5));
    let info = info_json(&["odd.raw"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], 1000);
    assert!(codes(&info).contains(&"unaligned-size".into()));
    assert!(info["safety"]["safe"].as_bool().unwrap());
    write(dir, "even.raw", &noise(1024, 5));
    assert!(codes(&info_json(&["even.raw"], dir)).is_empty());
}

#[test]
fn hand_built_ext4_superblock_is_an_ami() {
    let mut b = ext4_superblock(16 * MIB, "root");
    b.resize(16 * MIB as usize, 0);
    let p = probed(b);
    assert_eq!(p.primary().format, Format::Ami);
    assert_eq!(p.primary().details["filesystem"], "ext4");
    assert_eq!(p.primary().details["fs-size"], 16 * MIB);
}

#[test]
fn gpt_with_4k_sectors() {
    let dir = &scratch();
    let file = path(dir, "4kn.raw");
    write_at(&file, 0, &[0]);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(8 * MIB)
        .unwrap();
    let linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    write_gpt(&file, 8 * MIB, 4096, &[(linux, 256, 1279, "data")]);
    let info = info_json(&["4kn.raw"], dir);
    let fs = &info["format-specific"];
    assert_eq!(fs["partition-table"], "gpt", "{info}");
    assert_eq!(fs["sector-size"], 4096);
    assert_eq!(fs["partitions"][0]["start"], MIB);
    assert_eq!(fs["partitions"][0]["size"], 4 * MIB);
    assert!(codes(&info).is_empty(), "{info}");
}

/// With util-linux and dosfstools installed, the real tools' output is checked too.
#[test]
fn sfdisk_and_mkfs_vfat_when_installed() {
    let dir = &scratch();
    if has_tool("sfdisk") {
        for (label, table) in [("gpt", "gpt"), ("dos", "mbr")] {
            let f = format!("{label}.raw");
            write_at(&path(dir, &f), 16 * MIB - 1, &[0]);
            sh(
                dir,
                &format!("printf 'label: {label}\\n,4M\\n,,\\n' | sfdisk -q {f}"),
            );
            let info = info_json(&[&f], dir);
            assert_eq!(info["format"], "raw");
            assert_eq!(info["format-specific"]["partition-table"], table, "{info}");
            assert_eq!(info["format-specific"]["partitions"][0]["size"], 4 * MIB);
        }
    }
    if has_tool("mkfs.vfat") {
        write_at(&path(dir, "fat.img"), 32 * MIB - 1, &[0]);
        ok("mkfs.vfat", &["-F", "32", "-n", "EFI", "fat.img"], dir);
        let info = info_json(&["fat.img"], dir);
        assert_eq!(info["format"], "raw");
        assert_eq!(info["format-specific"]["filesystem"], "fat32");
        assert_eq!(info["format-specific"]["label"], "EFI");
    }
}
