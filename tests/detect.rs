//! Format detection from content: every format vmdisk names, checked against `qemu-img info`
//! where qemu knows the format, and byte-level cases (polyglots, truncation, hand-built
//! superblocks and partition tables) through `vmdisk::probe::probe` directly.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use vmdisk::probe::{Format, Probe, probe};
use vmdisk::source::MemSource;

#[path = "detect/archives.rs"]
mod archives;
#[path = "detect/filesystems.rs"]
mod filesystems;
#[path = "detect/polyglots.rs"]
mod polyglots;
#[path = "detect/truncated.rs"]
mod truncated;

const MIB: u64 = 1 << 20;

// ---- helpers --------------------------------------------------------------------------------

fn probe_bytes(data: Vec<u8>) -> vmdisk::Result<Probe> {
    let src = MemSource::new("t", data);
    vmdisk::native::block_on(probe(&src))
}

fn probed(data: Vec<u8>) -> Probe {
    probe_bytes(data).expect("probe")
}

/// Every finding code of a probe (file-level and the primary's).
fn probe_codes(p: &Probe) -> Vec<&'static str> {
    p.findings
        .iter()
        .chain(&p.primary().findings)
        .map(|f| f.code.code())
        .collect()
}

fn detected(info: &Value) -> Vec<String> {
    each(&info["detected"], |f| f.as_str().unwrap().to_string())
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// A Microsoft GUID in its on-disk (mixed-endian) byte order.
fn guid_bytes(s: &str) -> [u8; 16] {
    let hex: Vec<u8> = s
        .split('-')
        .flat_map(|p| {
            (0..p.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&p[i..i + 2], 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut b: [u8; 16] = hex.try_into().unwrap();
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// A minimal ISO 9660 image: primary volume descriptor at sector 16, terminator at 17.
fn iso(blocks: u32) -> Vec<u8> {
    let mut v = vec![0u8; blocks as usize * 2048];
    put(&mut v, 0x8000, b"\x01CD001\x01");
    put(&mut v, 0x8008, format!("{:<32}", "LINUX").as_bytes());
    put(&mut v, 0x8028, format!("{:<32}", "TEST_VOLUME").as_bytes());
    put(&mut v, 0x8050, &blocks.to_le_bytes());
    put(&mut v, 0x8054, &blocks.to_be_bytes());
    put(&mut v, 0x8080, &2048u16.to_le_bytes());
    put(&mut v, 0x8082, &2048u16.to_be_bytes());
    put(&mut v, 0x8800, b"\xffCD001\x01");
    v
}

/// A VHD footer (fixed or dynamic) with a valid checksum.
fn vhd_footer(size: u64, disk_type: u32, data_offset: u64) -> [u8; 512] {
    let mut f = [0u8; 512];
    put(&mut f, 0, b"conectix");
    put(&mut f, 8, &2u32.to_be_bytes());
    put(&mut f, 12, &0x0001_0000u32.to_be_bytes());
    put(&mut f, 16, &data_offset.to_be_bytes());
    put(&mut f, 28, b"win ");
    put(&mut f, 36, b"Wi2k");
    put(&mut f, 40, &size.to_be_bytes());
    put(&mut f, 48, &size.to_be_bytes());
    put(&mut f, 56, &[0x04, 0x00, 0x10, 0x3f]);
    put(&mut f, 60, &disk_type.to_be_bytes());
    let sum = f.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    put(&mut f, 64, &(!sum).to_be_bytes());
    f
}

/// A small initramfs: a few members and the trailer.
fn cpio_archive() -> Vec<u8> {
    let mut a = newc_file("init", b"#!/bin/sh\nexec /sbin/init\n");
    a.extend(newc_file("etc/fstab", b"/dev/vda1 / ext4 defaults 0 1\n"));
    a.extend(newc_file("TRAILER!!!", b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

/// The start of an x86 bzImage: boot sector, setup header (`HdrS`, protocol 2.15) and the
/// kernel version string the header points at.
fn bzimage() -> Vec<u8> {
    let mut k = noise(64 << 10, 7);
    k[..512].fill(0);
    put(&mut k, 0, b"MZ");
    let version = b"6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
    x86_setup_header(&mut k, 0x400, version);
    k
}

fn qemu_create(dir: &Path, fmt: &str, opts: &str, file: &str, size: &str) {
    if fmt == "luks" {
        // qemu spends seconds timing PBKDF2 for each LUKS image: make one, share its bytes.
        write(dir, file, luks_image());
        return;
    }
    create_image(dir, fmt, opts, &[], file, size);
}

/// One small image of each format qemu-img writes, by its default options: (qemu format, file,
/// the format vmdisk names).
const QEMU_MADE: [(&str, &str, Format); 9] = [
    ("qcow2", "a.qcow2", Format::Qcow2),
    ("qcow", "a.qcow", Format::Qcow),
    ("qed", "a.qed", Format::Qed),
    ("vmdk", "a.vmdk", Format::Vmdk),
    ("vpc", "a.vhd", Format::Vhd),
    ("vhdx", "a.vhdx", Format::Vhdx),
    ("parallels", "a.hdd", Format::Parallels),
    ("luks", "a.luks", Format::Luks),
    ("vdi", "a.vdi", Format::Vdi),
];

/// A 4 MiB LUKS1 image made once by qemu-img.
fn luks_image() -> &'static [u8] {
    static LUKS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LUKS.get_or_init(|| {
        let d = tmp();
        let opts = [
            "--object",
            "secret,id=s0,data=pw",
            "-o",
            "key-secret=s0,iter-time=10",
        ];
        let mut args = vec!["create", "-q", "-f", "luks"];
        args.extend(opts);
        args.extend(["a.luks", "4M"]);
        qemu_img(&args, d.path());
        read(d.path(), "a.luks")
    })
}

// ---- formats qemu-img writes ----------------------------------------------------------------

#[test]
fn every_qemu_format_is_named_with_qemus_virtual_size() {
    let dir = &scratch();
    // (qemu format, create options, file, our name)
    let cases = [
        ("qcow2", "", "a.qcow2", "qcow2"),
        ("qcow2", "compat=0.10", "v2.qcow2", "qcow2"),
        ("qcow", "", "a.qcow", "qcow"),
        ("qed", "", "a.qed", "qed"),
        ("vdi", "", "dyn.vdi", "vdi"),
        ("vdi", "static=on", "static.vdi", "vdi"),
        ("vpc", "subformat=dynamic", "dyn.vhd", "vhd"),
        ("vhdx", "", "a.vhdx", "vhdx"),
        ("parallels", "", "a.hdd", "parallels"),
        ("luks", "", "a.luks", "luks"),
        ("vmdk", "subformat=monolithicSparse", "ms.vmdk", "vmdk"),
        ("vmdk", "subformat=streamOptimized", "so.vmdk", "vmdk"),
        ("vmdk", "subformat=monolithicFlat", "mf.vmdk", "vmdk"),
        ("vmdk", "subformat=twoGbMaxExtentSparse", "tg.vmdk", "vmdk"),
    ];
    for (fmt, opts, file, ours) in &cases {
        // Sizes that are not a multiple of a MiB, to catch rounding.
        qemu_create(dir, fmt, opts, file, "17M");
        let q = qemu_info(file, dir);
        let qfmt = if *fmt == "vpc" { "vpc" } else { fmt };
        assert_eq!(q["format"], qfmt, "{file}");
        let info = info_json(&[file], dir);
        assert_eq!(info["format"], *ours, "{file}: {info}");
        assert_eq!(info["virtual-size"], q["virtual-size"], "{file}: {info}");
        assert_eq!(detected(&info), vec![ours.to_string()], "{file}");
        assert!(!codes(&info).contains(&"format-mismatch".into()), "{file}");
    }
    let vmdk = |f: &str| info_json(&[f], dir)["format-specific"].clone();
    assert_eq!(vmdk("ms.vmdk")["create-type"], "monolithicSparse");
    assert_eq!(vmdk("so.vmdk")["create-type"], "streamOptimized");
    assert_eq!(vmdk("so.vmdk")["compression"], "deflate");
    assert_eq!(vmdk("mf.vmdk")["create-type"], "monolithicFlat");
    assert_eq!(vmdk("mf.vmdk")["extents"][0]["file"], "mf-flat.vmdk");
    assert_eq!(vmdk("tg.vmdk")["create-type"], "twoGbMaxExtentSparse");
    let vdi = |f: &str| info_json(&[f], dir)["format-specific"]["image-type"].clone();
    assert_eq!(vdi("dyn.vdi"), "dynamic");
    assert_eq!(vdi("static.vdi"), "fixed");
    let vhd = info_json(&["dyn.vhd"], dir);
    assert_eq!(vhd["format-specific"]["disk-type"], "dynamic");
    assert_eq!(vhd["format-specific"]["block-size"], 2 * MIB);
    let luks = info_json(&["a.luks"], dir);
    assert_eq!(luks["format-specific"]["version"], 1);
    assert!(codes(&luks).contains(&"encrypted".into()));
    let vhdx = info_json(&["a.vhdx"], dir);
    assert_eq!(vhdx["format-specific"]["disk-type"], "dynamic");
    assert_eq!(vhdx["format-specific"]["logical-sector-size"], 512);
}

#[test]
fn fixed_vhd_is_found_from_its_footer() {
    let dir = &scratch();
    qemu_create(dir, "vpc", "subformat=fixed", "f.vhd", "17M");
    // qemu-img only looks for "conectix" at offset 0, so it calls a fixed VHD raw (and counts
    // the footer as guest data).
    let q = qemu_info("f.vhd", dir);
    assert_eq!(q["format"], "raw");
    let len = std::fs::metadata(path(dir, "f.vhd")).unwrap().len();
    let info = info_json(&["f.vhd"], dir);
    assert_eq!(info["format"], "vhd");
    assert_eq!(info["virtual-size"], len - 512);
    assert_eq!(q["virtual-size"], len);
    assert_eq!(info["format-specific"]["disk-type"], "fixed");
    assert!(info["safety"]["safe"].as_bool().unwrap(), "{info}");
}

#[test]
fn vhd_footer_variants() {
    // An old Virtual PC footer of 511 bytes.
    let mut v = vec![0u8; 4 * MIB as usize];
    v.extend_from_slice(&vhd_footer(4 * MIB, 2, u64::MAX)[..511]);
    let p = probed(v);
    assert_eq!(p.primary().format, Format::Vhd);
    assert_eq!(p.primary().virtual_size, Some(4 * MIB));
    assert_eq!(p.primary().details["footer-size"], 511);

    // A dynamic VHD whose end was cut off: the copy at offset 0 still names it.
    let dir = &scratch();
    qemu_create(dir, "vpc", "subformat=dynamic", "d.vhd", "8M");
    let mut b = read(dir, "d.vhd");
    b.truncate(b.len() - 512);
    let p = probed(b);
    assert_eq!(p.primary().format, Format::Vhd);
    assert!(probe_codes(&p).contains(&"truncated"));

    // A "conectix" at the end of random data with nothing footer-like after it is not a VHD.
    let mut r = noise(8192, 3);
    let n = r.len();
    put(&mut r, n - 512, b"conectix");
    assert_eq!(probed(r).primary().format, Format::Raw);
}

#[test]
fn vmdk_flat_extent_alone_is_raw_and_split_extent_is_vmdk() {
    let dir = &scratch();
    qemu_create(dir, "vmdk", "subformat=monolithicFlat", "mf.vmdk", "4M");
    let info = info_json(&["mf-flat.vmdk"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], 4 * MIB);
    qemu_create(
        dir,
        "vmdk",
        "subformat=twoGbMaxExtentSparse",
        "tg.vmdk",
        "4M",
    );
    let info = info_json(&["tg-s001.vmdk"], dir);
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["format-specific"]["embedded-descriptor"], false);
}

#[test]
fn vmdk_descriptor_extent_paths_are_unsafe() {
    let dir = &scratch();
    write(
        dir,
        "evil.vmdk",
        b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\nRW 2048 FLAT \"ok-flat.vmdk\" 0\n",
    );
    let info = info_json(&["evil.vmdk"], dir);
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"], 2 * 2048 * 512);
    assert!(codes(&info).contains(&"external-extent".into()));
    assert_eq!(info["safety"]["safe"], false);

    // A descriptor without the comment line, found by its createType, with a parent.
    write(
        dir,
        "delta.vmdk",
        b"version=1\nCID=1\nparentCID=2\ncreateType=\"monolithicSparse\"\nparentFileNameHint=\"base.vmdk\"\nRW 100 SPARSE \"delta-s.vmdk\"\n",
    );
    let info = info_json(&["delta.vmdk"], dir);
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["format-specific"]["parent"], "base.vmdk");
    assert!(codes(&info).contains(&"backing-file".into()));
}

#[test]
fn cowd_sparse_extent() {
    let mut h = vec![0u8; 64 << 10];
    put(&mut h, 0, b"COWD");
    put(&mut h, 4, &1u32.to_le_bytes());
    put(&mut h, 8, &3u32.to_le_bytes());
    put(&mut h, 12, &20480u32.to_le_bytes());
    put(&mut h, 16, &512u32.to_le_bytes());
    put(&mut h, 20, &4u32.to_le_bytes());
    let p = probed(h);
    assert_eq!(p.primary().format, Format::Vmdk);
    assert_eq!(p.primary().virtual_size, Some(20480 * 512));
    assert_eq!(p.primary().details["create-type"], "vmfsSparse");
}

#[test]
fn luks2_payload_offset_comes_from_its_json() {
    let mut h = vec![0u8; 16 << 20];
    put(&mut h, 0, b"LUKS\xba\xbe\x00\x02");
    put(&mut h, 8, &(16384u64).to_be_bytes());
    put(&mut h, 24, b"rootfs");
    put(&mut h, 168, b"0b7e5c1e-8d1b-4c4e-9f1a-1d2e3f405162");
    let json = br#"{"keyslots":{"0":{"type":"luks2"}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","encryption":"aes-xts-plain64","sector_size":512}},"digests":{},"config":{}}"#;
    put(&mut h, 4096, json);
    h.resize((16 << 20) + (8 << 20), 0);
    let p = probed(h);
    let d = p.primary();
    assert_eq!(d.format, Format::Luks);
    assert_eq!(d.details["version"], 2);
    assert_eq!(d.details["cipher"], "aes-xts-plain64");
    assert_eq!(d.details["label"], "rootfs");
    assert_eq!(d.virtual_size, Some(8 << 20));
}
