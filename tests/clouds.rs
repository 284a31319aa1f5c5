//! `vmdisk info`'s cloud verdicts and glance record, on images made at test time: for each
//! rule an image the cloud accepts and one it refuses, the glance values, and the hashes
//! against md5sum / sha512sum.

mod common;
#[path = "clouds/guest.rs"]
mod guest;
#[path = "clouds/limits.rs"]
mod limits;

use common::*;
use serde_json::Value;
use std::path::Path;

/// The verdict of `target` on `file`: (accepted, reason codes).
fn verdict(dir: &Path, file: &str, target: &str) -> (bool, Vec<String>) {
    let info = json(&vmdisk(&["info", "--json", "--target", target, file], dir));
    let clouds = info["clouds"].as_array().expect("clouds");
    assert_eq!(clouds.len(), 1, "--target limits the section: {clouds:?}");
    let v = &clouds[0];
    assert_eq!(v["target"], target);
    let reasons = v["reasons"].as_array().unwrap();
    for r in reasons {
        for k in ["code", "message", "fix"] {
            assert!(r[k].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        }
    }
    let codes = reasons
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect();
    (v["accepted"].as_bool().unwrap(), codes)
}

fn accepted(dir: &Path, file: &str, target: &str) {
    let (ok, codes) = verdict(dir, file, target);
    assert!(
        ok && codes.is_empty(),
        "{target} should accept {file}: {codes:?}"
    );
}

fn refused(dir: &Path, file: &str, target: &str, code: &str) {
    let (ok, codes) = verdict(dir, file, target);
    assert!(!ok, "{target} should refuse {file}");
    assert!(
        codes.iter().any(|c| c == code),
        "{target} on {file}: {codes:?}, wanted {code}"
    );
}

/// A raw disk with a protective MBR whose GPT entry starts at `lba` (glance wants 1).
fn gpt_disk(dir: &Path, name: &str, lba: u32) {
    let mut d = vec![0u8; 1 << 20];
    let sectors = (d.len() / 512 - 1) as u32;
    put(&mut d, 446, &[0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff]);
    put(&mut d, 454, &lba.to_le_bytes());
    put(&mut d, 458, &sectors.to_le_bytes());
    put(&mut d, 510, &[0x55, 0xaa]);
    put(&mut d, 512, b"EFI PART");
    write(dir, name, &d);
}

#[test]
fn openstack_rules() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 base.qcow2 64M", dir);
    qemu_img_line("create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2", dir);
    qemu_img_line(
        "create -q -f qcow2 -o data_file=data.bin ext.qcow2 64M",
        dir,
    );
    qemu_img_line("create -q -f qcow2 -o extended_l2=on l2.qcow2 64M", dir);
    qemu_img_line("create -q -f qed q.qed 64M", dir);
    qemu_img_line(
        "create -q -f vmdk -o subformat=monolithicSparse sparse.vmdk 64M",
        dir,
    );
    qemu_img_line(
        "create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 64M",
        dir,
    );
    accepted(dir, "base.qcow2", "openstack");
    refused(dir, "over.qcow2", "openstack", "backing-file");
    refused(dir, "ext.qcow2", "openstack", "data-file");
    refused(dir, "l2.qcow2", "openstack", "unknown-qcow2-feature");
    refused(dir, "q.qed", "openstack", "qed-banned");
    accepted(dir, "sparse.vmdk", "openstack");
    refused(dir, "flat.vmdk", "openstack", "vmdk-subformat");
    gpt_disk(dir, "gpt.raw", 1);
    gpt_disk(dir, "gpt-bad.raw", 2);
    accepted(dir, "gpt.raw", "openstack");
    refused(dir, "gpt-bad.raw", "openstack", "unsafe-partition-table");
    // The fix names the command vmdisk runs.
    let info = json(&vmdisk(
        &["info", "--json", "--target", "openstack", "q.qed"],
        dir,
    ));
    let fix = info["clouds"][0]["reasons"][0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("vmdisk convert -O qcow2 -o q.qcow2 q.qed"),
        "{fix}"
    );
}

#[test]
fn aws_rules() {
    let dir = &scratch();
    // The boot disk needs a partition table: these carry a GPT's first sectors.
    gpt_disk(dir, "gpt.raw", 1);
    qemu_img_line(
        "convert -f raw -O vmdk -o subformat=streamOptimized gpt.raw so.vmdk",
        dir,
    );
    qemu_img_line(
        "create -q -f vmdk -o subformat=monolithicSparse sparse.vmdk 64M",
        dir,
    );
    qemu_img_line("create -q -f qcow2 disk.qcow2 64M", dir);
    qemu_img_line("convert -f raw -O vpc gpt.raw d.vhd", dir);
    accepted(dir, "so.vmdk", "aws");
    accepted(dir, "d.vhd", "aws");
    refused(dir, "sparse.vmdk", "aws", "vmdk-subformat");
    refused(dir, "disk.qcow2", "aws", "format-not-accepted");
    ova(dir, "so.ova", "so.vmdk");
    accepted(dir, "so.ova", "aws");
    ova(dir, "sparse.ova", "sparse.vmdk");
    refused(dir, "sparse.ova", "aws", "vmdk-subformat");
    // Raw: a partition table is needed; a bare filesystem is refused.
    accepted(dir, "gpt.raw", "aws");
    write(dir, "fs.img", &vec![0u8; 8 << 20]);
    ok("mkfs.ext4", &["-q", "-F", "fs.img"], dir);
    refused(dir, "fs.img", "aws", "no-partition-table");
    let info = json(&vmdisk(
        &["info", "--json", "--target", "aws", "disk.qcow2"],
        dir,
    ));
    let fix = info["clouds"][0]["reasons"][0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("vmdisk convert -O raw -o disk.raw disk.qcow2"),
        "{fix}"
    );
    // The same conversion as data, for hosts that offer to run it.
    assert_eq!(
        info["clouds"][0]["reasons"][0]["convert"],
        serde_json::json!({"format": "raw", "disk": null, "output": "disk.raw", "first-step": false})
    );
    // A fix that names no conversion carries none.
    let info = json(&vmdisk(
        &["info", "--json", "--target", "aws", "fs.img"],
        dir,
    ));
    let why = &info["clouds"][0]["reasons"][0];
    assert_eq!(why["code"], "no-partition-table");
    assert!(why.get("convert").is_none(), "{why}");
    // An OVA's disk: its index in the report's disks (the fix's --disk counts from 1).
    let info = json(&vmdisk(
        &["info", "--json", "--target", "aws", "sparse.ova"],
        dir,
    ));
    let why = &info["clouds"][0]["reasons"][0];
    assert!(
        why["fix"]
            .as_str()
            .unwrap()
            .contains("vmdisk convert -O raw --disk 1 -o sparse.raw sparse.ova"),
        "{why}"
    );
    assert_eq!(
        why["convert"],
        serde_json::json!({"format": "raw", "disk": 0, "output": "sparse.raw", "first-step": false})
    );
}

#[test]
fn azure_rules() {
    let dir = &scratch();
    qemu_img_line(
        "create -q -f vpc -o subformat=fixed,force_size fixed.vhd 64M",
        dir,
    );
    qemu_img_line(
        "create -q -f vpc -o subformat=dynamic,force_size dyn.vhd 64M",
        dir,
    );
    qemu_img_line(
        "create -q -f vpc -o subformat=fixed,force_size odd.vhd 65000K",
        dir,
    );
    qemu_img_line("create -q -f vhdx x.vhdx 64M", dir);
    accepted(dir, "fixed.vhd", "azure");
    refused(dir, "dyn.vhd", "azure", "vhd-not-fixed");
    refused(dir, "odd.vhd", "azure", "size-not-whole-mib");
    refused(dir, "x.vhdx", "azure", "vhdx-not-supported");
    let (_, codes) = verdict(dir, "dyn.vhd", "azure");
    assert_eq!(codes, ["vhd-not-fixed"], "a whole-MiB size is no reason");
    let info = json(&vmdisk(
        &["info", "--json", "--target", "azure", "x.vhdx"],
        dir,
    ));
    let fix = info["clouds"][0]["reasons"][0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("vmdisk cannot write VHD") && fix.contains("subformat=fixed,force_size"),
        "{fix}"
    );
    // qemu-img reads the VHDX itself: no vmdisk conversion in that fix.
    assert!(info["clouds"][0]["reasons"][0].get("convert").is_none());
    // Growing the disk starts with a vmdisk conversion and goes on with qemu-img.
    let info = json(&vmdisk(
        &["info", "--json", "--target", "azure", "odd.vhd"],
        dir,
    ));
    let reasons = info["clouds"][0]["reasons"].as_array().unwrap();
    let grow = reasons
        .iter()
        .find(|r| r["code"] == "size-not-whole-mib")
        .unwrap();
    assert_eq!(
        grow["convert"],
        serde_json::json!({"format": "raw", "disk": null, "output": "odd.raw", "first-step": true})
    );
}

#[test]
fn gce_rules() {
    let dir = &scratch();
    gpt_disk(dir, "disk.raw", 1);
    truncate(&dir.join("disk.raw"), 1 << 30);
    ok(
        "tar",
        &["--format=oldgnu", "-Sczf", "good.tar.gz", "disk.raw"],
        dir,
    );
    truncate(&dir.join("disk.raw"), (1 << 30) + (1 << 20));
    ok(
        "tar",
        &["--format=oldgnu", "-Sczf", "odd.tar.gz", "disk.raw"],
        dir,
    );
    truncate(&dir.join("disk.raw"), 1 << 30);
    write(dir, "README", b"notes\n");
    ok(
        "tar",
        &[
            "--format=oldgnu",
            "-Sczf",
            "two.tar.gz",
            "disk.raw",
            "README",
        ],
        dir,
    );
    std::fs::rename(dir.join("disk.raw"), dir.join("root.img")).unwrap();
    ok(
        "tar",
        &["--format=oldgnu", "-Sczf", "named.tar.gz", "root.img"],
        dir,
    );
    accepted(dir, "good.tar.gz", "gce");
    refused(dir, "odd.tar.gz", "gce", "size-not-whole-gib");
    refused(dir, "two.tar.gz", "gce", "not-one-member");
    refused(dir, "named.tar.gz", "gce", "not-a-gce-tarball");
    refused(dir, "root.img", "gce", "not-a-gce-tarball");
}

#[test]
fn all_four_targets_by_default_and_one_text_line_each() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 disk.qcow2 64M", dir);
    let info = info_json(&["disk.qcow2"], dir);
    let targets: Vec<_> = info["clouds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["target"].clone())
        .collect();
    assert_eq!(targets, ["openstack", "aws", "azure", "gce"]);
    let two = json(&vmdisk(
        &[
            "info",
            "--json",
            "--target",
            "gce",
            "--target",
            "aws",
            "disk.qcow2",
        ],
        dir,
    ));
    let targets: Vec<_> = two["clouds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["target"].clone())
        .collect();
    assert_eq!(
        targets,
        ["aws", "gce"],
        "--target repeats, in the report's order"
    );
    let text = vmdisk(&["info", "disk.qcow2"], dir);
    assert!(
        text.contains(
            "\n    openstack: accepted (declare disk_format=qcow2, container_format=bare)\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n    azure: refused: "), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("    gce: ")).count(),
        1
    );
}

/// An OVA of one disk: a minimal OVF 1.0 descriptor first, then the disk.
fn ova(dir: &Path, name: &str, disk: &str) {
    ova_of(dir, name, &[disk]);
}

/// An OVA of `disks`, in that order, each a `Disk` of the one DiskSection.
fn ova_of(dir: &Path, name: &str, disks: &[&str]) {
    let (mut files, mut sections) = (String::new(), String::new());
    for (i, disk) in disks.iter().enumerate() {
        let cap = qemu_info(disk, dir)["virtual-size"].as_u64().unwrap();
        files += &format!(r#"<File ovf:id="file{i}" ovf:href="{disk}"/>"#);
        sections += &format!(
            r#"<Disk ovf:diskId="vmdisk{i}" ovf:fileRef="file{i}" ovf:capacity="{cap}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>"#
        );
    }
    let ovf = format!(
        r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>{files}</References>
  <DiskSection><Info>disks</Info>{sections}</DiskSection>
  <VirtualSystem ovf:id="vm"><Info>a VM</Info></VirtualSystem>
</Envelope>
"#
    );
    write(dir, "app.ovf", ovf.as_bytes());
    let mut args = vec!["-cf", name, "app.ovf"];
    args.extend(disks);
    ok("tar", &args, dir);
}

fn glance(dir: &Path, file: &str) -> Value {
    info_json(&[file], dir)["glance"].clone()
}

#[test]
fn glance_record() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 disk.qcow2 1537M", dir);
    let g = glance(dir, "disk.qcow2");
    let size = std::fs::metadata(dir.join("disk.qcow2")).unwrap().len();
    assert_eq!(g["disk_format"], "qcow2");
    assert_eq!(g["container_format"], "bare");
    assert_eq!(g["size"], size);
    assert_eq!(g["virtual_size"], 1537u64 << 20);
    assert_eq!(g["min_disk"], 2, "1.5 GiB rounds up to 2");
    assert!(g.get("checksum").is_none(), "hashes only with --hash");
    qemu_img_line(
        "create -q -f vmdk -o subformat=streamOptimized d.vmdk 1G",
        dir,
    );
    let g = glance(dir, "d.vmdk");
    assert_eq!(
        (g["disk_format"].as_str(), g["min_disk"].as_u64()),
        (Some("vmdk"), Some(1))
    );
    qemu_img_line("create -q -f qed q.qed 64M", dir);
    assert!(
        glance(dir, "q.qed").is_null(),
        "glance has no disk_format for QED"
    );
    // An OVA: container ova, the disk's format, the package's size.
    ova(dir, "app.ova", "d.vmdk");
    let g = glance(dir, "app.ova");
    assert_eq!(
        (g["disk_format"].as_str(), g["container_format"].as_str()),
        (Some("vmdk"), Some("ova"))
    );
    assert_eq!(
        g["size"],
        std::fs::metadata(dir.join("app.ova")).unwrap().len()
    );
}

#[test]
fn hashes_match_md5sum_and_sha512sum() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 disk.qcow2 64M", dir);
    qemu_io(
        "disk.qcow2",
        &["write -P 0x5a 0 5M", "write -P 0x11 40M 3M"],
        dir,
    );
    qemu_img_line(
        "create -q -f vmdk -o subformat=streamOptimized d.vmdk 8M",
        dir,
    );
    ova(dir, "app.ova", "d.vmdk");
    for file in ["disk.qcow2", "app.ova"] {
        let g = json(&vmdisk(&["info", "--json", "--hash", file], dir))["glance"].clone();
        let md5 = ok("md5sum", &[file], dir);
        let sha = ok("sha512sum", &[file], dir);
        assert_eq!(
            g["checksum"].as_str(),
            md5.split_whitespace().next(),
            "{file}"
        );
        assert_eq!(g["os_hash_algo"], "sha512");
        assert_eq!(
            g["os_hash_value"].as_str(),
            sha.split_whitespace().next(),
            "{file}"
        );
    }
}

#[test]
fn a_damaged_image_is_refused_by_every_target() {
    let d = &scratch();
    written_image(
        d,
        "qcow2",
        "whole.qcow2",
        "1G",
        &["write -P 1 0 8M", "write -P 2 600M 8M"],
    );
    let whole = std::fs::read(d.join("whole.qcow2")).unwrap();
    write(d, "half.qcow2", &whole[..whole.len() / 2]);
    for target in ["openstack", "aws", "azure", "gce"] {
        refused(d, "half.qcow2", target, "damaged");
        let (_, codes) = verdict(d, "whole.qcow2", target);
        assert!(!codes.iter().any(|c| c == "damaged"), "{target}: {codes:?}");
    }
    accepted(d, "whole.qcow2", "openstack");
}
