//! Format detection from content: every format vmdisk names, checked against `qemu-img info`
//! where qemu knows the format, and byte-level cases (polyglots, truncation, hand-built
//! superblocks and partition tables) through `vmdisk::probe::probe` directly.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use vmdisk::probe::{Format, Probe, probe};
use vmdisk::source::MemSource;

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
        .map(|f| f.code)
        .collect()
}

fn codes(info: &Value) -> Vec<String> {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn detected(info: &Value) -> Vec<String> {
    info["detected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

fn has_tool(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(path(dir, name)).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(path(dir, name), data).unwrap();
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
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

/// One newc cpio member.
fn newc(name: &str, data: &[u8]) -> Vec<u8> {
    let fields = [
        1,
        0o100644,
        0,
        0,
        1,
        0,
        data.len(),
        0,
        0,
        0,
        0,
        name.len() + 1,
        0,
    ];
    let mut v = b"070701".to_vec();
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

/// A small initramfs: a few members and the trailer.
fn cpio_archive() -> Vec<u8> {
    let mut a = newc("init", b"#!/bin/sh\nexec /sbin/init\n");
    a.extend(newc("etc/fstab", b"/dev/vda1 / ext4 defaults 0 1\n"));
    a.extend(newc("TRAILER!!!", b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

/// The start of an x86 bzImage: boot sector, setup header (`HdrS`, protocol 2.15) and the
/// kernel version string the header points at.
fn bzimage() -> Vec<u8> {
    let mut k = noise(64 << 10, 7);
    k[..512].fill(0);
    put(&mut k, 0, b"MZ");
    k[0x1f1] = 3;
    put(
        &mut k,
        0x1f4,
        &(((64u32 << 10) - 4 * 512) / 16).to_le_bytes(),
    );
    put(&mut k, 0x1fe, &[0x55, 0xaa]);
    put(&mut k, 0x200, &[0xeb, 0x6a]);
    put(&mut k, 0x202, b"HdrS");
    put(&mut k, 0x206, &0x020fu16.to_le_bytes());
    put(&mut k, 0x20e, &0x0200u16.to_le_bytes());
    k[0x211] = 1;
    put(&mut k, 0x236, &1u16.to_le_bytes());
    put(
        &mut k,
        0x400,
        b"6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP\0",
    );
    k
}

/// Run a shell pipeline in `dir` (for gzip/xz/zstd/lz4/tar).
fn sh(dir: &Path, script: &str) {
    ok("sh", &["-c", script], dir);
}

fn qemu_create(dir: &Path, fmt: &str, opts: &[&str], file: &str, size: &str) {
    if fmt == "luks" {
        // qemu spends seconds timing PBKDF2 for each LUKS image: make one, share its bytes.
        write(dir, file, luks_image());
        return;
    }
    let mut args = vec!["create", "-q", "-f", fmt];
    args.extend(opts);
    args.extend([file, size]);
    qemu_img(&args, dir);
}

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
    let d = tmp();
    let dir = d.path();
    // (qemu format, create options, file, our name)
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        ("qcow2", vec![], "a.qcow2", "qcow2"),
        ("qcow2", vec!["-o", "compat=0.10"], "v2.qcow2", "qcow2"),
        ("qcow", vec![], "a.qcow", "qcow"),
        ("qed", vec![], "a.qed", "qed"),
        ("vdi", vec![], "dyn.vdi", "vdi"),
        ("vdi", vec!["-o", "static=on"], "static.vdi", "vdi"),
        ("vpc", vec!["-o", "subformat=dynamic"], "dyn.vhd", "vhd"),
        ("vhdx", vec![], "a.vhdx", "vhdx"),
        ("parallels", vec![], "a.hdd", "parallels"),
        ("luks", vec![], "a.luks", "luks"),
        (
            "vmdk",
            vec!["-o", "subformat=monolithicSparse"],
            "ms.vmdk",
            "vmdk",
        ),
        (
            "vmdk",
            vec!["-o", "subformat=streamOptimized"],
            "so.vmdk",
            "vmdk",
        ),
        (
            "vmdk",
            vec!["-o", "subformat=monolithicFlat"],
            "mf.vmdk",
            "vmdk",
        ),
        (
            "vmdk",
            vec!["-o", "subformat=twoGbMaxExtentSparse"],
            "tg.vmdk",
            "vmdk",
        ),
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
    let d = tmp();
    let dir = d.path();
    qemu_create(dir, "vpc", &["-o", "subformat=fixed"], "f.vhd", "17M");
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
    let d = tmp();
    let dir = d.path();
    qemu_create(dir, "vpc", &["-o", "subformat=dynamic"], "d.vhd", "8M");
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
    let d = tmp();
    let dir = d.path();
    qemu_create(
        dir,
        "vmdk",
        &["-o", "subformat=monolithicFlat"],
        "mf.vmdk",
        "4M",
    );
    let info = info_json(&["mf-flat.vmdk"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], 4 * MIB);
    qemu_create(
        dir,
        "vmdk",
        &["-o", "subformat=twoGbMaxExtentSparse"],
        "tg.vmdk",
        "4M",
    );
    let info = info_json(&["tg-s001.vmdk"], dir);
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["format-specific"]["embedded-descriptor"], false);
}

#[test]
fn vmdk_descriptor_extent_paths_are_unsafe() {
    let d = tmp();
    let dir = d.path();
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

// ---- truncated headers ----------------------------------------------------------------------

#[test]
fn truncated_headers_still_name_the_format() {
    let d = tmp();
    let dir = d.path();
    let made: Vec<(&str, Vec<&str>, &str, Format)> = vec![
        ("qcow2", vec![], "a.qcow2", Format::Qcow2),
        ("qcow", vec![], "a.qcow", Format::Qcow),
        ("qed", vec![], "a.qed", Format::Qed),
        ("vmdk", vec![], "a.vmdk", Format::Vmdk),
        ("vpc", vec![], "a.vhd", Format::Vhd),
        ("vhdx", vec![], "a.vhdx", Format::Vhdx),
        ("parallels", vec![], "a.hdd", Format::Parallels),
        ("luks", vec![], "a.luks", Format::Luks),
        ("vdi", vec![], "a.vdi", Format::Vdi),
    ];
    for (fmt, opts, file, format) in made {
        qemu_create(dir, fmt, &opts, file, "4M");
        let full = read(dir, file);
        // Cut inside the first header: the magic is there, the rest is not.
        let first_cut = match format {
            Format::Vdi => 0x50,     // magic at 0x40
            Format::Parallels => 20, // 16-byte magic
            _ => 8,
        };
        for cut in [first_cut, 24, 40] {
            let cut = cut.max(first_cut);
            let p = probed(full[..cut].to_vec());
            assert_eq!(p.primary().format, format, "{file} cut at {cut}");
            assert!(
                probe_codes(&p).contains(&"truncated"),
                "{file} cut at {cut}: {:?}",
                probe_codes(&p)
            );
        }
        // Any other cut: never a panic.
        for cut in [
            1, 3, 5, 100, 300, 511, 513, 1000, 4096, 65536, 70000, 200000, 300000,
        ] {
            if cut < full.len() {
                let _ = probe_bytes(full[..cut].to_vec());
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    for seed in 0..64 {
        let mut b = noise(4096 + seed as usize * 997, seed);
        // Plant magics on random data: the detectors must cope with the nonsense around them.
        let magics: [(&[u8], usize); 12] = [
            (b"QFI\xfb", 0),
            (b"KDMV", 0),
            (b"COWD\x01\0\0\0", 0),
            (b"vhdxfile", 0),
            (b"conectix", 0),
            (b"WithoutFreeSpace", 0),
            (b"LUKS\xba\xbe\0\x02", 0),
            (b"QED\0", 0),
            (b"\x1f\x8b\x08\0", 0),
            (b"070701", 0),
            (b"\xfd7zXZ\0", 0),
            (b"\x28\xb5\x2f\xfd", 0),
        ];
        let (m, at) = magics[seed as usize % magics.len()];
        put(&mut b, at, m);
        if seed % 3 == 0 {
            put(&mut b, 510, &[0x55, 0xaa]);
            put(&mut b, 512, b"EFI PART");
        }
        let _ = probe_bytes(b);
    }
}

// ---- polyglots ------------------------------------------------------------------------------

#[test]
fn iso_with_a_qcow2_header_is_a_polyglot() {
    let d = tmp();
    let dir = d.path();
    qemu_create(dir, "qcow2", &[], "poly.qcow2", "16M");
    // The qcow2 header cluster (64 KiB) is empty past the header: plant an ISO 9660 PVD there.
    let iso = iso(64);
    write_at(&path(dir, "poly.qcow2"), 0x8000, &iso[0x8000..0x9000]);
    assert_eq!(qemu_info("poly.qcow2", dir)["format"], "qcow2");
    let info = info_json(&["poly.qcow2"], dir);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(detected(&info), vec!["qcow2", "iso"]);
    assert!(codes(&info).contains(&"format-mismatch".into()), "{info}");
    assert_eq!(info["safety"]["safe"], false);
}

#[test]
fn vhd_footer_after_a_qcow2_is_a_polyglot() {
    let d = tmp();
    let dir = d.path();
    qemu_create(dir, "qcow2", &[], "a.qcow2", "16M");
    let mut b = read(dir, "a.qcow2");
    let len = b.len() as u64;
    b.extend_from_slice(&vhd_footer(len, 2, u64::MAX));
    let p = probed(b);
    let formats: Vec<Format> = p.matches.iter().map(|m| m.format).collect();
    assert_eq!(formats, vec![Format::Qcow2, Format::Vhd]);
    assert!(p.findings.iter().any(|f| f.code == "format-mismatch"));
    assert!(p.findings[0].message.contains("qcow2") && p.findings[0].message.contains("vhd"));
}

#[test]
fn hybrid_iso_is_one_iso() {
    let d = tmp();
    let dir = d.path();
    let mut v = iso(2048);
    // An isohybrid-style MBR: one bootable partition covering the image.
    put(&mut v, 446, &[0x80, 0, 1, 0, 0x17, 0xfe, 0xff, 0xff]);
    put(&mut v, 454, &0u32.to_le_bytes());
    put(&mut v, 458, &(2048u32 * 4).to_le_bytes());
    put(&mut v, 510, &[0x55, 0xaa]);
    write(dir, "hybrid.iso", &v);
    let info = info_json(&["hybrid.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert_eq!(detected(&info), vec!["iso"]);
    assert_eq!(info["virtual-size"], v.len());
    assert!(info["safety"]["safe"].as_bool().unwrap(), "{info}");
    assert!(!codes(&info).contains(&"format-mismatch".into()));
    let fs = &info["format-specific"];
    assert_eq!(fs["volume-id"], "TEST_VOLUME");
    assert_eq!(fs["hybrid"]["partition-table"], "mbr");
    assert_eq!(fs["hybrid"]["partitions"][0]["type"], "0x17");

    // A plain ISO, and one cut short of its volume size.
    write(dir, "plain.iso", &iso(64));
    let info = info_json(&["plain.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert_eq!(info["format-specific"]["filesystem"], "iso9660");
    let p = probed(iso(64)[..0x8010].to_vec());
    assert_eq!(p.primary().format, Format::Iso);
    assert!(probe_codes(&p).contains(&"truncated"));
    write(dir, "short.iso", &iso(64)[..40 * 2048]);
    let info = info_json(&["short.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert!(codes(&info).contains(&"truncated".into()));
}

#[test]
fn udf_and_iso_inside_a_fixed_vhd() {
    // UDF only: the volume recognition sequence BEA01, NSR03, TEA01.
    let mut u = vec![0u8; 128 << 10];
    for (i, id) in [b"BEA01", b"NSR03", b"TEA01"].iter().enumerate() {
        put(&mut u, 0x8000 + i * 2048, &[0]);
        put(&mut u, 0x8001 + i * 2048, *id);
        put(&mut u, 0x8006 + i * 2048, &[1]);
    }
    let p = probed(u);
    assert_eq!(p.primary().format, Format::Iso);
    assert_eq!(p.primary().details["filesystem"], "udf");

    // An ISO stored in a fixed VHD is the disk's content, not a second container.
    let mut v = iso(64);
    let n = v.len() as u64;
    v.extend_from_slice(&vhd_footer(n, 2, u64::MAX));
    let p = probed(v);
    assert_eq!(p.primary().format, Format::Vhd);
    assert_eq!(p.primary().virtual_size, Some(n));
    assert!(p.findings.is_empty(), "{:?}", p.findings);
    assert_eq!(p.matches[1].format, Format::Iso);
}

// ---- bare filesystems (AMI) and raw content -------------------------------------------------

#[test]
fn bare_ext4_is_an_ami() {
    let d = tmp();
    let dir = d.path();
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
    let d = p.primary();
    assert_eq!(d.format, Format::Ami);
    assert_eq!(d.details["filesystem"], "xfs");
    assert_eq!(d.details["label"], "root");
    assert_eq!(d.details["fs-size"], 64 * MIB);
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
    let d = p.primary();
    assert_eq!(d.format, Format::Ami);
    assert_eq!(d.details["filesystem"], "btrfs");
    assert_eq!(d.details["label"], "fedora");
    assert_eq!(d.details["uuid"], "cdcdcdcd-cdcd-cdcd-cdcd-cdcdcdcdcdcd");
    assert!(!probe_codes(&p).contains(&"truncated"));
    assert!(probe_codes(&p).contains(&"bare-filesystem"));
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
    let d = tmp();
    let dir = d.path();
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
    let d = p.primary();
    assert_eq!(d.format, Format::Raw);
    assert_eq!(d.details["filesystem"], "fat32");
    assert_eq!(d.details["label"], "BOOT");
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
    let d = tmp();
    let dir = d.path();
    write(dir, "odd.raw", &noise(1000, 5));
    let info = info_json(&["odd.raw"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], 1000);
    assert!(codes(&info).contains(&"unaligned-size".into()));
    assert!(info["safety"]["safe"].as_bool().unwrap());
    write(dir, "even.raw", &noise(1024, 5));
    assert!(codes(&info_json(&["even.raw"], dir)).is_empty());
}

// ---- archives, kernels, initrds -------------------------------------------------------------

#[test]
fn kernel_is_an_aki() {
    let d = tmp();
    let dir = d.path();
    write(dir, "vmlinuz", &bzimage());
    let info = info_json(&["vmlinuz"], dir);
    assert_eq!(info["format"], "aki", "{info}");
    assert_eq!(detected(&info), vec!["aki"]);
    let fs = &info["format-specific"];
    assert_eq!(fs["boot-protocol"], "2.15");
    assert_eq!(fs["image"], "bzImage");
    assert!(
        fs["kernel-version"]
            .as_str()
            .unwrap()
            .starts_with("6.1.0-13-amd64")
    );
    assert!(!codes(&info).contains(&"truncated".into()));
    // Cut: the header describes more than the file holds.
    write(dir, "short", &bzimage()[..8192]);
    let info = info_json(&["short"], dir);
    assert_eq!(info["format"], "aki");
    assert!(codes(&info).contains(&"truncated".into()));
}

#[test]
fn initrds_plain_and_compressed_are_aris() {
    let d = tmp();
    let dir = d.path();
    // Early microcode, then the gzip-compressed main archive: what distributions ship.
    let mut early = newc("kernel/x86/microcode/GenuineIntel.bin", &noise(3000, 9));
    early.extend(newc("TRAILER!!!", b""));
    early.resize(early.len().next_multiple_of(512), 0);
    write(dir, "early.cpio", &early);
    write(dir, "initrd.cpio", &cpio_archive());
    sh(
        dir,
        "gzip -c initrd.cpio > main.gz && cat early.cpio main.gz > initrd.img",
    );
    let info = info_json(&["initrd.img"], dir);
    assert_eq!(info["format"], "ari", "{info}");
    assert_eq!(info["format-specific"]["followed-by"], "gzip");
    assert_eq!(
        info["format-specific"]["members"][0]["name"],
        "kernel/x86/microcode/GenuineIntel.bin"
    );

    let info = info_json(&["initrd.cpio"], dir);
    assert_eq!(info["format"], "ari");
    assert_eq!(info["format-specific"]["archive"], "cpio (newc)");

    let info = info_json(&["main.gz"], dir);
    assert_eq!(info["format"], "ari");
    assert_eq!(info["format-specific"]["compression"], "gzip");
    assert_eq!(info["format-specific"]["members"][1]["name"], "etc/fstab");

    // zstd and xz are looked into; legacy lz4 is taken on its framing.
    sh(dir, "zstd -q -19 -c initrd.cpio > initrd.zst");
    sh(dir, "xz -q --check=crc32 -c initrd.cpio > initrd.xz");
    for (file, codec) in [("initrd.zst", "zstd"), ("initrd.xz", "xz")] {
        let info = info_json(&[file], dir);
        assert_eq!(info["format"], "ari", "{info}");
        assert_eq!(info["format-specific"]["compression"], codec);
        assert_eq!(info["format-specific"]["members"][1]["name"], "etc/fstab");
        assert!(!codes(&info).contains(&"unverified-content".into()));
        assert_eq!(info["convertible"], false, "a ramdisk is not a disk");
    }
    sh(dir, "lz4 -q -l -c initrd.cpio > initrd.lz4");
    let info = info_json(&["initrd.lz4"], dir);
    assert_eq!(info["format"], "ari");
    assert!(codes(&info).contains(&"unverified-content".into()));
}

#[test]
fn empty_file_is_a_one_line_error() {
    let d = tmp();
    write(d.path(), "empty.img", b"");
    let err = vmdisk_fails(&["info", "empty.img"], d.path());
    assert!(err.contains("empty"), "{err}");
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
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

/// Random damage to the headers of real images: detection may say anything, but never panics
/// (tests build with overflow checks on, so unchecked header arithmetic would show here).
#[test]
fn damaged_headers_never_panic() {
    let d = tmp();
    let dir = d.path();
    let made: Vec<(&str, Vec<&str>, &str)> = vec![
        ("qcow2", vec![], "a.qcow2"),
        ("qcow", vec![], "a.qcow"),
        ("qed", vec![], "a.qed"),
        ("vmdk", vec![], "a.vmdk"),
        ("vpc", vec![], "a.vhd"),
        ("vhdx", vec![], "a.vhdx"),
        ("parallels", vec![], "a.hdd"),
        ("luks", vec![], "a.luks"),
        ("vdi", vec![], "a.vdi"),
    ];
    for (i, (fmt, opts, file)) in made.into_iter().enumerate() {
        qemu_create(dir, fmt, &opts, file, "4M");
        let full = read(dir, file);
        let r = noise(50 * 64, i as u64 + 100);
        for round in 0..50 {
            let mut b = full.clone();
            let n = b.len();
            let r = &r[round * 64..(round + 1) * 64];
            for k in 0..16 {
                // Damage near the start (headers) or at the end (footers).
                let at = usize::from(u16::from_le_bytes([r[k * 2], r[k * 2 + 1]])) % 1024;
                let at = if k % 4 == 3 {
                    n - 1 - at.min(n - 1)
                } else {
                    at.min(n - 1)
                };
                b[at] = if r[32 + k] & 1 == 0 { 0xff } else { r[48 + k] };
            }
            let _ = probe_bytes(b);
        }
    }
}
