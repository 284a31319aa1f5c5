//! Linux boot files through `vmdisk info --json`: kernels (AKI) of every architecture from headers
//! built here after each architecture's boot documentation, and initramfs archives (ARI) as
//! dracut and initramfs-tools write them (an uncompressed early microcode cpio, zero padding, a
//! compressed main archive), made with the real compressors installed on the machine and, when it
//! is installed, the real `cpio`. Damaged and mutated inputs must give a report or a one-line
//! error, never a panic.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use vmdisk::probe::probe;
use vmdisk::source::MemSource;

// ---- helpers --------------------------------------------------------------------------------

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(path(dir, name), data).unwrap();
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn has_tool(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(dir: &Path, script: &str) {
    ok("sh", &["-c", script], dir);
}

/// `vmdisk info --json` of one file written from `data`.
fn info_of(dir: &Path, name: &str, data: &[u8]) -> Value {
    write(dir, name, data);
    info_json(&[name], dir)
}

/// The finding codes besides `not-a-disk`, which every kernel and ramdisk carries (checked by
/// itself in `boot_files_are_not_disks`).
fn codes(info: &Value) -> Vec<String> {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .filter(|c| c != "not-a-disk")
        .collect()
}

fn severity_of(info: &Value, code: &str) -> String {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .map(|f| f["severity"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {code} finding: {info}"))
}

/// The details object, with its keys checked against `expected` (every key reported is expected
/// and has the expected value).
fn assert_details(info: &Value, expected: &[(&str, Value)]) {
    let fs = info["format-specific"]
        .as_object()
        .expect("format-specific");
    for (k, v) in expected {
        assert_eq!(fs.get(*k), Some(v), "{k} in {info}");
    }
    let names: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
    for k in fs.keys() {
        assert!(names.contains(&k.as_str()), "unexpected key {k} in {info}");
    }
}

/// Deterministic xorshift, for mutation rounds.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---- kernel headers -------------------------------------------------------------------------

/// A PE header at 0x40 (`PE\0\0`, then the COFF machine), pointed at from 0x3c.
fn pe_at_0x40(k: &mut [u8], machine: u16) {
    put(k, 0, b"MZ");
    put(k, 0x3c, &0x40u32.to_le_bytes());
    put(k, 0x40, b"PE\0\0");
    put(k, 0x44, &machine.to_le_bytes());
}

/// arm64 `Image` (Documentation/arch/arm64/booting.rst): code0/code1, text_offset, image_size,
/// flags, three reserved words, "ARM\x64" at 0x38, the PE offset at 0x3c.
fn arm64_image(len: usize, image_size: u64, flags: u64, efi: bool) -> Vec<u8> {
    let mut k = noise(len, 3);
    k[..0x200].fill(0);
    // code0: `add x13, x18, #0x16` (b"MZ\x40\x91" when there is an EFI stub), code1: a branch.
    put(&mut k, 0, &0x9100_0000u32.to_le_bytes());
    put(&mut k, 4, &0x1400_0000u32.to_le_bytes());
    put(&mut k, 8, &0u64.to_le_bytes());
    put(&mut k, 16, &image_size.to_le_bytes());
    put(&mut k, 24, &flags.to_le_bytes());
    put(&mut k, 0x38, b"ARM\x64");
    if efi {
        pe_at_0x40(&mut k, 0xaa64);
        put(&mut k, 2, &[0x40, 0x91]);
    }
    k
}

/// EFI zboot (drivers/firmware/efi/libstub/zboot-header.S): "MZ", "zimg", payload offset and size,
/// two reserved words, the compression name at 24, LINUX_PE_MAGIC at 0x38, the PE header.
fn zboot(len: usize, method: &str, machine: u16, payload: &[u8], size: u32) -> Vec<u8> {
    let mut k = noise(len, 4);
    k[..0x1000].fill(0);
    put(&mut k, 0, b"MZ\0\0zimg");
    put(&mut k, 8, &0x1000u32.to_le_bytes());
    put(&mut k, 12, &size.to_le_bytes());
    put(&mut k, 24, method.as_bytes());
    put(&mut k, 0x38, &0x8182_23cdu32.to_le_bytes());
    pe_at_0x40(&mut k, machine);
    put(&mut k, 0x1000, payload);
    k
}

/// ARM zImage (Documentation/arch/arm/booting.rst): eight words of code, a branch, the magic
/// 0x016f2818 at 0x24, start and end at 0x28/0x2c, the endianness marker at 0x30, all in the
/// kernel's byte order.
fn arm_zimage(len: usize, start: u32, end: u32, big: bool, marker: bool) -> Vec<u8> {
    let mut k = noise(len, 5);
    let w = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    for i in 0..8 {
        put(&mut k, i * 4, &w(0xe1a0_0000)); // mov r0, r0
    }
    put(&mut k, 0x20, &w(0xea00_0003));
    put(&mut k, 0x24, &w(0x016f_2818));
    put(&mut k, 0x28, &w(start));
    put(&mut k, 0x2c, &w(end));
    if marker {
        put(&mut k, 0x30, &w(0x0403_0201));
        put(&mut k, 0x34, &w(0x4545_4545));
    } else {
        put(&mut k, 0x30, &[0; 8]);
    }
    k
}

/// RISC-V Image (Documentation/arch/riscv/boot-image-header.rst).
fn riscv_image(len: usize, efi: bool) -> Vec<u8> {
    let mut k = noise(len, 6);
    k[..0x200].fill(0);
    put(&mut k, 8, &0x20_0000u64.to_le_bytes());
    put(&mut k, 16, &0x150_0000u64.to_le_bytes());
    put(&mut k, 24, &0u64.to_le_bytes());
    put(&mut k, 32, &0x0000_0002u32.to_le_bytes()); // version 0.2
    put(&mut k, 0x30, b"RISCV\0\0\0");
    put(&mut k, 0x38, b"RSC\x05");
    if efi {
        pe_at_0x40(&mut k, 0x5064);
    }
    k
}

/// x86 bzImage (Documentation/arch/x86/boot.rst): boot sector, setup header (`HdrS`, protocol
/// 2.15), the kernel version string, an EFI stub, and an xz payload at payload_offset.
fn bzimage(len: usize) -> Vec<u8> {
    let mut k = noise(len, 7);
    k[..0x1000].fill(0);
    pe_at_0x40(&mut k, 0x8664);
    k[0x1f1] = 3;
    put(
        &mut k,
        0x1f4,
        &(((len as u32) - 4 * 512) / 16).to_le_bytes(),
    );
    put(&mut k, 0x1fe, &[0x55, 0xaa]);
    put(&mut k, 0x200, &[0xeb, 0x6a]);
    put(&mut k, 0x202, b"HdrS");
    put(&mut k, 0x206, &0x020fu16.to_le_bytes());
    put(&mut k, 0x20e, &0x0400u16.to_le_bytes());
    k[0x211] = 1;
    put(&mut k, 0x236, &1u16.to_le_bytes());
    put(&mut k, 0x248, &0x100u32.to_le_bytes());
    put(
        &mut k,
        0x600,
        b"6.12.9-amd64 (debian-kernel@lists.debian.org) #1 SMP\0",
    );
    put(&mut k, 4 * 512 + 0x100, b"\xfd7zXZ\0\0\x01");
    k
}

#[test]
fn arm64_image_header() {
    let d = tmp();
    let dir = d.path();
    // 4 KiB pages, placed anywhere, EFI stub: what distributions ship (Debian's arm64 vmlinuz).
    // The file is shorter than image_size (which counts BSS): not a truncation.
    let info = info_of(
        dir,
        "Image",
        &arm64_image(1 << 20, 0x1ab_0000, 0b1010, true),
    );
    assert_eq!(info["format"], "aki", "{info}");
    assert_eq!(info["virtual-size"], 1 << 20);
    assert_details(
        &info,
        &[
            ("arch", "arm64".into()),
            ("image", "Image".into()),
            ("endianness", "little".into()),
            ("page-size", 4096.into()),
            ("placement", "anywhere".into()),
            ("efi-stub", true.into()),
            ("image-size", 0x1ab_0000.into()),
            ("text-offset", 0.into()),
        ],
    );
    assert!(codes(&info).is_empty(), "{info}");

    // Big-endian, 64 KiB pages, near the base of DRAM, no EFI stub.
    let info = info_of(dir, "be", &arm64_image(8192, 0x80_0000, 0b0111, false));
    assert_details(
        &info,
        &[
            ("arch", "arm64".into()),
            ("image", "Image".into()),
            ("endianness", "big".into()),
            ("page-size", 65536.into()),
            ("placement", "near-dram-base".into()),
            ("efi-stub", false.into()),
            ("image-size", 0x80_0000.into()),
            ("text-offset", 0.into()),
        ],
    );
    // 16 KiB pages; page size unspecified leaves the key out.
    let info = info_of(dir, "16k", &arm64_image(8192, 0x80_0000, 0b0100, false));
    assert_eq!(info["format-specific"]["page-size"], 16384);
    let info = info_of(dir, "nops", &arm64_image(8192, 0x80_0000, 0, false));
    assert!(info["format-specific"].get("page-size").is_none());

    // Before Linux 3.17: image_size 0, text_offset 0x80000 in the kernel's byte order.
    let mut old = arm64_image(8192, 0, 0, false);
    put(&mut old, 8, &0x80000u64.to_le_bytes());
    let info = info_of(dir, "old", &old);
    assert_details(
        &info,
        &[
            ("arch", "arm64".into()),
            ("image", "Image".into()),
            ("legacy-header", true.into()),
            ("endianness", "little".into()),
            ("efi-stub", false.into()),
        ],
    );
}

#[test]
fn efi_zboot_images() {
    let d = tmp();
    let dir = d.path();
    let cases: [(&str, &[u8], u16, &str, &str); 7] = [
        ("gzip", &[0x1f, 0x8b, 8, 0], 0xaa64, "arm64", "gzip"),
        ("zstd22", &[0x28, 0xb5, 0x2f, 0xfd], 0xaa64, "arm64", "zstd"),
        ("zstd", &[0x28, 0xb5, 0x2f, 0xfd], 0x8664, "x86-64", "zstd"),
        ("xzkern", b"\xfd7zXZ\0\0\x01", 0x5064, "riscv64", "xz"),
        ("lz4", &[0x02, 0x21, 0x4c, 0x18], 0x5032, "riscv32", "lz4"),
        (
            "lzma",
            &[0x5d, 0, 0, 0x80, 0],
            0x6264,
            "loongarch64",
            "lzma",
        ),
        ("lzo", b"\x89LZO\0\r\n\x1a\n", 0xaa64, "arm64", "lzo"),
    ];
    for (method, magic, machine, arch, named) in cases {
        let k = zboot(64 << 10, method, machine, magic, 60 << 10);
        let info = info_of(dir, "vmlinuz.efi", &k);
        assert_eq!(info["format"], "aki", "{info}");
        assert_details(
            &info,
            &[
                ("image", "EFI zboot".into()),
                ("arch", arch.into()),
                ("compression", named.into()),
                ("efi-stub", true.into()),
                ("payload-offset", 0x1000.into()),
                ("payload-size", (60 << 10).into()),
            ],
        );
        assert!(codes(&info).is_empty(), "{method}: {info}");
    }
    // The payload runs past the end of the file.
    let k = zboot(32 << 10, "gzip", 0xaa64, &[0x1f, 0x8b, 8, 0], 60 << 10);
    let info = info_of(dir, "cut.efi", &k);
    assert_eq!(info["format"], "aki");
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    assert_eq!(severity_of(&info, "truncated"), "critical");
    // The header names gzip, the payload is zstd.
    let k = zboot(
        64 << 10,
        "gzip",
        0xaa64,
        &[0x28, 0xb5, 0x2f, 0xfd],
        60 << 10,
    );
    let info = info_of(dir, "odd.efi", &k);
    assert!(codes(&info).contains(&"corrupt".into()), "{info}");
    // An unknown PE machine.
    let k = zboot(64 << 10, "gzip", 0x1234, &[0x1f, 0x8b, 8, 0], 60 << 10);
    let info = info_of(dir, "unknown.efi", &k);
    assert_eq!(info["format-specific"]["arch"], "unknown");
}

#[test]
fn arm_zimages() {
    let d = tmp();
    let dir = d.path();
    // Little-endian, position independent (start 0), an EFI stub, as Debian's armmp vmlinuz.
    let mut k = arm_zimage(300_000, 0, 300_000, false, true);
    pe_at_0x40(&mut k, 0x01c2);
    let info = info_of(dir, "zImage", &k);
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        &[
            ("arch", "arm".into()),
            ("image", "zImage".into()),
            ("endianness", "little".into()),
            ("endianness-marker", true.into()),
            ("load-address", "0x00000000".into()),
            ("image-size", 300_000.into()),
            ("efi-stub", true.into()),
        ],
    );
    assert!(codes(&info).is_empty(), "{info}");

    // Big-endian, an absolute load address, no marker (before Linux 3.17), an appended DTB
    // (the file is longer than the zImage): fine.
    let k = arm_zimage(70_000, 0x8000, 0x8000 + 65_536, true, false);
    let info = info_of(dir, "be", &k);
    assert_details(
        &info,
        &[
            ("arch", "arm".into()),
            ("image", "zImage".into()),
            ("endianness", "big".into()),
            ("load-address", "0x00008000".into()),
            ("image-size", 65_536.into()),
            ("efi-stub", false.into()),
        ],
    );
    assert!(codes(&info).is_empty(), "{info}");

    // Shorter than end - start: truncated.
    let k = arm_zimage(100_000, 0, 300_000, false, true);
    let info = info_of(dir, "cut", &k);
    assert_eq!(info["format"], "aki");
    assert_eq!(info["format-specific"]["image-size"], 300_000);
    assert_eq!(severity_of(&info, "truncated"), "critical");

    // end < start: no size, a corrupt finding.
    let k = arm_zimage(100_000, 0x9000, 0x8000, false, true);
    let info = info_of(dir, "backwards", &k);
    assert_eq!(info["format"], "aki");
    assert!(
        info["format-specific"].get("image-size").is_none(),
        "{info}"
    );
    assert_eq!(severity_of(&info, "corrupt"), "critical");
}

#[test]
fn riscv_loongarch_and_x86_kernels() {
    let d = tmp();
    let dir = d.path();
    let info = info_of(dir, "Image", &riscv_image(65536, true));
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        &[
            ("arch", "riscv64".into()),
            ("image", "Image".into()),
            ("endianness", "little".into()),
            ("efi-stub", true.into()),
            ("image-size", 0x150_0000.into()),
            ("text-offset", 0x20_0000.into()),
            ("header-version", "0.2".into()),
        ],
    );
    // Without the EFI stub the header does not say 32 or 64 bits.
    let info = info_of(dir, "Image2", &riscv_image(65536, false));
    assert_eq!(info["format-specific"]["arch"], "riscv");

    // LoongArch: MZ, kernel entry, effective size, load offset, LINUX_PE_MAGIC, PE (0x6264).
    let mut k = noise(65536, 8);
    k[..0x200].fill(0);
    pe_at_0x40(&mut k, 0x6264);
    put(&mut k, 8, &0x9000_0000_0020_0000u64.to_le_bytes());
    put(&mut k, 0x10, &0x180_0000u64.to_le_bytes());
    put(&mut k, 0x18, &0x20_0000u64.to_le_bytes());
    put(&mut k, 0x38, &0x8182_23cdu32.to_le_bytes());
    let info = info_of(dir, "vmlinux.efi", &k);
    assert_details(
        &info,
        &[
            ("arch", "loongarch64".into()),
            ("image", "Image".into()),
            ("efi-stub", true.into()),
            ("image-size", 0x180_0000.into()),
            ("load-offset", 0x20_0000.into()),
        ],
    );

    let info = info_of(dir, "vmlinuz", &bzimage(64 << 10));
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        &[
            ("arch", "x86-64".into()),
            ("image", "bzImage".into()),
            ("boot-protocol", "2.15".into()),
            ("64-bit", true.into()),
            ("efi-stub", true.into()),
            (
                "kernel-version",
                "6.12.9-amd64 (debian-kernel@lists.debian.org) #1 SMP".into(),
            ),
            ("compression", "xz".into()),
        ],
    );
    assert!(codes(&info).is_empty(), "{info}");
    let info = info_of(dir, "short", &bzimage(64 << 10)[..8192]);
    assert_eq!(info["format"], "aki");
    assert_eq!(severity_of(&info, "truncated"), "critical");
}

// ---- initramfs ------------------------------------------------------------------------------

/// One newc member (`070701`, or `070702` with the data's byte sum as its check).
fn newc(magic: &str, name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let check = if magic == "070702" {
        data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
    } else {
        0
    };
    let fields = [
        1,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        check,
    ];
    let mut v = magic.as_bytes().to_vec();
    for f in fields {
        v.extend(format!("{f:08x}").as_bytes());
    }
    v.extend(name.as_bytes());
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(data);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

const DIR: u32 = 0o040755;
const FILE: u32 = 0o100644;

/// The early microcode archive initramfs-tools and dracut prepend, padded to 512 bytes.
fn early_cpio(magic: &str) -> Vec<u8> {
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

fn main_cpio() -> Vec<u8> {
    let mut a = newc("070701", "init", 0o100755, b"#!/bin/sh\nexec /sbin/init\n");
    a.extend(newc("070701", "etc", DIR, b""));
    a.extend(newc("070701", "etc/fstab", FILE, &text(20_000, 3)));
    a.extend(newc("070701", "TRAILER!!!", 0, b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

fn member_names(info: &Value) -> Vec<String> {
    info["format-specific"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
    std::fs::create_dir_all(dir.join("early/kernel/x86/microcode")).unwrap();
    std::fs::write(
        dir.join("early/kernel/x86/microcode/AuthenticAMD.bin"),
        noise(5000, 1),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("main/etc")).unwrap();
    std::fs::write(dir.join("main/init"), b"#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("main/etc/fstab"), text(10_000, 2)).unwrap();
    // Sorted, so the member order is known.
    sh(
        dir,
        "cd early && find . | LC_ALL=C sort | cpio --quiet -o -H newc > ../early.cpio",
    );
    sh(
        dir,
        "cd main && find . | LC_ALL=C sort | cpio --quiet -o -H newc > ../main.cpio",
    );
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
    sh(
        dir,
        "cd early && find . | LC_ALL=C sort | cpio --quiet -o -H crc > ../crc.cpio && cd .. && gzip -c main.cpio > main.gz && cat crc.cpio main.gz > crc.img",
    );
    let info = info_json(&["crc.img"], dir);
    assert_eq!(info["format-specific"]["archive"], "cpio (newc, crc)");
    assert_eq!(info["format-specific"]["layout"], "early cpio + gzip");
    assert!(codes(&info).is_empty(), "{info}");
    // odc: listed, with the warning that the kernel does not read it.
    sh(
        dir,
        "cd main && find . | LC_ALL=C sort | cpio --quiet -o -H odc > ../odc.cpio",
    );
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
    let d = tmp();
    let dir = d.path();
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

// ---- damage ---------------------------------------------------------------------------------

#[test]
fn damaged_initramfs() {
    let d = tmp();
    let dir = d.path();
    let early = early_cpio("070701");
    // Cut inside a header, inside a name, inside data: a cpio without its trailer.
    for cut in [150, 236, 300, 1000] {
        let info = info_of(dir, "cut.img", &early[..cut]);
        assert_eq!(info["format"], "ari", "{cut}: {info}");
        assert_eq!(severity_of(&info, "truncated"), "critical");
    }
    // Garbage after the magic of the second header.
    let mut b = early.clone();
    put(&mut b, 120 + 6, b"not hex!");
    let info = info_of(dir, "garbage.img", &b);
    assert_eq!(info["format"], "ari");
    assert_eq!(severity_of(&info, "corrupt"), "critical");
    // Bytes after the trailer that are neither an archive nor a known compression.
    let mut b = early.clone();
    b.extend(b"this is not compressed data");
    let info = info_of(dir, "junk.img", &b);
    assert_eq!(info["format-specific"]["layout"], "early cpio + data");
    assert_eq!(severity_of(&info, "corrupt"), "warning");
    // An archive appended at an offset that is not a multiple of 4.
    let mut b = early.clone();
    b.push(0);
    b.extend(main_cpio());
    let info = info_of(dir, "odd.img", &b);
    assert_eq!(info["format"], "ari");
    assert!(codes(&info).contains(&"corrupt".into()), "{info}");
    // A bad first header is not a cpio at all: raw.
    let mut b = early.clone();
    put(&mut b, 6, b"zz");
    let info = info_of(dir, "notcpio.img", &b);
    assert_eq!(info["format"], "raw", "{info}");
}

#[test]
fn damaged_kernel_headers() {
    let d = tmp();
    let dir = d.path();
    // Every kernel cut short of its header: a report (maybe raw), never a panic.
    let kernels = [
        arm64_image(8192, 0x80_0000, 0b1010, true),
        zboot(8192, "gzip", 0xaa64, &[0x1f, 0x8b, 8, 0], 4096),
        arm_zimage(8192, 0, 8192, false, true),
        riscv_image(8192, true),
        bzimage(8192),
    ];
    for k in &kernels {
        for cut in [
            1, 2, 0x27, 0x28, 0x2c, 0x30, 0x3c, 0x40, 0x44, 0x46, 0x200, 0x210, 0x250,
        ] {
            write(dir, "k", &k[..cut]);
            let out = run(vmdisk_bin(), &["info", "--json", "k"], dir);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{err}");
            if out.status.success() {
                json(&String::from_utf8_lossy(&out.stdout));
            } else {
                assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            }
        }
    }
    // A zboot header cut before its PE header.
    let info = info_of(dir, "z", &kernels[1][..0x30]);
    assert_eq!(info["format"], "aki", "{info}");
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    // Garbage after the magic: offsets pointing anywhere.
    let mut z = kernels[1].clone();
    put(&mut z, 8, &u32::MAX.to_le_bytes());
    put(&mut z, 12, &u32::MAX.to_le_bytes());
    put(&mut z, 24, &[0xff; 32]);
    put(&mut z, 0x3c, &u32::MAX.to_le_bytes());
    let info = info_of(dir, "z2", &z);
    assert_eq!(info["format"], "aki");
    assert_eq!(info["format-specific"]["efi-stub"], false);
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    let mut a = kernels[0].clone();
    put(&mut a, 0x3c, &0xffff_fff0u32.to_le_bytes());
    put(&mut a, 16, &u64::MAX.to_le_bytes());
    put(&mut a, 24, &u64::MAX.to_le_bytes());
    let info = info_of(dir, "a2", &a);
    assert_eq!(info["format"], "aki");
    assert_eq!(info["format-specific"]["efi-stub"], false);
}

/// Random mutations of every input above: through the library (many rounds, fast) and through
/// the CLI (fewer): a report or a one-line error, never a panic. Tests build with overflow checks
/// on, so unchecked header arithmetic would show here.
#[test]
fn mutations_never_panic() {
    let mut early_gz = early_cpio("070702");
    early_gz.extend([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let mut two = early_cpio("070701");
    two.extend(main_cpio());
    let inputs = [
        arm64_image(4096, 0x80_0000, 0b1010, true),
        zboot(8192, "zstd22", 0x5064, &[0x28, 0xb5, 0x2f, 0xfd], 4096),
        arm_zimage(4096, 0, 4096, true, true),
        riscv_image(4096, true),
        bzimage(8192),
        early_gz,
        two,
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for input in &inputs {
        for _ in 0..400 {
            let mut b = input.clone();
            for _ in 0..1 + rng.next() % 12 {
                let r = rng.next();
                // Mostly the headers (first 512 bytes), sometimes anywhere.
                let span = if r & 3 == 0 {
                    b.len()
                } else {
                    512.min(b.len())
                };
                let at = (r >> 8) as usize % span;
                b[at] = match (r >> 40) % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => b'0' + (r >> 48) as u8 % 10,
                    _ => (r >> 48) as u8,
                };
            }
            if rng.next().is_multiple_of(4) {
                let keep = rng.next() as usize % b.len() + 1;
                b.truncate(keep);
            }
            let src = MemSource::new("m", b);
            let _ = vmdisk::native::block_on(probe(&src));
        }
    }
    let d = tmp();
    let dir = d.path();
    for (i, input) in inputs.iter().enumerate() {
        for round in 0..6 {
            let mut b = input.clone();
            for _ in 0..8 {
                let r = rng.next();
                let at = (r >> 8) as usize % 256.min(b.len());
                b[at] = (r >> 40) as u8;
            }
            if round % 2 == 1 {
                b.truncate(rng.next() as usize % b.len() + 1);
            }
            let name = format!("m{i}-{round}");
            write(dir, &name, &b);
            let out = run(vmdisk_bin(), &["info", "--json", &name], dir);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{name}: {err}");
            if out.status.success() {
                json(&String::from_utf8_lossy(&out.stdout));
            } else {
                assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
            }
        }
    }
}

#[test]
fn boot_files_are_not_disks() {
    let d = tmp();
    let dir = d.path();
    let mut initrd = newc("070701", "init", 0o100755, b"#!/bin/sh\n");
    initrd.extend(newc("070701", "TRAILER!!!", 0, b""));
    std::fs::write(dir.join("initrd"), initrd).unwrap();
    let info = info_json(&["initrd"], dir);
    assert_eq!(info["format"], "ari");
    assert_eq!(info["convertible"], false);
    let f = &info["safety"]["findings"][0];
    assert_eq!(f["code"], "not-a-disk", "{info}");
    assert!(
        f["message"].as_str().unwrap().contains("disk_format=ari"),
        "{f}"
    );
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "x.raw", "initrd"],
        dir,
    );
    assert!(err.contains("ramdisk (ARI), not a disk"), "{err}");
}
