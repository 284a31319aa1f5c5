//! VDI: what qemu-img creates, discarded blocks, hand-built differencing images, damaged images.

use super::*;

// ---------------------------------------------------------------------------------------------
// VDI structures (little-endian; VDICore.h VDIHEADER1PLUS)

const VDI_MAP: usize = 0x154;
const VDI_BLOCK: usize = 0x178;

fn vdi_header(
    kind: u32,
    size: u64,
    blocks: u32,
    allocated: u32,
    uuid: [u8; 16],
    parent: [u8; 16],
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    let text = b"<<< Oracle VM VirtualBox Disk Image >>>\n";
    h[..text.len()].copy_from_slice(text);
    h[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
    h[0x44..0x48].copy_from_slice(&0x0001_0001u32.to_le_bytes());
    h[0x48..0x4c].copy_from_slice(&0x190u32.to_le_bytes());
    h[0x4c..0x50].copy_from_slice(&kind.to_le_bytes());
    h[0x154..0x158].copy_from_slice(&512u32.to_le_bytes());
    h[0x158..0x15c].copy_from_slice(&1024u32.to_le_bytes());
    h[0x168..0x16c].copy_from_slice(&512u32.to_le_bytes());
    h[0x170..0x178].copy_from_slice(&size.to_le_bytes());
    h[0x178..0x17c].copy_from_slice(&(1u32 << 20).to_le_bytes());
    h[0x180..0x184].copy_from_slice(&blocks.to_le_bytes());
    h[0x184..0x188].copy_from_slice(&allocated.to_le_bytes());
    h[0x188..0x198].copy_from_slice(&uuid);
    h[0x198..0x1a8].copy_from_slice(&noise(16, 9));
    h[0x1a8..0x1b8].copy_from_slice(&parent);
    h
}

/// A 4 MiB qemu-made VDI parent with data in each block; returns its content.
fn vdi_parent(dir: &Path) -> Vec<u8> {
    let writes = [
        "write -P 0x11 0 1M",
        "write -P 0x22 1M 1M",
        "write -P 0x33 2M 1M",
        "write -P 0x44 3M 1M",
    ];
    qemu_parent(dir, "vdi", "", "parent.vdi", &writes)
}

/// A differencing VDI over `parent`: block 0 stored, block 1 absent (from the parent), block
/// 2 discarded (zeros), block 3 stored. Returns the file and the expected content.
fn vdi_child(parent_uuid: [u8; 16], parent_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mib = 1usize << 20;
    let mut file = vdi_header(
        4,
        4 << 20,
        4,
        2,
        noise(16, 3).try_into().unwrap(),
        parent_uuid,
    );
    let map = [0u32, 0xffff_ffff, 0xffff_fffe, 1];
    let mut m = vec![0u8; 512];
    for (i, e) in map.iter().enumerate() {
        m[i * 4..i * 4 + 4].copy_from_slice(&e.to_le_bytes());
    }
    file.extend(m);
    let mut expected = parent_data.to_vec();
    for (n, block) in [(0usize, 0usize), (1, 3)] {
        let data = noise(mib, 50 + n as u64);
        expected[block * mib..(block + 1) * mib].copy_from_slice(&data);
        file.extend(data);
    }
    expected[2 * mib..3 * mib].fill(0);
    (file, expected)
}

// ---------------------------------------------------------------------------------------------
// VDI tests

#[test]
fn vdi_matches_qemu() {
    let d = &scratch();
    for (name, opts, size) in [
        ("dyn.vdi", "static=off", "5M"),
        ("odd.vdi", "static=off", "3000001"),
        ("static.vdi", "static=on", "3M"),
        ("static-odd.vdi", "static=on", "5000000"),
    ] {
        create_written(d, "vdi", opts, name, size, "4k");
        let info = verify(d, name, "vdi", "vdi");
        let fs = &info["format-specific"];
        let kind = if opts == "static=on" {
            "fixed"
        } else {
            "dynamic"
        };
        assert_eq!(fs["image-type"], kind, "{info}");
        assert_eq!(fs["block-size"], 1 << 20, "{info}");
        assert_eq!(fs["version"], "1.1", "{info}");
        assert_eq!(fs["uuid"].as_str().unwrap().len(), 36, "{info}");
        assert!(info["safety"]["safe"].as_bool().unwrap(), "{info}");
    }
}

#[test]
fn vdi_converted_by_qemu() {
    let d = &scratch();
    let mut data = noise(1 << 20, 5);
    data.extend(vec![0u8; 2 << 20]);
    data.extend(text((1 << 20) + 4096, 6));
    assert_reads_qemu_conversions(d, "vdi", "vdi", &["static=off", "static=on"], &data);
}

#[test]
fn vdi_discarded_blocks_read_as_zeros() {
    let d = &scratch();
    create(d, "vdi", "", "v.vdi", "3M");
    io(d, "vdi", "v.vdi", &["write -P 0x61 0 3M"]);
    // Mark block 1 discarded (VirtualBox's "zero block").
    patch(d, "v.vdi", 512 + 4, &0xffff_fffeu32.to_le_bytes());
    let out = vmdisk_raw(d, &["v.vdi"]);
    assert!(out[..1 << 20].iter().all(|&b| b == 0x61));
    assert!(out[1 << 20..2 << 20].iter().all(|&b| b == 0));
    assert!(out[2 << 20..].iter().all(|&b| b == 0x61));
    // qemu reads discarded blocks as zeros too.
    let info = verify(d, "v.vdi", "vdi", "vdi");
    assert_eq!(info["format-specific"]["discarded-blocks"], 1, "{info}");
}

#[test]
fn vdi_differencing_flattens() {
    let d = &scratch();
    let parent = vdi_parent(d);
    let pu: [u8; 16] = read(d, "parent.vdi")[0x188..0x198].try_into().unwrap();
    assert_ne!(pu, [0; 16], "qemu writes an image UUID");
    let (child, expected) = vdi_child(pu, &parent);
    std::fs::write(path(d, "child.vdi"), &child).unwrap();
    // A decoy VDI with another UUID, supplied too: the parent is found by UUID, not by name.
    create(d, "vdi", "", "decoy.vdi", "4M");
    for files in [
        ["child.vdi", "decoy.vdi", "parent.vdi"],
        ["parent.vdi", "child.vdi", "decoy.vdi"],
    ] {
        assert!(
            vmdisk_raw(d, &files) == expected,
            "flattened differencing VDI"
        );
        let info = info_json(&files, d);
        assert_eq!(info["format"], "vdi");
        assert_eq!(info["convertible"], true, "{info}");
        let fs = &info["format-specific"];
        assert_eq!(fs["image-type"], "diff", "{info}");
        assert_eq!(fs["parent"], "parent.vdi", "{info}");
        assert_eq!(fs["discarded-blocks"], 1, "{info}");
        assert!(has_finding(&info, "backing-file", "critical"), "{info}");
        let unused: Vec<_> = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["role"] == "unused")
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(unused, ["decoy.vdi"], "{info}");
    }
    let map = json(&vmdisk(&["map", "--json", "child.vdi", "parent.vdi"], d));
    let rows: Vec<(u64, u64, bool)> = each(&map, |r| {
        (
            r["start"].as_u64().unwrap(),
            r["depth"].as_u64().unwrap(),
            r["data"].as_bool().unwrap(),
        )
    });
    let mib = 1 << 20;
    assert_eq!(
        rows,
        [
            (0, 0, true),
            (mib, 1, true),
            (2 * mib, 0, false),
            (3 * mib, 0, true)
        ],
        "{map}"
    );

    // Without its parent: info works, convert fails naming the parent's UUID.
    let info = info_json(&["child.vdi", "decoy.vdi"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(messages(&info).contains("not supplied"), "{info}");
    fails_naming(
        d,
        "convert -O raw --output o.raw child.vdi",
        "not supplied",
        "o.raw",
    );
}

#[test]
fn vdi_malformed() {
    let d = &scratch();
    create(d, "vdi", "", "base.vdi", "4M");
    io(
        d,
        "vdi",
        "base.vdi",
        &["write -P 0x42 0 1M", "write -P 0x43 2M 1M"],
    );
    let base = read(d, "base.vdi");
    let fresh = |name: &str| std::fs::write(path(d, name), &base).unwrap();

    for (i, bs) in [0u32, 3 << 20, 1 << 31].iter().enumerate() {
        let n = format!("bs{i}.vdi");
        fresh(&n);
        patch(d, &n, VDI_BLOCK as u64, &bs.to_le_bytes());
        info_fails_naming(d, &[&n], "block size");
    }
    // Too few blocks for the disk size; a block map past the end / over the data.
    fresh("few.vdi");
    patch(d, "few.vdi", 0x180, &1u32.to_le_bytes());
    vmdisk_fails(&["info", "few.vdi"], d);
    fresh("map.vdi");
    patch(d, "map.vdi", VDI_MAP as u64, &0x7fff_0000u32.to_le_bytes());
    vmdisk_fails(&["info", "map.vdi"], d);
    // Header version 0 / 2.
    fresh("v2.vdi");
    patch(d, "v2.vdi", 0x44, &0x0002_0000u32.to_le_bytes());
    info_fails_naming(d, &["v2.vdi"], "version");
    // Two guest blocks stored in the same data block: a critical finding, and convert refuses.
    fresh("dup.vdi");
    patch(d, "dup.vdi", 512 + 4, &0u32.to_le_bytes());
    let info = info_json(&["dup.vdi"], d);
    let f = &info["safety"]["findings"];
    assert!(
        f.as_array().unwrap().iter().any(|f| f["code"] == "corrupt"
            && f["severity"] == "critical"
            && f["message"].as_str().unwrap().contains("same host bytes")),
        "{info}"
    );
    assert_eq!(info["convertible"], false, "{info}");
    vmdisk_fails(
        &["convert", "-O", "raw", "--output", "dup.raw", "dup.vdi"],
        d,
    );
    // A block past the end of the file (truncated): a finding, and convert refuses.
    fresh("cut.vdi");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path(d, "cut.vdi"))
        .unwrap();
    f.set_len(base.len() as u64 - 4096).unwrap();
    let info = info_json(&["cut.vdi"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "cut.vdi"], d);
    assert!(!path(d, "o.raw").exists());
    // A header cut short.
    std::fs::write(path(d, "short.vdi"), &base[..0x100]).unwrap();
    vmdisk_fails(&["info", "short.vdi"], d);
    // A differencing VDI whose parent UUID is its own: it is not its own parent.
    let own: [u8; 16] = noise(16, 3).try_into().unwrap();
    let (mut child, _) = vdi_child(own, &vec![0u8; 4 << 20]);
    child[0x188..0x198].copy_from_slice(&own);
    std::fs::write(path(d, "self.vdi"), &child).unwrap();
    let info = info_json(&["self.vdi"], d);
    assert_eq!(info["convertible"], false, "{info}");
}
