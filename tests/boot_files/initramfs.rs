//! Initramfs archives: an early microcode archive before every compressor, CRC archives, archives
//! made with cpio, a large early archive.

use super::*;

const DIR: u32 = 0o040755;
const FILE: u32 = 0o100644;

/// The early microcode archive initramfs-tools and dracut prepend, padded to 512 bytes.
pub(crate) fn early_cpio(magic: &str) -> Vec<u8> {
    let mut a = vec![];
    for d in ["kernel", "kernel/x86", "kernel/x86/microcode"] {
        a.extend(newc(magic, d, DIR, b""));
    }
    a.extend(newc(
        magic,
        "kernel/x86/microcode/GenuineIntel.bin",
        FILE,
        &noise(3000, 9),
    ));
    a.extend(newc(magic, "TRAILER!!!", 0, b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

const EARLY_MEMBERS: [&str; 4] = [
    "kernel",
    "kernel/x86",
    "kernel/x86/microcode",
    "kernel/x86/microcode/GenuineIntel.bin",
];

pub(crate) fn main_cpio() -> Vec<u8> {
    let mut a = newc("070701", "init", 0o100755, b"#!/bin/sh\nexec /sbin/init\n");
    a.extend(newc("070701", "etc", DIR, b""));
    a.extend(newc("070701", "etc/fstab", FILE, &text(20_000, 3)));
    a.extend(newc("070701", "TRAILER!!!", 0, b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

fn member_names(info: &Value) -> Vec<String> {
    each(&info["format-specific"]["members"], |m| {
        m["name"].as_str().unwrap().to_string()
    })
}

/// Check the report of an early archive (`early_len` bytes, `members` in it) followed by `name`.
fn assert_early_then(info: &Value, early_len: u64, members: &[&str], name: &str) {
    assert_eq!(info["format"], "ari", "{info}");
    let fs = &info["format-specific"];
    assert_eq!(fs["layout"], format!("early cpio + {name}"), "{info}");
    assert_eq!(fs["followed-by"], name);
    assert_eq!(member_names(info), members, "{info}");
    assert_eq!(fs["member-count"], members.len());
    let parts = fs["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{info}");
    assert_eq!(parts[0]["offset"], 0);
    assert_eq!(parts[0]["members"], members.len());
    assert_eq!(parts[1]["offset"], early_len, "{info}");
    assert_eq!(parts[1]["format"], name);
    assert!(fs.get("examined-bytes").is_none(), "{info}");
}

/// The compressors the kernel reads for initramfs, as the tools write them.
const COMPRESSORS: [(&str, &str, &str); 7] = [
    ("gzip", "gzip -n -9 -c", "gzip"),
    ("xz", "xz --check=crc32 -c", "xz"),
    ("zstd", "zstd -q -19 -c", "zstd"),
    ("lz4", "lz4 -q -l -c", "lz4-legacy"),
    ("bzip2", "bzip2 -c", "bzip2"),
    ("lzma", "lzma -c", "lzma"),
    ("lzop", "lzop -c", "lzo"),
];

#[test]
fn early_cpio_then_every_compressor() {
    let dir = &scratch();
    let early = early_cpio("070701");
    write(dir, "early.cpio", &early);
    write(dir, "main.cpio", &main_cpio());
    let mut ran = 0;
    for (tool, cmd, name) in COMPRESSORS {
        if !has_tool(tool) {
            eprintln!("skipping early cpio + {name}: {tool} is not installed");
            continue;
        }
        ran += 1;
        sh(
            dir,
            &format!("{cmd} main.cpio > main.z && cat early.cpio main.z > initrd.img"),
        );
        let info = info_json(&["initrd.img"], dir);
        assert_early_then(&info, early.len() as u64, &EARLY_MEMBERS, name);
        assert!(codes(&info).is_empty(), "{name}: {info}");
    }
    // gzip is part of every system this runs on.
    assert!(ran >= 1);

    // The lz4 frame format: named, but the kernel does not read it.
    if has_tool("lz4") {
        sh(
            dir,
            "lz4 -q -c main.cpio > main.z && cat early.cpio main.z > f.img",
        );
        let info = info_json(&["f.img"], dir);
        assert_early_then(&info, early.len() as u64, &EARLY_MEMBERS, "lz4");
        assert!(
            codes(&info).contains(&"unsupported-format".into()),
            "{info}"
        );
    }

    // Several early archives (AMD, then Intel microcode), then the main one.
    let mut two = early.clone();
    two.extend(early_cpio("070701"));
    let mut img = two.clone();
    img.extend([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    let info = info_of(dir, "two.img", &img);
    assert_eq!(
        info["format-specific"]["layout"],
        "early cpio + early cpio + zstd"
    );
    assert_eq!(info["format-specific"]["parts"][2]["offset"], two.len());
    assert_eq!(info["format-specific"]["member-count"], 8);

    // dracut --no-compress: the main archive is plain too.
    let mut plain = early.clone();
    plain.extend(main_cpio());
    let info = info_of(dir, "plain.img", &plain);
    assert_eq!(info["format-specific"]["layout"], "early cpio + cpio");
    assert!(info["format-specific"].get("followed-by").is_none());
    assert_eq!(info["format-specific"]["member-count"], 7);
    assert!(codes(&info).is_empty(), "{info}");

    // A single archive.
    let info = info_of(dir, "main.cpio", &main_cpio());
    assert_eq!(info["format-specific"]["layout"], "cpio");
    assert_eq!(info["format-specific"]["archive"], "cpio (newc)");
    assert_eq!(member_names(&info), ["init", "etc", "etc/fstab"]);
}

#[test]
fn crc_archives_are_checked() {
    let dir = &scratch();
    let mut img = early_cpio("070702");
    let early_len = img.len() as u64;
    img.extend([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let info = info_of(dir, "crc.img", &img);
    assert_eq!(info["format-specific"]["archive"], "cpio (newc, crc)");
    assert_early_then(&info, early_len, &EARLY_MEMBERS, "gzip");
    assert!(codes(&info).is_empty(), "{info}");
    // One flipped byte in the microcode: the kernel's "bad data checksum".
    let at = img.len() - 8 - 600;
    img[at] ^= 0x40;
    let info = info_of(dir, "bad.img", &img);
    assert_eq!(severity_of(&info, "corrupt"), "critical");
    assert!(
        info["safety"]["findings"]
            .to_string()
            .contains("GenuineIntel.bin"),
        "{info}"
    );
}

/// The real `cpio -o -H format` of directory `from` into `to`, its members sorted so that their
/// order is known.
fn cpio_of(dir: &Path, from: &str, format: &str, to: &str) {
    let sorted_members = format!("cd {from} && find . | LC_ALL=C sort");
    sh(
        dir,
        &format!("{sorted_members} | cpio --quiet -o -H {format} > ../{to}"),
    );
}

/// Initramfs made by the real `cpio` (newc, crc and odc), as initramfs-tools does it
/// (`find . | cpio -o -H newc`), with the compressors installed.
#[test]
fn initramfs_made_with_cpio() {
    if !has_tool("cpio") {
        eprintln!(
            "skipping initramfs_made_with_cpio: cpio is not installed (the hand-built newc cases ran)"
        );
        return;
    }
    let dir = &scratch();
    std::fs::create_dir_all(dir.join("early/kernel/x86/microcode")).unwrap();
    std::fs::write(
        dir.join("early/kernel/x86/microcode/AuthenticAMD.bin"),
        noise(5000, 1),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("main/etc")).unwrap();
    std::fs::write(dir.join("main/init"), b"#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("main/etc/fstab"), text(10_000, 2)).unwrap();
    cpio_of(dir, "early", "newc", "early.cpio");
    cpio_of(dir, "main", "newc", "main.cpio");
    let early_len = std::fs::metadata(dir.join("early.cpio")).unwrap().len();
    let members = [
        ".",
        "kernel",
        "kernel/x86",
        "kernel/x86/microcode",
        "kernel/x86/microcode/AuthenticAMD.bin",
    ];
    for (tool, cmd, name) in COMPRESSORS {
        if !has_tool(tool) {
            eprintln!("skipping cpio + {name}: {tool} is not installed");
            continue;
        }
        sh(
            dir,
            &format!("{cmd} main.cpio > main.z && cat early.cpio main.z > initrd.img"),
        );
        let info = info_json(&["initrd.img"], dir);
        assert_early_then(&info, early_len, &members, name);
        assert_eq!(info["format-specific"]["archive"], "cpio (newc)");
        assert!(codes(&info).is_empty(), "{name}: {info}");
    }
    // cpio's crc format: the checksums it writes are the ones the kernel checks.
    cpio_of(dir, "early", "crc", "crc.cpio");
    sh(
        dir,
        "gzip -c main.cpio > main.gz && cat crc.cpio main.gz > crc.img",
    );
    let info = info_json(&["crc.img"], dir);
    assert_eq!(info["format-specific"]["archive"], "cpio (newc, crc)");
    assert_eq!(info["format-specific"]["layout"], "early cpio + gzip");
    assert!(codes(&info).is_empty(), "{info}");
    // odc: listed, with the warning that the kernel does not read it.
    cpio_of(dir, "main", "odc", "odc.cpio");
    let info = info_json(&["odc.cpio"], dir);
    assert_eq!(info["format"], "ari", "{info}");
    assert_eq!(info["format-specific"]["archive"], "cpio (odc)");
    assert_eq!(
        member_names(&info),
        [".", "etc", "etc/fstab", "init"],
        "{info}"
    );
    assert!(codes(&info).contains(&"unsupported-format".into()));
}

#[test]
fn large_early_archive_is_examined_up_to_the_head() {
    let dir = &scratch();
    // Microcode bigger than the 256 KiB vmdisk reads for detection: the listing stops there
    // and says how far it looked, without calling it truncated.
    let mut img = newc(
        "070701",
        "kernel/x86/microcode/GenuineIntel.bin",
        FILE,
        &noise(400_000, 2),
    );
    img.extend(newc("070701", "TRAILER!!!", 0, b""));
    img.resize(img.len().next_multiple_of(512), 0);
    img.extend([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let info = info_of(dir, "big.img", &img);
    assert_eq!(info["format"], "ari", "{info}");
    assert_eq!(info["format-specific"]["layout"], "cpio");
    assert_eq!(info["format-specific"]["examined-bytes"], 256 << 10);
    assert!(codes(&info).is_empty(), "{info}");
}
