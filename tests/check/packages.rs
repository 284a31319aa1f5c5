//! Checking packages: the manifest digests verified (unless --no-verify), each disk checked.

use crate::common::{path, qemu_img_line, qemu_io, scratch, sh, truncate};
use crate::compare::ours;
use crate::qcow2_edit::Qcow2File;
use std::path::Path;

/// A minimal OVF 1.0 descriptor of one VM with the one disk `href`.
fn ovf(href: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="{href}" ovf:id="file1"/></References>
  <DiskSection><Info>Disks</Info><Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info>
    <VirtualHardwareSection><Info>Hardware</Info>
      <Item><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>11</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// `name.ova`: a streamOptimized disk, its descriptor and a SHA-256 manifest; `damage`
/// changes the disk after the manifest was made.
fn ova(dir: &Path, name: &str, damage: bool) {
    qemu_img_line("create -q -f raw d.raw 16M", dir);
    qemu_io("d.raw", &["write -P 0x61 1M 3M"], dir);
    qemu_img_line(
        "convert -q -O vmdk -o subformat=streamOptimized d.raw d.vmdk",
        dir,
    );
    std::fs::write(path(dir, "d.ovf"), ovf("d.vmdk")).unwrap();
    sh(
        dir,
        "sha256sum d.ovf d.vmdk | sed 's/^\\([0-9a-f]*\\)  \\(.*\\)/SHA256(\\2)= \\1/' > d.mf",
    );
    if damage {
        // The last byte of the footer's padding: the digest changes, the disk still reads.
        let file = path(dir, "d.vmdk");
        let mut data = std::fs::read(&file).unwrap();
        let at = data.len() - 700;
        data[at] ^= 0x01;
        std::fs::write(&file, &data).unwrap();
    }
    sh(
        dir,
        &format!("tar --format=ustar -cf {name} d.ovf d.vmdk d.mf"),
    );
}

#[test]
fn an_ova_is_verified_and_its_disk_checked() {
    let dir = &scratch();
    ova(dir, "good.ova", false);
    let v = ours(dir, "good.ova");
    assert_eq!(v.code, 0, "{}", v.json);
    assert_eq!(v.json["format"], "ova");
    assert_eq!(v.json["disks"][0]["format"], "vmdk", "{}", v.json);
    assert_eq!(v.json["disks"][0]["check-errors"], 0);

    ova(dir, "bad.ova", true);
    let v = ours(dir, "bad.ova");
    assert_eq!((v.code, v.count("corruptions")), (2, 1), "{}", v.json);
    assert!(
        v.json["problems"][0].as_str().unwrap().contains("d.vmdk"),
        "{}",
        v.json
    );
    let quick = crate::common::run(
        crate::common::vmdisk_bin(),
        &["check", "--json", "--no-verify", "-p", "bad.ova"],
        dir,
    );
    assert_eq!(
        quick.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&quick.stdout)
    );
}

#[test]
fn a_compressed_image_is_decompressed_and_checked() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 l.qcow2 64M", dir);
    qemu_io("l.qcow2", &["write -P 0x11 0 1M"], dir);
    // One unused cluster with refcount 1 at the end: a leak.
    let file = path(dir, "l.qcow2");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len + 65536);
    let mut q = Qcow2File::read(&file);
    q.set_refcount(len / 65536, 1);
    q.write(&file);
    sh(dir, "gzip -k l.qcow2");
    let v = ours(dir, "l.qcow2.gz");
    assert_eq!(v.code, 3, "{}", v.json);
    assert_eq!(v.json["disks"][0]["format"], "qcow2");
    assert_eq!(v.json["disks"][0]["leaks"], 1, "{}", v.json);
}
