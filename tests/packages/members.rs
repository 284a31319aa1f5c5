//! OVA members: chunked and gzip members, damaged members that fail their digest, signed packages
//! and tampered manifests, a collection of two VMs, GNU long names and a pax member over 8 GiB.

use super::*;

#[test]
fn chunked_and_gzip_members() {
    let dir = &scratch();
    streamed_disk(dir, "c", 24, 0x61, "c.vmdk");
    // ovftool --chunkSize: the file split into href.000000000, href.000000001, ...
    sh(dir, "split -b 300000 -d -a 9 c.vmdk c.vmdk.");
    let ovf = ovftool_ovf("c", &[streamed("c.vmdk", 24)], r#" ovf:chunkSize="300000""#);
    std::fs::write(path(dir, "c.ovf"), ovf).unwrap();
    ustar(dir, "chunked.ova c.ovf c.vmdk.0*");
    let info = info_json(&["chunked.ova"], dir);
    assert_eq!(info["disks"][0]["format"], "vmdk", "{info}");
    assert_eq!(info["disks"][0]["virtual-size"], 24 * MIB);
    vmdisk_line("convert -O qcow2 --output chunked.qcow2 chunked.ova", dir);
    assert_same("c.raw", "chunked.qcow2", dir);

    // ovf:compression="gzip": the member is decompressed on the way; a VMDK is read at random,
    // so the conversion decompresses it into a scratch file first.
    sh(
        dir,
        "gzip -c c.vmdk > gz/c.vmdk 2>/dev/null || (mkdir gz && gzip -c c.vmdk > gz/c.vmdk)",
    );
    let ovf = ovftool_ovf("c", &[streamed("c.vmdk", 24)], r#" ovf:compression="gzip""#);
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
    vmdisk_line("convert -O qcow2 --output gzip.qcow2 gzip.ova", dir);
    assert_same("c.raw", "gzip.qcow2", dir);
    // The member is written decompressed.
    vmdisk_line("extract --member c.vmdk --output c.out.vmdk gzip.ova", dir);
    assert_eq!(
        std::fs::read(path(dir, "c.out.vmdk")).unwrap(),
        std::fs::read(path(dir, "c.vmdk")).unwrap()
    );
}

#[test]
fn damaged_members_fail_their_digest_and_conversion() {
    let dir = &scratch();
    one_disk_vm(dir, "t", 0x71);
    let mut mf = manifest(dir, "sha256", &["t.ovf", "t.vmdk"]);
    mf += "SHA256(notes.txt)= 0000000000000000000000000000000000000000000000000000000000000000\n";
    std::fs::write(path(dir, "t.mf"), mf).unwrap();
    // One byte of the disk changes after the manifest was made (inside a grain's data).
    let mut data = std::fs::read(path(dir, "t.vmdk")).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x40;
    std::fs::write(path(dir, "t.vmdk"), &data).unwrap();
    ustar(dir, "t.ova t.ovf t.vmdk t.mf");
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
    // --no-verify skips the digests (and says nothing about them); -p changes nothing on
    // stdout (the bar draws only on a terminal).
    let quick = json(&vmdisk(
        &["info", "--json", "--no-verify", "-p", "t.ova"],
        dir,
    ));
    assert!(finding(&quick, "digest-mismatch").is_none());
    // A conversion reads the damaged disk: it fails and leaves nothing behind.
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = vmdisk_fails_line("convert -O qcow2 --output t.qcow2 t.ova", dir);
    assert!(err.contains("t.vmdk") && err.contains("manifest"), "{err}");
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "the failed conversion left files behind");

    // No manifest at all: an info finding, still safe.
    ustar(dir, "nomf.ova t.ovf t.vmdk");
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
    let dir = &scratch();
    one_disk_vm(dir, "s", 0x11);
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
    let dir = &scratch();
    streamed_disk(dir, "x", 16, 0x21, "x.vmdk");
    streamed_disk(dir, "y", 16, 0x22, "y.vmdk");
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
    vmdisk_line("convert -O raw --disk 2 --output y.out.raw app.ova", dir);
    assert_same("y.raw", "y.out.raw", dir);
}

#[test]
fn gnu_long_names_and_a_pax_member_over_8_gib() {
    let dir = &scratch();
    let long = format!(
        "{}-disk1.vmdk",
        "appliance-with-a-very-long-name-".repeat(4)
    );
    streamed_disk(dir, "l", 16, 0x13, &long);
    let ovf = ovftool_ovf("l", &[streamed(&long, 16)], "");
    std::fs::write(path(dir, "l.ovf"), ovf).unwrap();
    ok(
        "tar",
        &["--format=gnu", "-cf", "long.ova", "l.ovf", &long],
        dir,
    );
    let info = info_json(&["long.ova"], dir);
    assert_eq!(info["disks"][0]["name"], long.as_str(), "{info}");
    assert_eq!(info["disks"][0]["format"], "vmdk");
    vmdisk_line("convert -O qcow2 --output long.qcow2 long.ova", dir);
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
    vmdisk_line("convert -O qcow2 --output big.qcow2 big.ova", dir);
    let out = qemu_info("big.qcow2", dir);
    assert_eq!(out["virtual-size"], SIZE);
    // The first and last 64 KiB are the data written; the holes read as zeros.
    qemu_img_line("convert -q -f qcow2 -O raw big.qcow2 back.raw", dir);
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
