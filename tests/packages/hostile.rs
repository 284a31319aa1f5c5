//! Hostile packages: names, links and missing members, hostile XML, truncated packages.

use super::*;

#[test]
fn hostile_names_links_and_missing_members() {
    let dir = &scratch();
    streamed_disk(dir, "h", 16, 0x14, "h.vmdk");
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
    vmdisk_line("convert -O raw --output h.out.raw h.ova", dir);
    assert_same("h.raw", "h.out.raw", dir);
    let err = vmdisk_fails_line("convert -O raw --disk 2 --output x.raw h.ova", dir);
    assert!(err.contains("climbs out"), "{err}");
    fails_naming(
        dir,
        "convert -O raw --disk 5 --output x.raw h.ova",
        "gone.vmdk",
        "x.raw",
    );
}

#[test]
fn hostile_xml_and_truncated_packages() {
    let dir = &scratch();
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
    one_disk_vm(dir, "t", 0x15);
    sh(
        dir,
        "tar --format=ustar -cf t.ova t.ovf t.vmdk && head -c $(( $(stat -c %s t.ova) / 2 )) t.ova > cut.ova",
    );
    let info = info_json(&["cut.ova"], dir);
    assert_eq!(info["safety"]["safe"], false, "{info}");
    assert!(codes(&info).contains(&"truncated".into()), "{info}");
    let err = vmdisk_fails_line("convert -O raw --output cut.raw cut.ova", dir);
    assert!(!err.is_empty());
    assert!(!path(dir, "cut.raw").exists());
}
