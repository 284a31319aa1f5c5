//! Shared helpers and descriptors as real writers export them.

use super::*;

pub(super) fn codes(env: &Envelope) -> Vec<&'static str> {
    env.problems.iter().map(|p| p.code.code()).collect()
}

pub(super) fn has(env: &Envelope, code: FindingCode) -> bool {
    env.problems.iter().any(|p| p.code == code)
}

/// A minimal OVF 1.0 envelope around `body` (References, DiskSection, systems...).
pub(super) fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
{body}
</Envelope>"#
    )
}

pub(super) const VS: &str =
    r#"<VirtualSystem ovf:id="vm"><Info>A virtual machine</Info></VirtualSystem>"#;

/// What VMware ovftool 4.x writes for a vSphere VM: SCSI lsilogic, VMXNET3, GiB capacity.
pub(super) const VMWARE: &str = include_str!("testdata/vmware-ovftool-1.0.ovf");

#[test]
fn vmware_ovftool_1_0() {
    let env = parse(VMWARE.as_bytes()).unwrap();
    assert_eq!(env.version, "1.x");
    assert_eq!(env.configuration, None);
    assert_eq!(
        env.files,
        [FileRef {
            id: "file1".into(),
            href: "web01-disk1.vmdk".into(),
            size: Some(1_121_325_568),
            compression: None,
            chunk_size: None,
        }]
    );
    assert_eq!(env.disks.len(), 1);
    let d = &env.disks[0];
    assert_eq!(d.id, "vmdisk1");
    assert_eq!(d.file_ref.as_deref(), Some("file1"));
    assert_eq!(d.capacity, Some(40 << 30));
    assert_eq!(d.populated_size, Some(3 << 30));
    assert!(d.format.as_deref().unwrap().ends_with("#streamOptimized"));
    assert_eq!(d.parent_ref, None);

    let vm = &env.systems[0];
    assert_eq!(vm.id, "web01");
    assert_eq!(vm.name.as_deref(), Some("web01"));
    assert_eq!(vm.collection, None);
    assert_eq!(vm.hardware_family.as_deref(), Some("vmx-13"));
    let os = vm.os.as_ref().unwrap();
    assert_eq!(os.id, Some(101));
    assert_eq!(os.description.as_deref(), Some("Ubuntu Linux (64-bit)"));
    assert_eq!(os.os_type.as_deref(), Some("ubuntu64Guest"));
    assert_eq!(vm.cpus, Some(2));
    assert_eq!(vm.memory, Some(4096 << 20));
    assert_eq!(
        vm.disks,
        [DiskAttachment {
            disk_id: "vmdisk1".into(),
            target: AttachTo::Disk,
            device: "disk",
            controller: Some(Controller {
                kind: "scsi".into(),
                model: Some("lsilogic".into()),
                index: Some(0)
            }),
            address_on_parent: Some(0),
        }]
    );
    assert_eq!(
        vm.nics,
        [Nic {
            connection: Some("VM Network".into()),
            kind: Some("VmxNet3".into()),
            name: Some("Network adapter 1".into()),
            mac: None,
        }]
    );
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn serialises_kebab_case_without_nones() {
    let env = parse(VMWARE.as_bytes()).unwrap();
    let v = serde_json::to_value(&env).unwrap();
    assert_eq!(v["disks"][0]["file-ref"], "file1");
    assert_eq!(v["disks"][0]["populated-size"], 3u64 << 30);
    assert!(v["disks"][0].get("parent-ref").is_none());
    assert!(v.get("configuration").is_none());
    assert_eq!(v["systems"][0]["disks"][0]["controller"]["kind"], "scsi");
    assert_eq!(v["systems"][0]["disks"][0]["target"], "disk");
    assert_eq!(v["systems"][0]["disks"][0]["address-on-parent"], 0);
    assert_eq!(v["systems"][0]["os"]["os-type"], "ubuntu64Guest");
    assert_eq!(v["systems"][0]["hardware-family"], "vmx-13");
    assert!(v["systems"][0]["nics"][0].get("mac").is_none());
}

/// VirtualBox 6/7 "OVF 1.0" export: Caption instead of ElementName, plain byte capacity,
/// "MegaBytes", PIIX4 IDE and AHCI SATA, "/disk/" host resources, vbox:OSType.
pub(super) const VBOX_1_0: &str = include_str!("testdata/virtualbox-1.0.ovf");

#[test]
fn virtualbox_ovf_1_0() {
    let env = parse(VBOX_1_0.as_bytes()).unwrap();
    assert_eq!(env.version, "1.0");
    assert_eq!(env.files[0].href, "debian12-disk001.vmdk");
    assert_eq!(env.files[0].size, None);
    assert_eq!(env.disks[0].capacity, Some(20 << 30));
    let vm = &env.systems[0];
    assert_eq!(vm.id, "debian12");
    assert_eq!(vm.name, None);
    assert_eq!(vm.hardware_family.as_deref(), Some("virtualbox-2.2"));
    let os = vm.os.as_ref().unwrap();
    assert_eq!(
        (os.id, os.os_type.as_deref()),
        (Some(96), Some("Debian_64"))
    );
    assert_eq!(vm.cpus, Some(2));
    assert_eq!(vm.memory, Some(2048 << 20));
    // The empty CD drive holds nothing: no attachment.
    assert_eq!(vm.disks.len(), 1);
    let c = vm.disks[0].controller.as_ref().unwrap();
    assert_eq!(
        (c.kind.as_str(), c.model.as_deref(), c.index),
        ("sata", Some("AHCI"), Some(0))
    );
    assert_eq!(vm.disks[0].disk_id, "vmdisk1");
    assert_eq!(vm.nics[0].kind.as_deref(), Some("E1000"));
    assert_eq!(vm.nics[0].connection.as_deref(), Some("NAT"));
    assert_eq!(
        vm.nics[0].name.as_deref(),
        Some("Ethernet adapter on 'NAT'")
    );
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

/// VirtualBox "OVF 2.0" export: envelope/2, disks as sasd StorageItem (VirtualBox writes
/// the sasd/epasd namespaces with ".xsd"), NICs as epasd EthernetPortItem.
pub(super) const VBOX_2_0: &str = include_str!("testdata/virtualbox-2.0.ovf");

#[test]
fn virtualbox_ovf_2_0() {
    let env = parse(VBOX_2_0.as_bytes()).unwrap();
    assert_eq!(env.version, "2.0");
    assert_eq!(
        env.disks.iter().map(|d| d.capacity).collect::<Vec<_>>(),
        [Some(10 << 30), Some(1 << 30)]
    );
    let vm = &env.systems[0];
    assert_eq!(vm.cpus, Some(4));
    assert_eq!(vm.memory, Some(8 << 30));
    assert_eq!(
        vm.os.as_ref().unwrap().os_type.as_deref(),
        Some("RedHat_64")
    );
    let placed: Vec<_> = vm
        .disks
        .iter()
        .map(|a| {
            (
                a.disk_id.as_str(),
                a.controller.as_ref().unwrap().kind.as_str(),
                a.address_on_parent,
            )
        })
        .collect();
    assert_eq!(
        placed,
        [("vmdisk1", "sata", Some(0)), ("vmdisk2", "sata", Some(1))]
    );
    assert_eq!(
        vm.disks[0].controller.as_ref().unwrap().model.as_deref(),
        Some("AHCI")
    );
    assert_eq!(vm.nics.len(), 1);
    assert_eq!(vm.nics[0].connection.as_deref(), Some("Bridged"));
    assert_eq!(vm.nics[0].kind.as_deref(), Some("virtio"));
    assert_eq!(
        vm.nics[0].name.as_deref(),
        Some("Ethernet adapter on 'Bridged'")
    );
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

/// OVF 0.9 as VMware ESX 3.5 / VirtualBox 2.2 wrote it: typed Section and Content elements,
/// children unprefixed without a default namespace, rasd:InstanceId, MegaBytes.
pub(super) const OVF_0_9: &str = include_str!("testdata/vmware-0.9.ovf");

#[test]
fn ovf_0_9_typed_sections() {
    let env = parse(OVF_0_9.as_bytes()).unwrap();
    assert_eq!(env.version, "0.9");
    assert_eq!(env.files[0].size, Some(237_913_088));
    assert_eq!(env.disks[0].capacity, Some(2_733_637_632));
    assert!(env.disks[0].format.as_deref().unwrap().ends_with("#sparse"));
    let vm = &env.systems[0];
    assert_eq!(vm.id, "appliance");
    assert_eq!(vm.os.as_ref().unwrap().id, Some(36));
    assert_eq!(vm.hardware_family.as_deref(), Some("vmx-04"));
    assert_eq!(vm.cpus, Some(1));
    assert_eq!(vm.memory, Some(256 << 20));
    assert_eq!(vm.disks[0].disk_id, "vmdisk1");
    assert_eq!(vm.disks[0].controller.as_ref().unwrap().kind, "scsi");
    assert_eq!(vm.nics[0].kind.as_deref(), Some("PCNet32"));
    assert_eq!(vm.nics[0].name.as_deref(), Some("ethernet0"));
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}
