//! Linux boot files through `vmdisk info --json`: kernels (AKI) of every architecture from headers
//! built here after each architecture's boot documentation, and initramfs archives (ARI) as
//! dracut and initramfs-tools write them (an uncompressed early microcode cpio, zero padding, a
//! compressed main archive), made with the real compressors installed on the machine and, when it
//! is installed, the real `cpio`. Damaged and mutated inputs must give a report or a one-line
//! error, never a panic.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use vmdisk::probe::probe;
use vmdisk::source::MemSource;

#[path = "boot_files/damage.rs"]
mod damage;
#[path = "boot_files/initramfs.rs"]
mod initramfs;

// ---- helpers --------------------------------------------------------------------------------

/// `vmdisk info --json` of one file written from `data`.
fn info_of(dir: &Path, name: &str, data: &[u8]) -> Value {
    write(dir, name, data);
    info_json(&[name], dir)
}

/// The finding codes besides `not-a-disk`, which every kernel and ramdisk carries (checked by
/// itself in `boot_files_are_not_disks`).
fn codes(info: &Value) -> Vec<String> {
    let mut all = common::codes(info);
    all.retain(|c| c != "not-a-disk");
    all
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

/// The details object, checked against `expected` (a JSON object): every key reported is
/// expected and has the expected value.
fn assert_details(info: &Value, expected: Value) {
    let fs = info["format-specific"]
        .as_object()
        .expect("format-specific");
    let expected = expected.as_object().expect("expected details");
    for (k, v) in expected {
        assert_eq!(fs.get(k), Some(v), "{k} in {info}");
    }
    for k in fs.keys() {
        assert!(expected.contains_key(k), "unexpected key {k} in {info}");
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
    let version = b"6.12.9-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
    x86_setup_header(&mut k, 0x600, version);
    put(&mut k, 0x248, &0x100u32.to_le_bytes());
    put(&mut k, 4 * 512 + 0x100, b"\xfd7zXZ\0\0\x01");
    k
}

#[test]
fn arm64_image_header() {
    let dir = &scratch();
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
        json!({"arch": "arm64", "image": "Image", "endianness": "little", "page-size": 4096,
            "placement": "anywhere", "efi-stub": true, "image-size": 0x1ab_0000,
            "text-offset": 0}),
    );
    assert!(codes(&info).is_empty(), "{info}");

    // Big-endian, 64 KiB pages, near the base of DRAM, no EFI stub.
    let info = info_of(dir, "be", &arm64_image(8192, 0x80_0000, 0b0111, false));
    assert_details(
        &info,
        json!({"arch": "arm64", "image": "Image", "endianness": "big", "page-size": 65536,
            "placement": "near-dram-base", "efi-stub": false, "image-size": 0x80_0000,
            "text-offset": 0}),
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
        json!({"arch": "arm64", "image": "Image", "legacy-header": true, "endianness": "little",
            "efi-stub": false}),
    );
}

#[test]
fn efi_zboot_images() {
    let dir = &scratch();
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
            json!({"image": "EFI zboot", "arch": arch, "compression": named, "efi-stub": true,
                "payload-offset": 0x1000, "payload-size": (60 << 10)}),
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
    let dir = &scratch();
    // Little-endian, position independent (start 0), an EFI stub, as Debian's armmp vmlinuz.
    let mut k = arm_zimage(300_000, 0, 300_000, false, true);
    pe_at_0x40(&mut k, 0x01c2);
    let info = info_of(dir, "zImage", &k);
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        json!({"arch": "arm", "image": "zImage", "endianness": "little",
            "endianness-marker": true, "load-address": "0x00000000", "image-size": 300_000,
            "efi-stub": true}),
    );
    assert!(codes(&info).is_empty(), "{info}");

    // Big-endian, an absolute load address, no marker (before Linux 3.17), an appended DTB
    // (the file is longer than the zImage): fine.
    let k = arm_zimage(70_000, 0x8000, 0x8000 + 65_536, true, false);
    let info = info_of(dir, "be", &k);
    assert_details(
        &info,
        json!({"arch": "arm", "image": "zImage", "endianness": "big",
            "load-address": "0x00008000", "image-size": 65_536, "efi-stub": false}),
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
    let dir = &scratch();
    let info = info_of(dir, "Image", &riscv_image(65536, true));
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        json!({"arch": "riscv64", "image": "Image", "endianness": "little", "efi-stub": true,
            "image-size": 0x150_0000, "text-offset": 0x20_0000, "header-version": "0.2"}),
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
        json!({"arch": "loongarch64", "image": "Image", "efi-stub": true,
            "image-size": 0x180_0000, "load-offset": 0x20_0000}),
    );

    let info = info_of(dir, "vmlinuz", &bzimage(64 << 10));
    assert_eq!(info["format"], "aki", "{info}");
    assert_details(
        &info,
        json!({"arch": "x86-64", "image": "bzImage", "boot-protocol": "2.15", "64-bit": true,
            "efi-stub": true,
            "kernel-version": "6.12.9-amd64 (debian-kernel@lists.debian.org) #1 SMP",
            "compression": "xz"}),
    );
    assert!(codes(&info).is_empty(), "{info}");
    let info = info_of(dir, "short", &bzimage(64 << 10)[..8192]);
    assert_eq!(info["format"], "aki");
    assert_eq!(severity_of(&info, "truncated"), "critical");
}
