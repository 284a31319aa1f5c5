//! Descriptor shapes: collections, controllers, files, units, configurations, structure problems and caps.

use super::tests::*;
use super::*;

#[test]
fn collection_of_two_systems() {
    let xml = envelope(
        r#"<References>
    <File ovf:href="db-disk1.vmdk" ovf:id="file1"/>
    <File ovf:href="app-disk1.vmdk" ovf:id="file2"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="8589934592" ovf:diskId="db" ovf:fileRef="file1"/>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="app" ovf:fileRef="file2"/>
  </DiskSection>
  <VirtualSystemCollection ovf:id="shop">
    <Info>A vApp of two VMs</Info>
    <Name>shop</Name>
    <StartupSection><Info>Start order</Info><Item ovf:id="db" ovf:order="0"/><Item ovf:id="app" ovf:order="1"/></StartupSection>
    <VirtualSystem ovf:id="db">
      <Info>A virtual machine</Info><Name>database</Name>
      <VirtualHardwareSection><Info>hw</Info>
        <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType></Item>
        <Item><rasd:HostResource>ovf:/disk/db</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      </VirtualHardwareSection>
    </VirtualSystem>
    <VirtualSystem ovf:id="app">
      <Info>A virtual machine</Info><Name>application</Name>
      <VirtualHardwareSection><Info>hw</Info>
        <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType><rasd:Address>0</rasd:Address></Item>
        <Item><rasd:HostResource>ovf:/disk/app</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      </VirtualHardwareSection>
    </VirtualSystem>
  </VirtualSystemCollection>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    let summary: Vec<_> = env
        .systems
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.name.as_deref(),
                s.collection.as_deref(),
                s.disks[0].disk_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("db", Some("database"), Some("shop"), "db"),
            ("app", Some("application"), Some("shop"), "app")
        ]
    );
    assert_eq!(
        env.systems[0].disks[0]
            .controller
            .as_ref()
            .unwrap()
            .model
            .as_deref(),
        Some("VirtualSCSI")
    );
    assert_eq!(
        env.systems[1].disks[0].controller.as_ref().unwrap().kind,
        "ide"
    );
    assert_eq!(env.disks[1].capacity, Some(16 << 30));
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn nested_collections_and_depth_limit() {
    let mut body = String::new();
    for i in 0..MAX_COLLECTION_DEPTH + 3 {
        body.push_str(&format!(r#"<VirtualSystemCollection ovf:id="c{i}"><Info>x</Info><VirtualSystem ovf:id="vm{i}"><Info>x</Info></VirtualSystem>"#));
    }
    for _ in 0..MAX_COLLECTION_DEPTH + 3 {
        body.push_str("</VirtualSystemCollection>");
    }
    let env = parse(envelope(&body).as_bytes()).unwrap();
    let ids: Vec<_> = env
        .systems
        .iter()
        .map(|s| (s.id.clone(), s.collection.clone().unwrap()))
        .collect();
    assert_eq!(ids.len(), MAX_COLLECTION_DEPTH);
    assert_eq!(ids[0], ("vm0".to_string(), "c0".to_string()));
    assert_eq!(ids[3], ("vm3".to_string(), "c3".to_string()));
    assert_eq!(codes(&env), ["ovf-nesting-limit"]);
}

#[test]
fn two_controllers_ide_and_scsi() {
    let xml = envelope(
        r#"<References>
    <File ovf:href="sys.vmdk" ovf:id="f-sys"/><File ovf:href="data.vmdk" ovf:id="f-data"/><File ovf:href="tools.iso" ovf:id="f-iso"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="sys" ovf:fileRef="f-sys"/>
    <Disk ovf:capacity="100" ovf:capacityAllocationUnits="byte*2^30" ovf:diskId="data" ovf:fileRef="f-data"/>
  </DiskSection>
  <VirtualSystem ovf:id="srv"><Info>A VM</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>IDE 0</rasd:ElementName><rasd:InstanceID>10</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>1</rasd:Address><rasd:ElementName>IDE 1</rasd:ElementName><rasd:InstanceID>11</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>12</rasd:InstanceID><rasd:ResourceSubType>lsilogicsas</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/sys</rasd:HostResource><rasd:InstanceID>20</rasd:InstanceID><rasd:Parent>11</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>3</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:InstanceID>21</rasd:InstanceID><rasd:Parent>12</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/file/f-iso</rasd:HostResource><rasd:InstanceID>22</rasd:InstanceID><rasd:Parent>10</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    let got: Vec<_> = env.systems[0]
        .disks
        .iter()
        .map(|a| {
            let c = a.controller.as_ref().unwrap();
            (
                a.disk_id.as_str(),
                a.target,
                a.device,
                c.kind.as_str(),
                c.index,
                a.address_on_parent,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("sys", AttachTo::Disk, "disk", "ide", Some(1), Some(1)),
            ("data", AttachTo::Disk, "disk", "scsi", Some(0), Some(3)),
            ("f-iso", AttachTo::File, "cdrom", "ide", Some(0), Some(0)),
        ]
    );
    assert_eq!(env.disks[1].capacity, Some(100 << 30));
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn chunked_and_gzip_files() {
    let xml = envelope(&format!(
        r#"<References>
    <File ovf:chunkSize="2147483648" ovf:href="big-disk1.vmdk" ovf:id="file1" ovf:size="5368709120"/>
    <File ovf:compression="gzip" ovf:href="small-disk1.vmdk.gz" ovf:id="file2" ovf:size="734003"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d2" ovf:fileRef="file2"/>
  </DiskSection>{VS}"#
    ));
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.files[0].chunk_size, Some(2 << 30));
    assert_eq!(env.files[0].size, Some(5 << 30));
    assert_eq!(env.files[0].compression, None);
    assert_eq!(env.files[1].compression.as_deref(), Some("gzip"));
    assert_eq!(env.files[1].chunk_size, None);
    assert_eq!(env.files[1].href, "small-disk1.vmdk.gz");
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn hrefs_are_returned_verbatim() {
    let xml = envelope(&format!(
        r#"<References><File ovf:href="../../etc/shadow" ovf:id="a"/><File ovf:href="http://example.com/x.vmdk" ovf:id="b"/><File href="/abs/c.vmdk" id="c"/></References>{VS}"#
    ));
    let env = parse(xml.as_bytes()).unwrap();
    let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
    // Unprefixed attributes (id=, href=) are read too.
    assert_eq!(
        hrefs,
        [
            "../../etc/shadow",
            "http://example.com/x.vmdk",
            "/abs/c.vmdk"
        ]
    );
}

fn memory_of(units: Option<&str>, quantity: &str) -> (Option<u64>, Vec<&'static str>) {
    let units = units
        .map(|u| format!("<rasd:AllocationUnits>{u}</rasd:AllocationUnits>"))
        .unwrap_or_default();
    let xml = envelope(&format!(
        r#"<VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
  <Item>{units}<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity></Item>
</VirtualHardwareSection></VirtualSystem>"#
    ));
    let env = parse(xml.as_bytes()).unwrap();
    (env.systems[0].memory, codes(&env))
}

#[test]
fn memory_units() {
    assert_eq!(
        memory_of(Some("MegaBytes"), "512"),
        (Some(512 << 20), vec![])
    );
    assert_eq!(
        memory_of(Some("byte * 2^20"), "3072"),
        (Some(3 << 30), vec![])
    );
    assert_eq!(memory_of(Some("GigaBytes"), "2"), (Some(2 << 30), vec![]));
    assert_eq!(
        memory_of(Some("byte * 2^30"), " 4 "),
        (Some(4 << 30), vec![])
    );
    assert_eq!(
        memory_of(None, "1024"),
        (Some(1 << 30), vec!["ovf-unknown-units"])
    );
    assert_eq!(
        memory_of(Some("hertz * 10^6"), "1024"),
        (None, vec!["ovf-unknown-units"])
    );
    assert_eq!(
        memory_of(Some("byte * 2^60"), "1024"),
        (None, vec!["ovf-size-overflow"])
    );
    assert_eq!(
        memory_of(Some("MegaBytes"), "lots"),
        (None, vec!["ovf-bad-value"])
    );
}

#[test]
fn allocation_unit_expressions() {
    assert_eq!(allocation_units("byte"), Some(1));
    assert_eq!(allocation_units("byte * 2^30"), Some(1 << 30));
    assert_eq!(allocation_units("byte*2^20"), Some(1 << 20));
    assert_eq!(allocation_units("  byte * 2 ^ 10 "), Some(1 << 10));
    assert_eq!(allocation_units("byte * 1024^3"), Some(1 << 30));
    assert_eq!(allocation_units("byte * 1024"), Some(1024));
    assert_eq!(allocation_units("byte * 10^9"), Some(1_000_000_000));
    assert_eq!(allocation_units("2^20 * byte"), Some(1 << 20));
    assert_eq!(allocation_units("gibibyte"), Some(1 << 30));
    assert_eq!(allocation_units("kilobyte"), Some(1000));
    assert_eq!(allocation_units("KiloBytes"), Some(1 << 10));
    assert_eq!(allocation_units("MegaBytes"), Some(1 << 20));
    assert_eq!(allocation_units("GigaBytes"), Some(1 << 30));
    assert_eq!(allocation_units("MB"), Some(1 << 20));
    assert_eq!(allocation_units("byte * 2^64"), None);
    assert_eq!(allocation_units("byte * 2^99999999999"), None);
    assert_eq!(allocation_units("hertz * 10^6"), None);
    assert_eq!(allocation_units("byte * byte"), None);
    assert_eq!(allocation_units("byte * 0"), None);
    assert_eq!(allocation_units("byte / 2"), None);
    assert_eq!(allocation_units("byte * -2^3"), None);
    assert_eq!(allocation_units("byte * 2^-3"), None);
    assert_eq!(allocation_units("2^30"), None);
    assert_eq!(allocation_units(""), None);
    assert_eq!(allocation_units("byte *"), None);
}

fn capacity_of(attrs: &str) -> (Option<u64>, Vec<&'static str>) {
    let xml = envelope(&format!(
        r#"<DiskSection><Info>d</Info><Disk ovf:diskId="d1" {attrs}/></DiskSection>{VS}"#
    ));
    let env = parse(xml.as_bytes()).unwrap();
    (env.disks[0].capacity, codes(&env))
}

#[test]
fn disk_capacities() {
    assert_eq!(
        capacity_of(r#"ovf:capacity="1048576""#),
        (Some(1 << 20), vec![])
    );
    assert_eq!(
        capacity_of(r#"ovf:capacity="10737418240" ovf:capacityAllocationUnits="byte""#),
        (Some(10 << 30), vec![])
    );
    assert_eq!(
        capacity_of(r#"capacity="2" capacityAllocationUnits="byte * 2^40""#),
        (Some(2 << 40), vec![])
    );
    // Old descriptors with the units written into the capacity.
    assert_eq!(
        capacity_of(r#"ovf:capacity="8 GB""#),
        (Some(8 << 30), vec![])
    );
    assert_eq!(
        capacity_of(r#"ovf:capacity="8 byte * 2^30""#),
        (Some(8 << 30), vec![])
    );
    assert_eq!(capacity_of(""), (None, vec!["ovf-missing-capacity"]));
    assert_eq!(
        capacity_of(r#"ovf:capacity="4" ovf:capacityAllocationUnits="percent""#),
        (None, vec!["ovf-unknown-units"])
    );
    assert_eq!(
        capacity_of(
            r#"ovf:capacity="18446744073709551615" ovf:capacityAllocationUnits="byte * 2^30""#
        ),
        (None, vec!["ovf-size-overflow"])
    );
    assert_eq!(
        capacity_of(r#"ovf:capacity="99999999999999999999999999""#),
        (None, vec!["ovf-size-overflow"])
    );
    assert_eq!(
        capacity_of(r#"ovf:capacity="-1""#),
        (None, vec!["ovf-bad-value"])
    );
    assert_eq!(
        capacity_of(r#"ovf:capacity="8 GB" ovf:capacityAllocationUnits="byte * 2^20""#),
        (None, vec!["ovf-unknown-units"])
    );
}

#[test]
fn capacity_from_product_property() {
    let xml = envelope(
        r#"<DiskSection><Info>d</Info>
    <Disk ovf:capacity="${disk.size}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1"/>
    <Disk ovf:capacity="${nothing}" ovf:diskId="d2"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info>
    <ProductSection><Info>p</Info><Property ovf:key="disk.size" ovf:type="int" ovf:value="2048"/></ProductSection>
  </VirtualSystem>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.disks[0].capacity, Some(2 << 30));
    assert_eq!(env.disks[1].capacity, None);
    assert_eq!(codes(&env), ["ovf-missing-capacity"]);
}

#[test]
fn default_deployment_option_selects_items() {
    let xml = envelope(
        r#"<DeploymentOptionSection><Info>Profiles</Info>
    <Configuration ovf:id="small"><Label>small</Label><Description>1 CPU</Description></Configuration>
    <Configuration ovf:default="true" ovf:id="large"><Label>large</Label><Description>8 CPUs</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="large"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>
    <Item ovf:bound="min"><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
    <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="small large"><rasd:Connection>a</rasd:Connection><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
    <Item ovf:configuration="small"><rasd:Connection>b</rasd:Connection><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.configuration.as_deref(), Some("large"));
    let vm = &env.systems[0];
    assert_eq!(vm.cpus, Some(8));
    assert_eq!(vm.memory, Some(1 << 30));
    assert_eq!(
        vm.nics
            .iter()
            .map(|n| n.connection.as_deref())
            .collect::<Vec<_>>(),
        [Some("a")]
    );
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn configuration_items_without_deployment_section() {
    // Items name configurations that no DeploymentOptionSection defines: one variant of
    // each InstanceID stands in, and a general item beats configuration-specific ones.
    let xml = envelope(
        r#"<VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item ovf:configuration="a"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="b"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="b"><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>
    <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>16</rasd:VirtualQuantity></Item>
  </VirtualHardwareSection></VirtualSystem>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.configuration, None);
    assert_eq!(env.systems[0].cpus, Some(2));
    assert_eq!(env.systems[0].memory, Some(16 << 20));
    assert!(env.problems.is_empty(), "{:?}", env.problems);
}

#[test]
fn ovirt_style_descriptor() {
    // oVirt / virt-v2v -o rhv: the 1.0 namespace with a trailing slash and
    // ovf:version="0.9", Section/Content with xsi:type, InstanceId, bare "group/image"
    // host resources, empty parentRef, a nil-UUID Parent, the VM UUID as OS id.
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ovf:version="0.9">
  <References>
    <File ovf:href="3b1c7a5e-grp/9d2e4f60-img" ovf:id="3b1c7a5e-grp/9d2e4f60-img" ovf:size="1073741824" ovf:description="vm1_Disk1"/>
  </References>
  <Section xsi:type="ovf:DiskSection_Type">
    <Info>List of Virtual Disks</Info>
    <Disk ovf:diskId="9d2e4f60-img" ovf:size="10" ovf:actual_size="1" ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30" ovf:parentRef="" ovf:fileRef="3b1c7a5e-grp/9d2e4f60-img" ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html" ovf:volume-format="COW" ovf:volume-type="Sparse" ovf:disk-interface="VirtIO_SCSI" ovf:boot="true"/>
  </Section>
  <Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type">
    <Name>vm1</Name>
    <Section ovf:id="c1d2e3f4" ovf:required="false" xsi:type="ovf:OperatingSystemSection_Type">
      <Info>Guest Operating System</Info>
      <Description>rhel_8x64</Description>
    </Section>
    <Section xsi:type="ovf:VirtualHardwareSection_Type">
      <Info>1 CPU, 2048 Memory</Info>
      <System><vssd:VirtualSystemType>ENGINE 4.4.0.0</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>1 virtual cpu</rasd:Caption><rasd:InstanceId>1</rasd:InstanceId><rasd:ResourceType>3</rasd:ResourceType><rasd:num_of_sockets>1</rasd:num_of_sockets><rasd:cpu_per_socket>1</rasd:cpu_per_socket><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:Caption>2048 MB of memory</rasd:Caption><rasd:InstanceId>2</rasd:InstanceId><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Caption>vm1_Disk1</rasd:Caption><rasd:InstanceId>9d2e4f60-img</rasd:InstanceId><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>3b1c7a5e-grp/9d2e4f60-img</rasd:HostResource><rasd:Parent>00000000-0000-0000-0000-000000000000</rasd:Parent></Item>
      <Item><rasd:Caption>Ethernet adapter on ovirtmgmt</rasd:Caption><rasd:InstanceId>n1</rasd:InstanceId><rasd:ResourceType>10</rasd:ResourceType><rasd:ResourceSubType>3</rasd:ResourceSubType><rasd:Connection>ovirtmgmt</rasd:Connection><rasd:Name>nic1</rasd:Name><rasd:MACAddress>56:6f:1a:2b:00:01</rasd:MACAddress></Item>
    </Section>
  </Content>
</ovf:Envelope>"#;
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.version, "1.x");
    assert_eq!(env.disks[0].capacity, Some(10 << 30));
    assert_eq!(env.disks[0].parent_ref, None);
    let vm = &env.systems[0];
    assert_eq!((vm.id.as_str(), vm.name.as_deref()), ("out", Some("vm1")));
    assert_eq!(vm.memory, Some(2 << 30));
    assert_eq!(vm.disks[0].disk_id, "9d2e4f60-img");
    assert_eq!(vm.disks[0].target, AttachTo::Disk);
    assert_eq!(vm.nics[0].connection.as_deref(), Some("ovirtmgmt"));
    assert_eq!(vm.disks[0].controller, None);
    assert_eq!(vm.os.as_ref().unwrap().id, None);
    assert_eq!(
        vm.os.as_ref().unwrap().description.as_deref(),
        Some("rhel_8x64")
    );
    assert_eq!(codes(&env), ["ovf-version-mismatch"]);
    assert_eq!(env.problems[0].severity, Severity::Info);
}

#[test]
fn structure_problems() {
    let xml = envelope(
        r#"<References>
    <File ovf:href="a.vmdk" ovf:id="file1"/>
    <File ovf:href="b.vmdk" ovf:id="file1"/>
    <File ovf:id="no-href"/>
    <File ovf:href="c.vmdk" ovf:id="file3" ovf:size="big" ovf:chunkSize="0"/>
  </References>
  <DiskSection><Info>d</Info>
    <Disk ovf:capacity="1" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:diskId="d1" ovf:fileRef="missing"/>
    <Disk ovf:capacity="1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:diskId="d3" ovf:parentRef="nobody" ovf:populatedSize="x"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:HostResource>ovf:/disk/ghost</rasd:HostResource><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>99</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/file/nofile</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
  <VirtualSystem ovf:id="vm"><Info>x</Info></VirtualSystem>
  <VirtualSystem><Info>x</Info></VirtualSystem>"#,
    );
    let env = parse(xml.as_bytes()).unwrap();
    assert_eq!(env.files.len(), 3);
    assert_eq!(env.files[2].size, None);
    assert_eq!(env.files[2].chunk_size, None);
    assert_eq!(
        env.disks.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d1", "d1", "d3"]
    );
    let vm = &env.systems[0];
    // Attachments to unknown disks are kept (and reported).
    assert_eq!(
        vm.disks
            .iter()
            .map(|a| a.disk_id.as_str())
            .collect::<Vec<_>>(),
        ["ghost", "d1", "nofile"]
    );
    assert_eq!(vm.disks[1].controller, None);
    let count = |code| env.problems.iter().filter(|p| p.code == code).count();
    assert_eq!(count(FindingCode::OvfDuplicateId), 4, "{:?}", env.problems); // file1, d1, InstanceID 2, vm
    assert_eq!(count(FindingCode::OvfMissingAttribute), 3); // File without href, Disk without id, VS without id
    assert_eq!(count(FindingCode::OvfBadValue), 3); // size, chunkSize, populatedSize
    // Disk fileRef, parentRef; ghost disk, Parent 99, no HostResource, unknown file.
    assert_eq!(count(FindingCode::OvfDanglingRef), 6);
    assert!(
        env.problems
            .iter()
            .all(|p| p.message.starts_with("OVF descriptor: ") && !p.message.contains('\n'))
    );
    assert!(env.problems.iter().all(|p| p.severity == Severity::Warning));
}

#[test]
fn no_virtual_system() {
    let env = parse(envelope("<References/>").as_bytes()).unwrap();
    assert!(env.systems.is_empty());
    assert_eq!(codes(&env), ["ovf-no-virtual-system"]);
    let env =
        parse(br#"<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"/>"#).unwrap();
    assert_eq!(env.version, "2.x");
    assert!(has(&env, FindingCode::OvfNoVirtualSystem));
}

#[test]
fn problems_are_capped() {
    let files: String = (0..MAX_PROBLEMS + 50)
        .map(|_| r#"<File ovf:href="x" ovf:id="same"/>"#)
        .collect();
    let env = parse(envelope(&format!("<References>{files}</References>{VS}")).as_bytes()).unwrap();
    assert_eq!(env.problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        env.problems.last().unwrap().code,
        FindingCode::OvfProblemsTruncated
    );
}

#[test]
fn records_are_capped() {
    let files: String = (0..MAX_RECORDS + 10)
        .map(|i| format!(r#"<File ovf:href="x" ovf:id="f{i}"/>"#))
        .collect();
    let env = parse(envelope(&format!("<References>{files}</References>{VS}")).as_bytes()).unwrap();
    assert_eq!(env.files.len(), MAX_RECORDS);
    // The budget is spent: the system is dropped too, and both are reported.
    assert!(env.systems.is_empty());
    assert!(has(&env, FindingCode::OvfTooMany));
}

#[test]
fn long_strings_are_cut() {
    let long = "m".repeat(100_000);
    let xml = envelope(&format!(
        r#"<VirtualSystemCollection ovf:id="{long}"><Info>x</Info><VirtualSystem ovf:id="vm"><Info>x</Info><Name>{long}</Name><VirtualHardwareSection><Info>hw</Info>
  <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>{long}</rasd:ResourceSubType></Item>
  <Item><rasd:HostResource>ovf:/disk/{long}</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
</VirtualHardwareSection></VirtualSystem></VirtualSystemCollection>"#
    ));
    let env = parse(xml.as_bytes()).unwrap();
    let vm = &env.systems[0];
    assert!(vm.collection.as_ref().unwrap().len() <= MAX_SHARED_TEXT + 3);
    assert!(vm.name.as_ref().unwrap().len() <= MAX_TEXT + 3);
    assert!(
        vm.disks[0]
            .controller
            .as_ref()
            .unwrap()
            .model
            .as_ref()
            .unwrap()
            .len()
            <= MAX_SHARED_TEXT + 3
    );
    assert!(
        env.problems.iter().all(|p| p.message.len() < 400),
        "{:?}",
        env.problems
    );
}
