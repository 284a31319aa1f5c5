//! Packages end to end: OVA and unpacked OVF (VMware- and VirtualBox-style descriptors,
//! manifests, signatures, chunked and gzip members, hostile names and XML), UEC and GCE
//! tarballs, gzip/xz/zstd-compressed images. Every package is built at test time with the
//! tools that make them (qemu-img, tar, gzip, xz, zstd, openssl, mkfs.ext4) or by hand where
//! no tool writes the case, and every converted disk is checked with `qemu-img compare`
//! against the disk that went in.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "packages/hostile.rs"]
mod hostile;
#[path = "packages/members.rs"]
mod members;
#[path = "packages/tarballs.rs"]
mod tarballs;

const MIB: u64 = 1 << 20;

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .or_else(|| v["safety"]["findings"].as_array())
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'a>(v: &'a Value, code: &str) -> Option<&'a Value> {
    v["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
}

/// A raw disk with recognisable data in a few places, and the same as a streamOptimized VMDK.
fn disk(dir: &Path, name: &str, size_mib: u64, seed: u8) {
    let raw = format!("{name}.raw");
    qemu_img_line(&format!("create -q -f raw {raw} {size_mib}M"), dir);
    qemu_io(
        &raw,
        &[
            &format!("write -P {seed} 1M 2M"),
            &format!("write -P {} {}M 1M", seed.wrapping_add(1), size_mib - 2),
        ],
        dir,
    );
    write_at(&path(dir, &raw), 5 * MIB, &noise(300_000, u64::from(seed)));
}

fn stream_vmdk(dir: &Path, raw: &str, out: &str) {
    qemu_img_line(
        &format!("convert -q -f raw -O vmdk -o subformat=streamOptimized {raw} {out}"),
        dir,
    );
}

/// `disk` NAME.raw and its streamOptimized copy `vmdk`.
fn streamed_disk(dir: &Path, name: &str, size_mib: u64, seed: u8, vmdk: &str) {
    disk(dir, name, size_mib, seed);
    stream_vmdk(dir, &format!("{name}.raw"), vmdk);
}

/// VM `name`: a 16 MiB disk `NAME.raw`, the same as the streamOptimized `NAME.vmdk`, and the
/// ovftool descriptor `NAME.ovf` holding it.
fn one_disk_vm(dir: &Path, name: &str, seed: u8) {
    disk(dir, name, 16, seed);
    let vmdk = format!("{name}.vmdk");
    stream_vmdk(dir, &format!("{name}.raw"), &vmdk);
    let ovf = ovftool_ovf(name, &[streamed(&vmdk, 16)], "");
    std::fs::write(path(dir, &format!("{name}.ovf")), ovf).unwrap();
}

/// `tar --format=ustar -cf ARGS` in `dir` (the archive, then its members), as ovftool packs.
fn ustar(dir: &Path, args: &str) {
    sh(dir, &format!("tar --format=ustar -cf {args}"));
}

fn digest(dir: &Path, alg: &str, file: &str) -> String {
    let out = ok(&format!("{alg}sum"), &[file], dir);
    out.split_whitespace().next().unwrap().to_string()
}

fn len(dir: &Path, file: &str) -> u64 {
    std::fs::metadata(path(dir, file)).unwrap().len()
}

/// One disk of a descriptor: the href, its capacity in MiB, the format URI it claims.
struct D<'a> {
    href: &'a str,
    mib: u64,
    format: &'a str,
}

const STREAM: &str = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// A descriptor's disk in a streamOptimized VMDK.
fn streamed(href: &str, mib: u64) -> D<'_> {
    D {
        href,
        mib,
        format: STREAM,
    }
}

/// An OVF 1.0 descriptor as VMware's ovftool writes it: one VM on an lsilogic SCSI
/// controller, its disks in slots 0, 1, ..., a VmxNet3 NIC. `extra` goes inside each File.
fn ovftool_ovf(vm: &str, disks: &[D], file_attrs: &str) -> String {
    let mut refs = String::new();
    let mut section = String::new();
    let mut items = String::new();
    for (i, d) in disks.iter().enumerate() {
        let n = i + 1;
        refs += &format!(
            r#"<File ovf:href="{}" ovf:id="file{n}"{file_attrs}/>"#,
            d.href
        );
        section += &format!(
            r#"<Disk ovf:capacity="{}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk{n}" ovf:fileRef="file{n}" ovf:format="{}"/>"#,
            d.mib, d.format
        );
        items += &format!(
            r#"<Item><rasd:AddressOnParent>{i}</rasd:AddressOnParent><rasd:ElementName>Hard disk {n}</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk{n}</rasd:HostResource><rasd:InstanceID>{}</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>"#,
            10 + n
        );
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>{refs}</References>
  <DiskSection><Info>Virtual disk information</Info>{section}</DiskSection>
  <NetworkSection><Info>The list of logical networks</Info><Network ovf:name="VM Network"><Description>The VM Network network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="{vm}">
    <Info>A virtual machine</Info>
    <Name>{vm}</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="ubuntu64Guest"><Info>The kind of installed guest operating system</Info><Description>Ubuntu Linux (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>{vm}</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>4096MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      {items}
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>20</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// A manifest as ovftool writes it: `SHA256(name)= hex`, one line per file.
fn manifest(dir: &Path, alg: &str, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| format!("{}({f})= {}\n", alg.to_uppercase(), digest(dir, alg, f)))
        .collect()
}

#[test]
fn ova_from_ovftool_converts_with_its_manifest_checked() {
    let dir = &scratch();
    streamed_disk(dir, "web", 48, 0x31, "web-disk1.vmdk");
    let ovf = ovftool_ovf("web", &[streamed("web-disk1.vmdk", 48)], "");
    std::fs::write(path(dir, "web.ovf"), ovf).unwrap();
    let mf = manifest(dir, "sha256", &["web.ovf", "web-disk1.vmdk"]);
    std::fs::write(path(dir, "web.mf"), mf).unwrap();
    ustar(dir, "web.ova web.ovf web-disk1.vmdk web.mf");

    let info = info_json(&["web.ova"], dir);
    assert_eq!(info["format"], "ova", "{info}");
    assert_eq!(info["virtual-size"], 48 * MIB);
    assert_eq!(info["safety"]["safe"], true, "{info}");
    assert_eq!(info["convertible"], true);
    let disk = &info["disks"][0];
    assert_eq!(disk["name"], "web-disk1.vmdk");
    assert_eq!(disk["format"], "vmdk");
    assert_eq!(disk["role"], "disk");
    assert_eq!(disk["virtual-size"], 48 * MIB);
    assert_eq!(disk["capacity"], 48 * MIB);
    assert_eq!(disk["vm"], "web");
    assert_eq!(disk["controller"], "scsi (lsilogic) 0, slot 0");
    assert_eq!(
        disk["format-specific"]["create-type"], "streamOptimized",
        "{disk}"
    );
    let digests = finding(&info, "manifest").expect("the manifest was checked");
    assert!(
        digests["message"].as_str().unwrap().contains("2 of 2"),
        "{digests}"
    );
    let vs = &info["format-specific"]["virtual-systems"][0];
    assert_eq!(vs["cpus"], 2);
    assert_eq!(vs["memory"], 4096 * MIB);
    assert_eq!(vs["os"]["os-type"], "ubuntu64Guest");
    assert_eq!(vs["nics"][0]["kind"], "VmxNet3");
    assert_eq!(info["files"][0]["role"], "package");

    for (fmt, out) in [("qcow2", "web.qcow2"), ("raw", "web.out.raw")] {
        vmdisk(&["convert", "-O", fmt, "--output", out, "web.ova"], dir);
        assert_same("web.raw", out, dir);
    }
    assert_check_clean("web.qcow2", dir);
    // The descriptor comes out as it is stored.
    vmdisk_line("extract --member web.ovf --output copy.ovf web.ova", dir);
    assert_eq!(
        std::fs::read(path(dir, "copy.ovf")).unwrap(),
        std::fs::read(path(dir, "web.ovf")).unwrap()
    );

    // The same files picked unpacked, in any order, make the same disks.
    let loose = info_json(&["web.mf", "web-disk1.vmdk", "web.ovf"], dir);
    assert_eq!(loose["format"], "ovf", "{loose}");
    assert_eq!(loose["disks"], info["disks"]);
    assert_eq!(loose["safety"]["safe"], true, "{loose}");
    let roles: Vec<(&str, &str)> = each(&loose["files"], |f| {
        (f["name"].as_str().unwrap(), f["role"].as_str().unwrap())
    });
    assert_eq!(
        roles,
        [
            ("web.mf", "manifest"),
            ("web-disk1.vmdk", "disk"),
            ("web.ovf", "descriptor")
        ]
    );
    vmdisk_line(
        "convert -O qcow2 --output loose.qcow2 web.ovf web-disk1.vmdk",
        dir,
    );
    assert_same("web.raw", "loose.qcow2", dir);
}

/// VirtualBox's OVF 2.0 export: StorageItem/EthernetPortItem, a SATA (AHCI) controller, the
/// manifest last and written `SHA1 (name) = hex` by some tools, CRLF line ends.
fn virtualbox_ovf(disks: &[(&str, u64)]) -> String {
    let mut refs = String::new();
    let mut section = String::new();
    let mut items = String::new();
    for (i, (href, cap)) in disks.iter().enumerate() {
        let n = i + 1;
        refs += &format!(r#"<File ovf:id="file{n}" ovf:href="{href}"/>"#);
        section += &format!(
            r#"<Disk ovf:capacity="{cap}" ovf:diskId="vmdisk{n}" ovf:fileRef="file{n}" ovf:format="{STREAM}" vbox:uuid="a1b2c3d4-0000-4000-8000-00000000000{n}"/>"#
        );
        items += &format!(
            r#"<StorageItem><sasd:AddressOnParent>{i}</sasd:AddressOnParent><sasd:Caption>disk{n}</sasd:Caption><sasd:Description>Disk Image</sasd:Description><sasd:HostResource>/disk/vmdisk{n}</sasd:HostResource><sasd:InstanceID>{}</sasd:InstanceID><sasd:Parent>5</sasd:Parent><sasd:ResourceType>17</sasd:ResourceType></StorageItem>"#,
            10 + n
        );
    }
    format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="2.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine" xmlns:epasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData.xsd" xmlns:sasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData.xsd">
  <References>{refs}</References>
  <DiskSection><Info>List of the virtual disks used in the package</Info>{section}</DiskSection>
  <VirtualSystem ovf:id="db">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="94"><Info>The kind of installed guest operating system</Info><Description>Ubuntu_64</Description><vbox:OSType ovf:required="false">Ubuntu_64</vbox:OSType></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>db</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>1 virtual CPU</rasd:Caption><rasd:Description>Number of virtual CPUs</rasd:Description><rasd:ElementName>1 virtual CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:Caption>2048 MB of memory</rasd:Caption><rasd:Description>Memory Size</rasd:Description><rasd:ElementName>2048 MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Caption>sataController0</rasd:Caption><rasd:Description>SATA Controller</rasd:Description><rasd:ElementName>sataController0</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      {items}
      <EthernetPortItem><epasd:AutomaticAllocation>true</epasd:AutomaticAllocation><epasd:Caption>Ethernet adapter on 'NAT'</epasd:Caption><epasd:Connection>NAT</epasd:Connection><epasd:InstanceID>20</epasd:InstanceID><epasd:ResourceSubType>E1000</epasd:ResourceSubType><epasd:ResourceType>10</epasd:ResourceType></EthernetPortItem>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

#[test]
fn virtualbox_ova_with_two_disks_one_of_them_qcow2_labelled_vmdk() {
    let dir = &scratch();
    streamed_disk(dir, "a", 32, 0x41, "db-disk001.vmdk");
    disk(dir, "b", 16, 0x51);
    // oVirt-style: a qcow2 labelled as streamOptimized VMDK, with a capacity that is its
    // file size (as Oracle VM writes it).
    qemu_img_line("convert -q -f raw -O qcow2 b.raw db-disk002.vmdk", dir);
    let qcow_len = len(dir, "db-disk002.vmdk");
    let ovf = virtualbox_ovf(&[("db-disk001.vmdk", 32 * MIB), ("db-disk002.vmdk", qcow_len)]);
    std::fs::write(path(dir, "db.ovf"), ovf).unwrap();
    let mf: String = ["db.ovf", "db-disk001.vmdk", "db-disk002.vmdk"]
        .iter()
        .map(|f| format!("SHA1 ({f}) = {}\r\n", digest(dir, "sha1", f).to_uppercase()))
        .collect();
    std::fs::write(path(dir, "db.mf"), mf).unwrap();
    // VirtualBox puts the manifest last.
    ustar(dir, "db.ova db.ovf db-disk001.vmdk db-disk002.vmdk db.mf");
    let info = info_json(&["db.ova"], dir);
    assert_eq!(info["format"], "ova", "{info}");
    assert_eq!(info["format-specific"]["ovf-version"], "2.0");
    let disks = info["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[0]["format"], "vmdk");
    assert_eq!(disks[0]["controller"], "sata (AHCI) 0, slot 0");
    assert_eq!(disks[1]["format"], "qcow2");
    assert_eq!(disks[1]["virtual-size"], 16 * MIB);
    assert_eq!(disks[1]["controller"], "sata (AHCI) 0, slot 1");
    assert!(
        codes(&disks[1]).contains(&"format-label".into()),
        "{}",
        disks[1]
    );
    assert!(
        codes(&disks[1]).contains(&"capacity-mismatch".into()),
        "{}",
        disks[1]
    );
    assert!(codes(&disks[0]).is_empty(), "{}", disks[0]);
    let m = finding(&info, "manifest").unwrap();
    assert!(m["message"].as_str().unwrap().contains("3 of 3"), "{m}");
    assert_eq!(info["safety"]["safe"], true);
    let vs = &info["format-specific"]["virtual-systems"][0];
    assert_eq!(vs["memory"], 2048 * MIB);
    assert_eq!(vs["nics"][0]["kind"], "E1000");

    vmdisk_line("convert -O raw --disk 2 --output second.raw db.ova", dir);
    assert_same("b.raw", "second.raw", dir);
    vmdisk_line("convert -O qcow2 --all-disks --output out db.ova", dir);
    assert_only_files(&path(dir, "out"), &["db-disk001.qcow2", "db-disk002.qcow2"]);
    assert_same("a.raw", "out/db-disk001.qcow2", dir);
    assert_same("b.raw", "out/db-disk002.qcow2", dir);
    let err = vmdisk_fails_line("convert -O raw --disk 3 --output x.raw db.ova", dir);
    assert!(err.contains("holds 2"), "{err}");
}
