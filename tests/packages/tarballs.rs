//! UEC and GCE tarballs, images compressed with every codec, archives without a disk, a gzip bomb.

use super::*;

/// A hand-built x86 bzImage header (boot protocol 2.15): enough for detection.
fn bzimage() -> Vec<u8> {
    let mut k = vec![0u8; 64 << 10];
    k[0x1f1] = 4;
    k[0x1fe] = 0x55;
    k[0x1ff] = 0xaa;
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x211] = 1;
    k[0x1f4..0x1f8].copy_from_slice(&((60u32 << 10) / 16).to_le_bytes());
    k
}

#[test]
fn uec_tarballs_with_and_without_a_ramdisk() {
    let dir = &scratch();
    let img = "focal-server-cloudimg-amd64.img";
    ok("truncate", &["-s", "48M", img], dir);
    ok(
        "mkfs.ext4",
        &["-q", "-F", "-L", "cloudimg-rootfs", img],
        dir,
    );
    qemu_io(img, &["write -P 0x5a 20M 4M"], dir);
    std::fs::write(
        path(dir, "focal-server-cloudimg-amd64-vmlinuz-generic"),
        bzimage(),
    )
    .unwrap();
    let mut cpio = newc_file("init", b"#!/bin/sh\n");
    cpio.extend(newc_file("TRAILER!!!", b""));
    std::fs::write(path(dir, "initrd.cpio"), cpio).unwrap();
    sh(
        dir,
        "gzip -c initrd.cpio > focal-server-cloudimg-amd64-initrd-generic",
    );
    let kernel = "focal-server-cloudimg-amd64-vmlinuz-generic";
    let ramdisk = "focal-server-cloudimg-amd64-initrd-generic";
    ok("tar", &["-czf", "uec.tar.gz", kernel, ramdisk, img], dir);
    let info = info_json(&["uec.tar.gz"], dir);
    assert_eq!(info["format"], "uec", "{info}");
    assert_eq!(info["virtual-size"], 48 * MIB, "the machine image's size");
    let fs = &info["format-specific"];
    assert_eq!(
        (
            fs["image"].as_str(),
            fs["kernel"].as_str(),
            fs["ramdisk"].as_str()
        ),
        (Some(img), Some(kernel), Some(ramdisk))
    );
    let roles: Vec<(&str, &str, &str)> = each(&info["disks"], |d| {
        (
            d["name"].as_str().unwrap(),
            d["role"].as_str().unwrap(),
            d["format"].as_str().unwrap(),
        )
    });
    assert_eq!(
        roles,
        [
            (kernel, "aki", "aki"),
            (ramdisk, "ari", "ari"),
            (img, "ami", "ami")
        ]
    );
    let members = fs["members"].as_array().unwrap();
    assert_eq!(members[0]["glance"]["disk_format"], "aki");
    assert_eq!(members[2]["glance"]["container_format"], "ami");
    let register = fs["register"].as_array().unwrap();
    assert!(
        register[2].as_str().unwrap().contains("kernel_id")
            && register[2].as_str().unwrap().contains("ramdisk_id"),
        "{register:?}"
    );
    assert_eq!(
        info["disks"][0]["convertible"], false,
        "a kernel is not a disk"
    );
    assert_eq!(
        info["disks"][2]["format-specific"]["label"], "cloudimg-rootfs",
        "{info}"
    );
    // convert takes the machine image; the kernel and ramdisk come out with extract.
    vmdisk_line("convert -O qcow2 --output ami.qcow2 uec.tar.gz", dir);
    assert_same(img, "ami.qcow2", dir);
    vmdisk_line(
        &format!("extract --member {kernel} --output k uec.tar.gz"),
        dir,
    );
    assert_eq!(std::fs::read(path(dir, "k")).unwrap(), bzimage());
    vmdisk_line(
        &format!("extract --member {ramdisk} --output r uec.tar.gz"),
        dir,
    );
    assert_eq!(
        std::fs::read(path(dir, "r")).unwrap(),
        std::fs::read(path(dir, ramdisk)).unwrap()
    );
    let err = vmdisk_fails_line("convert -O raw --disk 1 --output k.raw uec.tar.gz", dir);
    assert!(
        err.contains("kernel") && err.contains("not a disk"),
        "{err}"
    );

    // Without a ramdisk: still valid, and the image comes first this time.
    ok("tar", &["-czf", "noramdisk.tar.gz", img, kernel], dir);
    let info = info_json(&["noramdisk.tar.gz"], dir);
    assert_eq!(info["format"], "uec");
    assert_eq!(info["safety"]["safe"], true, "{info}");
    assert!(info["format-specific"]["ramdisk"].is_null());
    vmdisk_line("convert -O raw --output ami.raw noramdisk.tar.gz", dir);
    assert_same(img, "ami.raw", dir);
}

#[test]
fn gce_tarball_keeps_its_holes() {
    let dir = &scratch();
    disk(dir, "g", 64, 0x16);
    ok("cp", &["g.raw", "disk.raw"], dir);
    // What `gcloud compute images create` expects: tar --format=oldgnu -Sczf.
    ok(
        "tar",
        &["--format=oldgnu", "-Sczf", "image.tar.gz", "disk.raw"],
        dir,
    );
    let info = info_json(&["image.tar.gz"], dir);
    assert_eq!(info["format"], "gce", "{info}");
    assert_eq!(info["virtual-size"], 64 * MIB);
    assert_eq!(info["disks"][0]["format"], "raw");
    vmdisk_line("convert -O raw --output out.raw image.tar.gz", dir);
    assert_same("g.raw", "out.raw", dir);
    let allocated = std::fs::metadata(path(dir, "out.raw"))
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        })
        .unwrap();
    assert!(
        allocated < 16 * MIB,
        "the holes were written out: {allocated} bytes allocated"
    );
    vmdisk_line("convert -O qcow2 --output out.qcow2 image.tar.gz", dir);
    assert_same("g.raw", "out.qcow2", dir);
}

#[test]
fn compressed_images_of_every_codec() {
    let dir = &scratch();
    disk(dir, "z", 40, 0x17);
    qemu_img_line("convert -q -f raw -O qcow2 z.raw z.qcow2", dir);
    stream_vmdk(dir, "z.raw", "z.vmdk");
    sh(
        dir,
        "gzip -c z.raw > z.raw.gz && xz -T1 -c z.raw > z.raw.xz && zstd -q -c z.raw > z.raw.zst \
         && xz -T1 -c z.qcow2 > z.qcow2.xz && gzip -c z.vmdk > z.vmdk.gz && zstd -q -c z.qcow2 > z.qcow2.zst \
         && cat z.raw | zstd -q -c > z.stream.zst",
    );
    for (file, inner) in [
        ("z.raw.gz", "raw"),
        ("z.raw.xz", "raw"),
        ("z.raw.zst", "raw"),
        ("z.stream.zst", "raw"),
        ("z.qcow2.xz", "qcow2"),
        ("z.vmdk.gz", "vmdk"),
        ("z.qcow2.zst", "qcow2"),
    ] {
        let info = info_json(&[file], dir);
        assert_eq!(info["format"], "compressed", "{file}: {info}");
        assert_eq!(info["virtual-size"], 40 * MIB, "{file}");
        assert_eq!(info["disks"][0]["format"], inner, "{file}");
        assert_eq!(info["convertible"], true, "{file}");
        assert_eq!(info["safety"]["safe"], true, "{file}: {info}");
        let out = format!("{file}.qcow2");
        vmdisk(&["convert", "-O", "qcow2", "--output", &out, file], dir);
        assert_same("z.raw", &out, dir);
    }
    // A damaged stream: info reads it whole and says so; a conversion fails cleanly.
    let mut data = std::fs::read(path(dir, "z.raw.gz")).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0xff;
    std::fs::write(path(dir, "bad.raw.gz"), &data).unwrap();
    let out = run(vmdisk_bin(), &["info", "--json", "bad.raw.gz"], dir);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    fails_naming(
        dir,
        "convert -O raw --output bad.raw bad.raw.gz",
        "gzip",
        "bad.raw",
    );
}

#[test]
fn archives_that_hold_no_disk_are_refused() {
    let dir = &scratch();
    std::fs::write(path(dir, "notes.txt"), text(20_000, 3)).unwrap();
    sh(
        dir,
        "tar -czf src.tar.gz notes.txt && tar -cf plain.tar notes.txt && bzip2 -k notes.txt",
    );
    let err = vmdisk_fails(&["info", "src.tar.gz"], dir);
    assert!(
        err.contains("tar archive") && err.contains("notes.txt"),
        "{err}"
    );
    info_fails_naming(dir, &["plain.tar"], "not an OVA");
    info_fails_naming(dir, &["notes.txt.bz2"], "bzip2");
}

#[test]
fn a_gzip_bomb_stays_bounded_and_noise_members_are_skipped() {
    let dir = &scratch();
    // 256 MiB of zeros in 256 KiB of gzip, as four members (as `cat a.gz b.gz` makes, whose
    // trailer states only the last member's size): inspection decodes it to learn its size in
    // bounded memory, and a conversion keeps the zeros as holes.
    sh(
        dir,
        "truncate -s 64M zeros && gzip -1 -c zeros > z.gz && cat z.gz z.gz z.gz z.gz > bomb.raw.gz && rm zeros z.gz",
    );
    let out = ok(
        "/usr/bin/time",
        &["-f", "%M", vmdisk_bin(), "info", "--json", "bomb.raw.gz"],
        dir,
    );
    let info = json(&out);
    assert_eq!(info["virtual-size"], 256 * MIB, "{info}");
    let rss = run(
        "/usr/bin/time",
        &[
            "-f",
            "%M",
            vmdisk_bin(),
            "convert",
            "-O",
            "qcow2",
            "--output",
            "bomb.qcow2",
            "bomb.raw.gz",
        ],
        dir,
    );
    assert!(rss.status.success());
    let kib: u64 = String::from_utf8_lossy(&rss.stderr)
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        kib < 64 << 10,
        "peak RSS {kib} KiB converting a 256 MiB stream"
    );
    assert!(len(dir, "bomb.qcow2") < 4 * MIB, "zeros were written out");

    // What macOS tar and tars that did not understand pax headers leave beside the members.
    one_disk_vm(dir, "n", 0x18);
    sh(
        dir,
        "mkdir -p PaxHeader && echo x > PaxHeader/n.vmdk && echo y > ._n.vmdk && tar --format=ustar -cf noise.ova n.ovf ._n.vmdk PaxHeader/n.vmdk n.vmdk",
    );
    let info = info_json(&["noise.ova"], dir);
    let members: Vec<&str> = each(&info["format-specific"]["members"], |m| {
        m["name"].as_str().unwrap()
    });
    assert_eq!(members, ["n.ovf", "n.vmdk"], "{info}");
    assert_eq!(info["disks"][0]["format"], "vmdk");
    assert_eq!(info["safety"]["safe"], true, "{info}");
}
