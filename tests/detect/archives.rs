//! Archives, kernels and initrds (AKI, ARI); an empty file; damaged headers never panic.

use super::*;

#[test]
fn kernel_is_an_aki() {
    let dir = &scratch();
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
    let dir = &scratch();
    // Early microcode, then the gzip-compressed main archive: what distributions ship.
    let mut early = newc_file("kernel/x86/microcode/GenuineIntel.bin", &noise(3000, 9));
    early.extend(newc_file("TRAILER!!!", b""));
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

/// Random damage to the headers of real images: detection may say anything, but never panics
/// (tests build with overflow checks on, so unchecked header arithmetic would show here).
#[test]
fn damaged_headers_never_panic() {
    let dir = &scratch();
    for (i, (fmt, file, _)) in QEMU_MADE.into_iter().enumerate() {
        qemu_create(dir, fmt, "", file, "4M");
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
