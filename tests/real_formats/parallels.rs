//! Parallels Desktop bundles: a DiskDescriptor.xml (written here, as Parallels Desktop writes
//! it; layout in qemu `docs/interop/prl-xml.txt`) naming `.hds` storages made by qemu-img.

use super::*;

const GUID: &str = "{5fbaabe3-6958-40ff-92a7-860e329aab41}";

/// A DiskDescriptor.xml for `storages` (type, file, sectors), in guest order.
fn descriptor(storages: &[(&str, &str, u64)]) -> String {
    let total: u64 = storages.iter().map(|s| s.2).sum();
    let mut start = 0;
    let mut body = String::new();
    for (kind, file, sectors) in storages {
        let end = start + sectors;
        body += &format!(
            "        <Storage>\n            <Start>{start}</Start>\n            <End>{end}</End>\n            <Blocksize>2048</Blocksize>\n            <Image>\n                <GUID>{GUID}</GUID>\n                <Type>{kind}</Type>\n                <File>{file}</File>\n            </Image>\n        </Storage>\n"
        );
        start = end;
    }
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n<Parallels_disk_image Version=\"1.0\">\n    <Disk_Parameters>\n        <Disk_size>{total}</Disk_size>\n        <Cylinders>{}</Cylinders>\n        <Heads>16</Heads>\n        <Sectors>32</Sectors>\n        <Padding>0</Padding>\n        <Name>t</Name>\n    </Disk_Parameters>\n    <StorageData>\n{body}    </StorageData>\n    <Snapshots>\n        <Shot>\n            <GUID>{GUID}</GUID>\n            <ParentGUID>{{00000000-0000-0000-0000-000000000000}}</ParentGUID>\n        </Shot>\n    </Snapshots>\n</Parallels_disk_image>\n",
        total / 512
    )
}

/// A qemu-made Parallels image of `size` with two written ranges.
fn hds(d: &Path, name: &str, size: &str, fill: u8) {
    create_image(d, "parallels", "", &[], name, size);
    let first = format!("write -P {fill} 0 64k");
    let second = format!("write -P {} 1536k 700k", fill.wrapping_add(1));
    ok(
        "qemu-io",
        &["-f", "parallels", "-c", &first, "-c", &second, name],
        d,
    );
}

#[test]
fn bundle_with_one_storage_reads_like_qemu_on_the_hds() {
    let d = &scratch();
    hds(d, "a.hds", "8M", 0x21);
    write(
        d,
        "DiskDescriptor.xml",
        descriptor(&[("Compressed", "a.hds", 16384)]).as_bytes(),
    );
    let size = qemu_size(d, "parallels", "a.hds");
    for files in [
        ["DiskDescriptor.xml", "a.hds"],
        ["a.hds", "DiskDescriptor.xml"],
    ] {
        let info = info_checked(d, &files, "parallels", size);
        assert_eq!(info["format-specific"]["descriptor-file"], true, "{info}");
        assert_has_role(&info, "DiskDescriptor.xml", "image");
        assert_has_role(&info, "a.hds", "extent");
        assert!(vmdisk_raw(d, &files) == qemu_raw(d, "parallels", "a.hds"));
    }

    // Alone, the descriptor is still named, and says what it misses.
    let info = info_json(&["DiskDescriptor.xml"], d);
    assert_eq!(info["format"], "parallels", "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "missing-extent", "warning"), "{info}");

    // A Plain storage is the raw file.
    qemu_img(
        &[
            "convert",
            "-f",
            "parallels",
            "-O",
            "raw",
            "a.hds",
            "plain.hds",
        ],
        d,
    );
    write(
        d,
        "DiskDescriptor.xml",
        descriptor(&[("Plain", "plain.hds", 16384)]).as_bytes(),
    );
    assert!(vmdisk_raw(d, &["DiskDescriptor.xml", "plain.hds"]) == read(d, "plain.hds"));
}

#[test]
fn split_bundle_is_its_storages_in_guest_order() {
    let d = &scratch();
    hds(d, "s0.hds", "4M", 0x31);
    write(d, "s1.hds", &noise(2 << 20, 7));
    hds(d, "s2.hds", "6M", 0x41);
    let xml = descriptor(&[
        ("Compressed", "s0.hds", 8192),
        ("Plain", "s1.hds", 4096),
        ("Compressed", "s2.hds", 12288),
    ]);
    write(d, "DiskDescriptor.xml", xml.as_bytes());
    let mut expected = qemu_raw(d, "parallels", "s0.hds");
    expected.extend(read(d, "s1.hds"));
    expected.extend(qemu_raw(d, "parallels", "s2.hds"));
    // Picked in any order: the descriptor is the image, the storages its extents.
    let files = ["s2.hds", "DiskDescriptor.xml", "s1.hds", "s0.hds"];
    let info = info_checked(d, &files, "parallels", 12 << 20);
    assert_eq!(info["format-specific"]["storage-count"], 3, "{info}");
    assert!(vmdisk_raw(d, &files) == expected, "split bundle content");

    // A storage that does not tile the disk is refused in one line.
    let gap = xml.replace("<Start>8192</Start>", "<Start>8193</Start>");
    write(d, "DiskDescriptor.xml", gap.as_bytes());
    let err = vmdisk_fails(
        &["info", "DiskDescriptor.xml", "s0.hds", "s1.hds", "s2.hds"],
        d,
    );
    assert!(err.contains("storage 1"), "{err}");
}

#[test]
fn bundle_storages_that_cannot_be_read_are_refused_clearly() {
    let d = &scratch();
    hds(d, "a.hds", "4M", 0x51);
    let one = |kind: &str, file: &str| descriptor(&[(kind, file, 8192)]);
    // A storage type nobody describes: named, not read.
    write(d, "DiskDescriptor.xml", one("Sparse", "a.hds").as_bytes());
    let info = info_json(&["DiskDescriptor.xml", "a.hds"], d);
    assert_eq!(info["convertible"], false, "{info}");
    let err = vmdisk_fails_line("convert -O raw --output o.raw DiskDescriptor.xml a.hds", d);
    assert!(err.contains("only Plain and Compressed"), "{err}");
    // The descriptor naming itself never reads itself as a disk.
    write(
        d,
        "DiskDescriptor.xml",
        one("Plain", "DiskDescriptor.xml").as_bytes(),
    );
    let info = info_json(&["DiskDescriptor.xml"], d);
    assert!(has_finding(&info, "missing-extent", "warning"), "{info}");
    // A path is matched by its base name only, and reported.
    write(
        d,
        "DiskDescriptor.xml",
        one("Compressed", "/vms/x/a.hds").as_bytes(),
    );
    let info = info_json(&["DiskDescriptor.xml", "a.hds"], d);
    assert!(has_finding(&info, "external-extent", "critical"), "{info}");
    assert!(vmdisk_raw(d, &["DiskDescriptor.xml", "a.hds"]) == qemu_raw(d, "parallels", "a.hds"));
    assert!(
        !codes(&info).contains(&"corrupt".into()),
        "Blocksize matches: {info}"
    );
    // A Blocksize that is not the image's cluster size (qemu-img's 1 MiB = 2048 sectors).
    let odd = one("Compressed", "a.hds").replace("<Blocksize>2048<", "<Blocksize>256<");
    write(d, "DiskDescriptor.xml", odd.as_bytes());
    let info = info_json(&["DiskDescriptor.xml", "a.hds"], d);
    assert!(has_finding(&info, "corrupt", "warning"), "{info}");
    // A snapshot chain (two images in a storage) is not read yet, and says so.
    let two = one("Compressed", "a.hds").replace(
        "            </Image>\n",
        "            </Image>\n            <Image>\n                <GUID>{1}</GUID>\n                <Type>Compressed</Type>\n                <File>a.hds</File>\n            </Image>\n",
    );
    write(d, "DiskDescriptor.xml", two.as_bytes());
    let err = vmdisk_fails_line("convert -O raw --output o.raw DiskDescriptor.xml a.hds", d);
    assert!(err.contains("snapshot chain"), "{err}");
    // Not XML of this kind: not a Parallels image.
    write(
        d,
        "DiskDescriptor.xml",
        b"<Parallels_disk_image><oops></Parallels_disk_image>",
    );
    fails_naming(
        d,
        "convert -O raw --output o.raw DiskDescriptor.xml",
        "not well-formed XML",
        "o.raw",
    );
}
