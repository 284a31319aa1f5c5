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

const MIB: u64 = 1 << 20;

fn sh(dir: &Path, script: &str) {
    ok("sh", &["-c", script], dir);
}

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
    qemu_img(
        &["create", "-q", "-f", "raw", &raw, &format!("{size_mib}M")],
        dir,
    );
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
    qemu_img(
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            raw,
            out,
        ],
        dir,
    );
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
    let d = tmp();
    let dir = d.path();
    disk(dir, "web", 48, 0x31);
    stream_vmdk(dir, "web.raw", "web-disk1.vmdk");
    let ovf = ovftool_ovf(
        "web",
        &[D {
            href: "web-disk1.vmdk",
            mib: 48,
            format: STREAM,
        }],
        "",
    );
    std::fs::write(path(dir, "web.ovf"), ovf).unwrap();
    let mf = manifest(dir, "sha256", &["web.ovf", "web-disk1.vmdk"]);
    std::fs::write(path(dir, "web.mf"), mf).unwrap();
    sh(
        dir,
        "tar --format=ustar -cf web.ova web.ovf web-disk1.vmdk web.mf",
    );

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
    vmdisk(
        &[
            "extract", "--member", "web.ovf", "--output", "copy.ovf", "web.ova",
        ],
        dir,
    );
    assert_eq!(
        std::fs::read(path(dir, "copy.ovf")).unwrap(),
        std::fs::read(path(dir, "web.ovf")).unwrap()
    );

    // The same files picked unpacked, in any order, make the same disks.
    let loose = info_json(&["web.mf", "web-disk1.vmdk", "web.ovf"], dir);
    assert_eq!(loose["format"], "ovf", "{loose}");
    assert_eq!(loose["disks"], info["disks"]);
    assert_eq!(loose["safety"]["safe"], true, "{loose}");
    let roles: Vec<(&str, &str)> = loose["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("web.mf", "manifest"),
            ("web-disk1.vmdk", "disk"),
            ("web.ovf", "descriptor")
        ]
    );
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "loose.qcow2",
            "web.ovf",
            "web-disk1.vmdk",
        ],
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
    let d = tmp();
    let dir = d.path();
    disk(dir, "a", 32, 0x41);
    disk(dir, "b", 16, 0x51);
    stream_vmdk(dir, "a.raw", "db-disk001.vmdk");
    // oVirt-style: a qcow2 labelled as streamOptimized VMDK, with a capacity that is its
    // file size (as Oracle VM writes it).
    qemu_img(
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "b.raw",
            "db-disk002.vmdk",
        ],
        dir,
    );
    let qcow_len = len(dir, "db-disk002.vmdk");
    let ovf = virtualbox_ovf(&[("db-disk001.vmdk", 32 * MIB), ("db-disk002.vmdk", qcow_len)]);
    std::fs::write(path(dir, "db.ovf"), ovf).unwrap();
    let mf: String = ["db.ovf", "db-disk001.vmdk", "db-disk002.vmdk"]
        .iter()
        .map(|f| format!("SHA1 ({f}) = {}\r\n", digest(dir, "sha1", f).to_uppercase()))
        .collect();
    std::fs::write(path(dir, "db.mf"), mf).unwrap();
    // VirtualBox puts the manifest last.
    sh(
        dir,
        "tar --format=ustar -cf db.ova db.ovf db-disk001.vmdk db-disk002.vmdk db.mf",
    );
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

    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--disk",
            "2",
            "--output",
            "second.raw",
            "db.ova",
        ],
        dir,
    );
    assert_same("b.raw", "second.raw", dir);
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--all-disks",
            "--output",
            "out",
            "db.ova",
        ],
        dir,
    );
    assert_only_files(&path(dir, "out"), &["db-disk001.qcow2", "db-disk002.qcow2"]);
    assert_same("a.raw", "out/db-disk001.qcow2", dir);
    assert_same("b.raw", "out/db-disk002.qcow2", dir);
    let err = vmdisk_fails(
        &[
            "convert", "-O", "raw", "--disk", "3", "--output", "x.raw", "db.ova",
        ],
        dir,
    );
    assert!(err.contains("holds 2"), "{err}");
}

#[test]
fn chunked_and_gzip_members() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "c", 24, 0x61);
    stream_vmdk(dir, "c.raw", "c.vmdk");
    // ovftool --chunkSize: the file split into href.000000000, href.000000001, ...
    sh(dir, "split -b 300000 -d -a 9 c.vmdk c.vmdk.");
    let ovf = ovftool_ovf(
        "c",
        &[D {
            href: "c.vmdk",
            mib: 24,
            format: STREAM,
        }],
        r#" ovf:chunkSize="300000""#,
    );
    std::fs::write(path(dir, "c.ovf"), ovf).unwrap();
    sh(dir, "tar --format=ustar -cf chunked.ova c.ovf c.vmdk.0*");
    let info = info_json(&["chunked.ova"], dir);
    assert_eq!(info["disks"][0]["format"], "vmdk", "{info}");
    assert_eq!(info["disks"][0]["virtual-size"], 24 * MIB);
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "chunked.qcow2",
            "chunked.ova",
        ],
        dir,
    );
    assert_same("c.raw", "chunked.qcow2", dir);

    // ovf:compression="gzip": the member is decompressed on the way; a VMDK is read at random,
    // so the conversion decompresses it into a scratch file first.
    sh(
        dir,
        "gzip -c c.vmdk > gz/c.vmdk 2>/dev/null || (mkdir gz && gzip -c c.vmdk > gz/c.vmdk)",
    );
    let ovf = ovftool_ovf(
        "c",
        &[D {
            href: "c.vmdk",
            mib: 24,
            format: STREAM,
        }],
        r#" ovf:compression="gzip""#,
    );
    std::fs::write(path(dir, "gz/c.ovf"), ovf).unwrap();
    sh(
        dir,
        "cd gz && tar --format=ustar -cf ../gzip.ova c.ovf c.vmdk",
    );
    let info = info_json(&["gzip.ova"], dir);
    let disk = &info["disks"][0];
    assert_eq!(disk["format"], "vmdk", "{info}");
    assert_eq!(disk["compression"], "gzip");
    assert_eq!(disk["convertible"], true);
    assert!(codes(disk).contains(&"compressed-disk".into()), "{disk}");
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "gzip.qcow2",
            "gzip.ova",
        ],
        dir,
    );
    assert_same("c.raw", "gzip.qcow2", dir);
    // The member is written decompressed.
    vmdisk(
        &[
            "extract",
            "--member",
            "c.vmdk",
            "--output",
            "c.out.vmdk",
            "gzip.ova",
        ],
        dir,
    );
    assert_eq!(
        std::fs::read(path(dir, "c.out.vmdk")).unwrap(),
        std::fs::read(path(dir, "c.vmdk")).unwrap()
    );
}

#[test]
fn damaged_members_fail_their_digest_and_conversion() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "t", 16, 0x71);
    stream_vmdk(dir, "t.raw", "t.vmdk");
    let ovf = ovftool_ovf(
        "t",
        &[D {
            href: "t.vmdk",
            mib: 16,
            format: STREAM,
        }],
        "",
    );
    std::fs::write(path(dir, "t.ovf"), ovf).unwrap();
    let mut mf = manifest(dir, "sha256", &["t.ovf", "t.vmdk"]);
    mf += "SHA256(notes.txt)= 0000000000000000000000000000000000000000000000000000000000000000\n";
    std::fs::write(path(dir, "t.mf"), mf).unwrap();
    // One byte of the disk changes after the manifest was made (inside a grain's data).
    let mut data = std::fs::read(path(dir, "t.vmdk")).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x40;
    std::fs::write(path(dir, "t.vmdk"), &data).unwrap();
    sh(dir, "tar --format=ustar -cf t.ova t.ovf t.vmdk t.mf");
    let info = info_json(&["t.ova"], dir);
    assert_eq!(info["safety"]["safe"], false, "{info}");
    let bad = finding(&info, "digest-mismatch").expect("a digest mismatch");
    assert_eq!(bad["severity"], "critical");
    assert!(
        bad["message"].as_str().unwrap().starts_with("t.vmdk:"),
        "{bad}"
    );
    let absent = info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message"].as_str().unwrap().contains("notes.txt"))
        .expect("the absent file is named");
    assert_eq!(absent["severity"], "warning");
    // --no-verify skips the digests (and says nothing about them).
    let quick = json(&vmdisk(&["info", "--json", "--no-verify", "t.ova"], dir));
    assert!(finding(&quick, "digest-mismatch").is_none());
    // A conversion reads the damaged disk: it fails and leaves nothing behind.
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = vmdisk_fails(
        &["convert", "-O", "qcow2", "--output", "t.qcow2", "t.ova"],
        dir,
    );
    assert!(err.contains("t.vmdk") && err.contains("manifest"), "{err}");
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "the failed conversion left files behind");

    // No manifest at all: an info finding, still safe.
    sh(dir, "tar --format=ustar -cf nomf.ova t.ovf t.vmdk");
    let info = info_json(&["nomf.ova"], dir);
    let none = finding(&info, "manifest").unwrap();
    assert_eq!(none["severity"], "info");
    assert!(
        none["message"].as_str().unwrap().contains("no manifest"),
        "{none}"
    );
}

#[test]
fn signed_package_and_a_tampered_manifest() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "s", 16, 0x11);
    stream_vmdk(dir, "s.raw", "s.vmdk");
    let ovf = ovftool_ovf(
        "s",
        &[D {
            href: "s.vmdk",
            mib: 16,
            format: STREAM,
        }],
        "",
    );
    std::fs::write(path(dir, "s.ovf"), ovf).unwrap();
    std::fs::write(
        path(dir, "s.mf"),
        manifest(dir, "sha256", &["s.ovf", "s.vmdk"]),
    )
    .unwrap();
    // As ovftool --privateKey signs: the manifest's RSA signature, then the certificate.
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 -subj '/CN=Example Vendor' 2>/dev/null \
         && openssl dgst -sha256 -sign key.pem -out sig.bin s.mf \
         && { printf 'SHA256(s.mf)= %s\\n' \"$(od -An -tx1 -v sig.bin | tr -d ' \\n')\"; cat cert.pem; } > s.cert \
         && tar --format=ustar -cf signed.ova s.ovf s.vmdk s.mf s.cert",
    );
    let info = info_json(&["signed.ova"], dir);
    assert_eq!(info["safety"]["safe"], true, "{info}");
    let signed = finding(&info, "signed").expect("a signed finding");
    assert!(
        signed["message"]
            .as_str()
            .unwrap()
            .contains("Example Vendor"),
        "{signed}"
    );
    let sig = &info["format-specific"]["signature"];
    assert_eq!(sig["valid"], true, "{sig}");
    assert_eq!(sig["signer"]["self-signed"], true);
    assert!(
        !signed["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains(" is trusted")
    );

    // The manifest changed after signing (its digests still match the files).
    sh(
        dir,
        "printf '\\n' >> s.mf && tar --format=ustar -cf tampered.ova s.ovf s.vmdk s.mf s.cert",
    );
    let info = info_json(&["tampered.ova"], dir);
    assert_eq!(info["safety"]["safe"], false);
    assert_eq!(
        finding(&info, "bad-signature").unwrap()["severity"],
        "critical"
    );
}

#[test]
fn a_collection_of_two_vms() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "x", 16, 0x21);
    disk(dir, "y", 16, 0x22);
    stream_vmdk(dir, "x.raw", "x.vmdk");
    stream_vmdk(dir, "y.raw", "y.vmdk");
    let vs = |id: &str, disk: &str| {
        format!(
            r#"<VirtualSystem ovf:id="{id}"><Info>vm</Info><Name>{id}</Name><VirtualHardwareSection><Info>hw</Info>
<Item><rasd:Address>0</rasd:Address><rasd:ElementName>IDE 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
<Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:ElementName>disk</rasd:ElementName><rasd:HostResource>ovf:/disk/{disk}</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
</VirtualHardwareSection></VirtualSystem>"#
        )
    };
    let ovf = format!(
        r#"<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
<References><File ovf:href="x.vmdk" ovf:id="f1"/><File ovf:href="y.vmdk" ovf:id="f2"/></References>
<DiskSection><Info>d</Info><Disk ovf:capacity="16777216" ovf:diskId="dx" ovf:fileRef="f1"/><Disk ovf:capacity="16777216" ovf:diskId="dy" ovf:fileRef="f2"/></DiskSection>
<VirtualSystemCollection ovf:id="app"><Info>two tiers</Info>{}{}</VirtualSystemCollection></Envelope>"#,
        vs("frontend", "dx"),
        vs("backend", "dy")
    );
    std::fs::write(path(dir, "app.ovf"), ovf).unwrap();
    sh(dir, "tar -cf app.ova app.ovf x.vmdk y.vmdk");
    let info = info_json(&["app.ova"], dir);
    let disks = info["disks"].as_array().unwrap();
    assert_eq!(disks[0]["vm"], "frontend", "{info}");
    assert_eq!(disks[1]["vm"], "backend");
    assert_eq!(disks[1]["controller"], "ide 0, slot 1");
    let systems = info["format-specific"]["virtual-systems"]
        .as_array()
        .unwrap();
    assert_eq!(systems.len(), 2);
    assert_eq!(systems[0]["collection"], "app");
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--disk",
            "2",
            "--output",
            "y.out.raw",
            "app.ova",
        ],
        dir,
    );
    assert_same("y.raw", "y.out.raw", dir);
}

#[test]
fn gnu_long_names_and_a_pax_member_over_8_gib() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "l", 16, 0x13);
    let long = format!(
        "{}-disk1.vmdk",
        "appliance-with-a-very-long-name-".repeat(4)
    );
    stream_vmdk(dir, "l.raw", &long);
    let ovf = ovftool_ovf(
        "l",
        &[D {
            href: &long,
            mib: 16,
            format: STREAM,
        }],
        "",
    );
    std::fs::write(path(dir, "l.ovf"), ovf).unwrap();
    ok(
        "tar",
        &["--format=gnu", "-cf", "long.ova", "l.ovf", &long],
        dir,
    );
    let info = info_json(&["long.ova"], dir);
    assert_eq!(info["disks"][0]["name"], long.as_str(), "{info}");
    assert_eq!(info["disks"][0]["format"], "vmdk");
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "long.qcow2",
            "long.ova",
        ],
        dir,
    );
    assert_same("l.raw", "long.qcow2", dir);

    // A 9 GiB raw disk behind a pax `size` record (ustar's size field stops at 8 GiB), built
    // by hand as a sparse file so the test stays small: data at its start and at its end.
    const SIZE: u64 = 9 << 30;
    let ovf = format!(
        r#"<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:href="big.img" ovf:id="f"/></References><DiskSection><Info>d</Info><Disk ovf:capacity="{SIZE}" ovf:diskId="d" ovf:fileRef="f"/></DiskSection><VirtualSystem ovf:id="big"><Info>vm</Info></VirtualSystem></Envelope>"#
    );
    let mut tar = tar::Builder::new(vec![]);
    let mut h = tar::Header::new_ustar();
    h.set_size(ovf.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "big.ovf", ovf.as_bytes()).unwrap();
    let pax = format!("size={SIZE}\n");
    let record = format!(
        "{} {pax}",
        pax.len() + 1 + (pax.len() + 3).to_string().len()
    );
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_size(record.len() as u64);
    x.set_cksum();
    tar.append_data(&mut x, "PaxHeaders/big.img", record.as_bytes())
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(0); // the real size is the pax record's
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "big.img", &[][..]).unwrap();
    let head = tar.into_inner().unwrap();
    // `into_inner` ended the archive; the member's data goes where its end blocks were.
    let data_at = head.len() as u64 - 1024;
    let file = path(dir, "big.ova");
    write_at(&file, 0, &head[..data_at as usize]);
    write_at(&file, data_at, &noise(65536, 5));
    write_at(&file, data_at + SIZE - 65536, &noise(65536, 6));
    write_at(&file, data_at + SIZE, &[0u8; 1024]);
    let info = info_json(&["big.ova"], dir);
    let disk = &info["disks"][0];
    assert_eq!(disk["name"], "big.img", "{info}");
    assert_eq!(disk["format"], "raw");
    assert_eq!(disk["virtual-size"], SIZE);
    assert_eq!(info["safety"]["safe"], true, "{info}");
    vmdisk(
        &["convert", "-O", "qcow2", "--output", "big.qcow2", "big.ova"],
        dir,
    );
    let out = qemu_info("big.qcow2", dir);
    assert_eq!(out["virtual-size"], SIZE);
    // The first and last 64 KiB are the data written; the holes read as zeros.
    qemu_img(
        &[
            "convert",
            "-q",
            "-f",
            "qcow2",
            "-O",
            "raw",
            "big.qcow2",
            "back.raw",
        ],
        dir,
    );
    let back = std::fs::File::open(path(dir, "back.raw")).unwrap();
    let read = |off: u64| {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 65536];
        back.read_exact_at(&mut buf, off).unwrap();
        buf
    };
    assert!(read(0) == noise(65536, 5));
    assert!(read(SIZE - 65536) == noise(65536, 6));
    assert!(read(SIZE / 2) == vec![0u8; 65536]);
}

#[test]
fn hostile_names_links_and_missing_members() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "h", 16, 0x14);
    stream_vmdk(dir, "h.raw", "h.vmdk");
    let file_refs = r#"<File ovf:href="h.vmdk" ovf:id="f1"/><File ovf:href="../../etc/passwd" ovf:id="f2"/><File ovf:href="http://example.com/x.vmdk" ovf:id="f3"/><File ovf:href="/abs/y.vmdk" ovf:id="f4"/><File ovf:href="gone.vmdk" ovf:id="f5"/>"#;
    let disks: String = (1..=5)
        .map(|n| format!(r#"<Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d{n}" ovf:fileRef="f{n}"/>"#))
        .collect();
    let ovf = format!(
        r#"<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>{file_refs}</References><DiskSection><Info>d</Info>{disks}</DiskSection><VirtualSystem ovf:id="h"><Info>vm</Info></VirtualSystem></Envelope>"#
    );
    std::fs::write(path(dir, "h.ovf"), ovf).unwrap();
    sh(
        dir,
        "ln -s /etc/passwd link.vmdk && tar --format=ustar -cf h.ova h.ovf h.vmdk link.vmdk && tar -rf h.ova h.vmdk",
    );
    let info = info_json(&["h.ova"], dir);
    assert_eq!(info["safety"]["safe"], false);
    let disks = info["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 5);
    assert_eq!(disks[0]["format"], "vmdk", "{info}");
    assert_eq!(disks[0]["convertible"], true);
    for d in &disks[1..] {
        assert!(d["error"].is_string(), "{d}");
        assert_eq!(d["convertible"], false);
        assert!(d["format"].is_null());
    }
    let messages: Vec<&str> = info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    for needle in [
        "../../etc/passwd",
        "http://example.com/x.vmdk",
        "/abs/y.vmdk",
        "gone.vmdk",
        "link.vmdk",
        "two members are named",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "no critical finding names {needle}: {messages:?}"
        );
    }
    // The good disk still converts; the others fail with one line.
    vmdisk(
        &["convert", "-O", "raw", "--output", "h.out.raw", "h.ova"],
        dir,
    );
    assert_same("h.raw", "h.out.raw", dir);
    let err = vmdisk_fails(
        &[
            "convert", "-O", "raw", "--disk", "2", "--output", "x.raw", "h.ova",
        ],
        dir,
    );
    assert!(err.contains("climbs out"), "{err}");
    let err = vmdisk_fails(
        &[
            "convert", "-O", "raw", "--disk", "5", "--output", "x.raw", "h.ova",
        ],
        dir,
    );
    assert!(err.contains("gone.vmdk"), "{err}");
    assert!(!path(dir, "x.raw").exists());
}

#[test]
fn hostile_xml_and_truncated_packages() {
    let d = tmp();
    let dir = d.path();
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References>&lol3;</References></Envelope>"#;
    let external = r#"<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References><File href="&x;" id="f"/></References></Envelope>"#;
    for (name, xml) in [("laughs.ovf", laughs), ("external.ovf", external)] {
        std::fs::write(path(dir, name), xml).unwrap();
        let err = vmdisk_fails(&["info", name], dir);
        assert!(
            err.contains("OVF descriptor") && err.contains("DTD"),
            "{name}: {err}"
        );
        ok("tar", &["-cf", "x.ova", name], dir);
        let err = vmdisk_fails(&["info", "x.ova"], dir);
        assert!(err.contains("DTD"), "{name} in an OVA: {err}");
    }

    // An OVA cut in the middle of its disk: the tar is truncated, the disk too.
    disk(dir, "t", 16, 0x15);
    stream_vmdk(dir, "t.raw", "t.vmdk");
    std::fs::write(
        path(dir, "t.ovf"),
        ovftool_ovf(
            "t",
            &[D {
                href: "t.vmdk",
                mib: 16,
                format: STREAM,
            }],
            "",
        ),
    )
    .unwrap();
    sh(
        dir,
        "tar --format=ustar -cf t.ova t.ovf t.vmdk && head -c $(( $(stat -c %s t.ova) / 2 )) t.ova > cut.ova",
    );
    let info = info_json(&["cut.ova"], dir);
    assert_eq!(info["safety"]["safe"], false, "{info}");
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "cut.raw", "cut.ova"],
        dir,
    );
    assert!(!err.is_empty());
    assert!(!path(dir, "cut.raw").exists());
}

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

/// A newc cpio member.
fn newc(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
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
        0
    )
    .into_bytes();
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

#[test]
fn uec_tarballs_with_and_without_a_ramdisk() {
    let d = tmp();
    let dir = d.path();
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
    let mut cpio = newc("init", b"#!/bin/sh\n");
    cpio.extend(newc("TRAILER!!!", b""));
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
    let roles: Vec<(&str, &str, &str)> = info["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["role"].as_str().unwrap(),
                d["format"].as_str().unwrap(),
            )
        })
        .collect();
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
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "ami.qcow2",
            "uec.tar.gz",
        ],
        dir,
    );
    assert_same(img, "ami.qcow2", dir);
    vmdisk(
        &["extract", "--member", kernel, "--output", "k", "uec.tar.gz"],
        dir,
    );
    assert_eq!(std::fs::read(path(dir, "k")).unwrap(), bzimage());
    vmdisk(
        &[
            "extract",
            "--member",
            ramdisk,
            "--output",
            "r",
            "uec.tar.gz",
        ],
        dir,
    );
    assert_eq!(
        std::fs::read(path(dir, "r")).unwrap(),
        std::fs::read(path(dir, ramdisk)).unwrap()
    );
    let err = vmdisk_fails(
        &[
            "convert",
            "-O",
            "raw",
            "--disk",
            "1",
            "--output",
            "k.raw",
            "uec.tar.gz",
        ],
        dir,
    );
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
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "ami.raw",
            "noramdisk.tar.gz",
        ],
        dir,
    );
    assert_same(img, "ami.raw", dir);
}

#[test]
fn gce_tarball_keeps_its_holes() {
    let d = tmp();
    let dir = d.path();
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
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "out.raw",
            "image.tar.gz",
        ],
        dir,
    );
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
    vmdisk(
        &[
            "convert",
            "-O",
            "qcow2",
            "--output",
            "out.qcow2",
            "image.tar.gz",
        ],
        dir,
    );
    assert_same("g.raw", "out.qcow2", dir);
}

#[test]
fn compressed_images_of_every_codec() {
    let d = tmp();
    let dir = d.path();
    disk(dir, "z", 40, 0x17);
    qemu_img(
        &[
            "convert", "-q", "-f", "raw", "-O", "qcow2", "z.raw", "z.qcow2",
        ],
        dir,
    );
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
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "bad.raw", "bad.raw.gz"],
        dir,
    );
    assert!(err.contains("gzip"), "{err}");
    assert!(!path(dir, "bad.raw").exists());
}

#[test]
fn archives_that_hold_no_disk_are_refused() {
    let d = tmp();
    let dir = d.path();
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
    let err = vmdisk_fails(&["info", "plain.tar"], dir);
    assert!(err.contains("not an OVA"), "{err}");
    let err = vmdisk_fails(&["info", "notes.txt.bz2"], dir);
    assert!(err.contains("bzip2"), "{err}");
}

#[test]
fn a_gzip_bomb_stays_bounded_and_noise_members_are_skipped() {
    let d = tmp();
    let dir = d.path();
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
    disk(dir, "n", 16, 0x18);
    stream_vmdk(dir, "n.raw", "n.vmdk");
    std::fs::write(
        path(dir, "n.ovf"),
        ovftool_ovf(
            "n",
            &[D {
                href: "n.vmdk",
                mib: 16,
                format: STREAM,
            }],
            "",
        ),
    )
    .unwrap();
    sh(
        dir,
        "mkdir -p PaxHeader && echo x > PaxHeader/n.vmdk && echo y > ._n.vmdk && tar --format=ustar -cf noise.ova n.ovf ._n.vmdk PaxHeader/n.vmdk n.vmdk",
    );
    let info = info_json(&["noise.ova"], dir);
    let members: Vec<&str> = info["format-specific"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["n.ovf", "n.vmdk"], "{info}");
    assert_eq!(info["disks"][0]["format"], "vmdk");
    assert_eq!(info["safety"]["safe"], true, "{info}");
}
