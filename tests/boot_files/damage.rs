//! Damaged initramfs and kernel headers, random mutations that must never panic, boot files that
//! are not disks.

use super::*;
use crate::initramfs::{early_cpio, main_cpio};

#[test]
fn damaged_initramfs() {
    let dir = &scratch();
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

/// `vmdisk info --json FILE` gives a JSON report or a one-line error, never a panic (`case`
/// names the input in a failure).
fn assert_report_or_one_line_error(dir: &Path, file: &str, case: &str) {
    let out = run(vmdisk_bin(), &["info", "--json", file], dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{case}: {err}");
    if out.status.success() {
        json(&String::from_utf8_lossy(&out.stdout));
    } else {
        assert_eq!(err.trim_end().lines().count(), 1, "{case}: {err}");
    }
}

#[test]
fn damaged_kernel_headers() {
    let dir = &scratch();
    // Every kernel cut short of its header: a report (maybe raw), never a panic.
    let arm64 = arm64_image(8192, 0x80_0000, 0b1010, true);
    let gzip_zboot = zboot(8192, "gzip", 0xaa64, &[0x1f, 0x8b, 8, 0], 4096);
    let kernels: [&[u8]; 5] = [
        &arm64,
        &gzip_zboot,
        &arm_zimage(8192, 0, 8192, false, true),
        &riscv_image(8192, true),
        &bzimage(8192),
    ];
    for (i, k) in kernels.iter().enumerate() {
        for cut in [
            1, 2, 0x27, 0x28, 0x2c, 0x30, 0x3c, 0x40, 0x44, 0x46, 0x200, 0x210, 0x250,
        ] {
            write(dir, "k", &k[..cut]);
            assert_report_or_one_line_error(dir, "k", &format!("kernel {i} cut at {cut:#x}"));
        }
    }
    // A zboot header cut before its PE header.
    let info = info_of(dir, "z", &gzip_zboot[..0x30]);
    assert_eq!(info["format"], "aki", "{info}");
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    // Garbage after the magic: offsets pointing anywhere.
    let mut z = gzip_zboot.clone();
    put(&mut z, 8, &u32::MAX.to_le_bytes());
    put(&mut z, 12, &u32::MAX.to_le_bytes());
    put(&mut z, 24, &[0xff; 32]);
    put(&mut z, 0x3c, &u32::MAX.to_le_bytes());
    let info = info_of(dir, "z2", &z);
    assert_eq!(info["format"], "aki");
    assert_eq!(info["format-specific"]["efi-stub"], false);
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    let mut a = arm64.clone();
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
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
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
    let dir = &scratch();
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
            assert_report_or_one_line_error(dir, &name, &name);
        }
    }
}

#[test]
fn boot_files_are_not_disks() {
    let dir = &scratch();
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
    let err = vmdisk_fails_line("convert -O raw --output x.raw initrd", dir);
    assert!(err.contains("ramdisk (ARI), not a disk"), "{err}");
}
