//! VHD: what qemu-img creates (dynamic, fixed, CHS sizes), hand-built differencing images qemu
//! cannot create, the backup footer, damaged images.

use super::*;

// ---------------------------------------------------------------------------------------------
// VHD structures (big-endian; spec "Hard Disk Footer Format", "Dynamic Disk Header Format")

fn vhd_checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// Recompute the checksum of the 512-byte footer at `at` in file `name`.
fn fix_footer(dir: &Path, name: &str, at: u64) {
    let data = read(dir, name);
    let f = &data[at as usize..at as usize + 512];
    patch(dir, name, at + 64, &vhd_checksum(f, 64).to_be_bytes());
}

fn vhd_footer(
    kind: u32,
    size: u64,
    data_offset: u64,
    creator: &[u8; 4],
    uuid: [u8; 16],
) -> Vec<u8> {
    let mut f = vec![0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&data_offset.to_be_bytes());
    f[28..32].copy_from_slice(creator);
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    // 4 MiB: 120 cylinders, 4 heads, 17 sectors is 8160 sectors (not 8192): a CHS size that
    // differs from the current size, as Hyper-V writes.
    f[56..58].copy_from_slice(&120u16.to_be_bytes());
    f[58] = 4;
    f[59] = 17;
    f[60..64].copy_from_slice(&kind.to_be_bytes());
    f[68..84].copy_from_slice(&uuid);
    let c = vhd_checksum(&f, 64);
    f[64..68].copy_from_slice(&c.to_be_bytes());
    f
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// A differencing VHD child of `parent` (a 4 MiB VHD): 1 MiB blocks; block 0 stores sectors
/// 0-7 and 100, block 1 is absent, block 2 is fully stored, block 3 is allocated with an empty
/// bitmap. Locators name the parent by a relative and an absolute Windows path. Returns the
/// file and the expected guest content given the parent's content.
fn vhd_child(parent_uuid: [u8; 16], parent_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    const MIB: usize = 1 << 20;
    let size = 4 * MIB as u64;
    let mut file = vec![0u8; 3072];
    // Dynamic header at 512.
    let mut h = vec![0u8; 1024];
    h[0..8].copy_from_slice(b"cxsparse");
    h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    h[16..24].copy_from_slice(&1536u64.to_be_bytes());
    h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    h[28..32].copy_from_slice(&4u32.to_be_bytes());
    h[32..36].copy_from_slice(&(MIB as u32).to_be_bytes());
    h[40..56].copy_from_slice(&parent_uuid);
    let name: Vec<u8> = "parent.vhd"
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    h[64..64 + name.len()].copy_from_slice(&name);
    // Locator data at 2048 (relative) and 2560 (absolute), one sector each.
    let locs = [
        (b"W2ru", utf16le(".\\parent.vhd"), 2048u64),
        (b"W2ku", utf16le("C:\\vms\\parent.vhd"), 2560u64),
    ];
    for (i, (code, data, at)) in locs.iter().enumerate() {
        let e = &mut h[576 + i * 24..600 + i * 24];
        e[0..4].copy_from_slice(*code);
        e[4..8].copy_from_slice(&512u32.to_be_bytes());
        e[8..12].copy_from_slice(&(data.len() as u32).to_be_bytes());
        e[16..24].copy_from_slice(&at.to_be_bytes());
        file[*at as usize..*at as usize + data.len()].copy_from_slice(data);
    }
    let c = vhd_checksum(&h, 36);
    h[36..40].copy_from_slice(&c.to_be_bytes());
    file[512..1536].copy_from_slice(&h);
    // BAT at 1536 (one sector: 4 entries used, the rest 0xff).
    file[1536..2048].fill(0xff);
    let mut expected = parent_data.to_vec();
    let bitmap_len = 512; // 2048 sectors / 8 = 256 bytes, padded to a sector
    let mut bat = [u32::MAX; 4];
    for block in [0usize, 2, 3] {
        let at = file.len();
        bat[block] = (at / 512) as u32;
        let mut bitmap = vec![0u8; bitmap_len];
        let data = noise(MIB, 100 + block as u64);
        let stored: Vec<usize> = match block {
            0 => (0..8).chain([100]).collect(),
            2 => (0..2048).collect(),
            _ => vec![],
        };
        for &s in &stored {
            bitmap[s / 8] |= 0x80 >> (s % 8);
            let g = block * MIB + s * 512;
            expected[g..g + 512].copy_from_slice(&data[s * 512..s * 512 + 512]);
        }
        file.extend_from_slice(&bitmap);
        file.extend_from_slice(&data);
    }
    for (i, e) in bat.iter().enumerate() {
        file[1536 + i * 4..1540 + i * 4].copy_from_slice(&e.to_be_bytes());
    }
    let uuid: [u8; 16] = noise(16, 7).try_into().unwrap();
    let footer = vhd_footer(4, size, 512, b"vmdt", uuid);
    file[0..512].copy_from_slice(&footer);
    file.extend_from_slice(&footer);
    (file, expected)
}

/// A qemu-made dynamic 4 MiB parent with data in three places; returns its content.
fn vhd_parent(dir: &Path) -> Vec<u8> {
    let writes = [
        "write -P 0x11 0 1M",
        "write -P 0x22 1M 64k",
        "write -P 0x33 3M 1M",
    ];
    qemu_parent(
        dir,
        "vpc",
        "subformat=dynamic,force_size=on",
        "parent.vhd",
        &writes,
    )
}

fn parent_uuid(dir: &Path) -> [u8; 16] {
    let p = read(dir, "parent.vhd");
    p[p.len() - 512 + 68..p.len() - 512 + 84]
        .try_into()
        .unwrap()
}

/// `vhd_parent` as parent.vhd and its `vhd_child` as child.vhd; returns the child's content.
fn parent_and_child(dir: &Path) -> Vec<u8> {
    let parent = vhd_parent(dir);
    let (child, expected) = vhd_child(parent_uuid(dir), &parent);
    write(dir, "child.vhd", &child);
    expected
}

// ---------------------------------------------------------------------------------------------
// VHD: what qemu-img creates

#[test]
fn vhd_dynamic_matches_qemu() {
    let d = &scratch();
    // qemu rounds sizes up to a CHS geometry unless force_size is set; odd sizes either way.
    for (name, opts, size) in [
        ("a.vhd", "subformat=dynamic", "5M"),
        ("b.vhd", "subformat=dynamic", "3000001"),
        ("c.vhd", "subformat=dynamic,force_size=on", "6M"),
        ("e.vhd", "subformat=dynamic,force_size=on", "4194816"),
    ] {
        let vsize = create_written(d, "vpc", opts, name, size, "0");
        let ours = verify(d, name, "vpc", "vhd");
        let fs = &ours["format-specific"];
        assert_eq!(fs["disk-type"], "dynamic", "{ours}");
        assert_eq!(fs["block-size"], 2 << 20, "{ours}");
        assert_eq!(fs["current-size"], vsize, "{ours}");
        let creator = if opts.contains("force_size") {
            "qem2"
        } else {
            "qemu"
        };
        assert_eq!(fs["creator"], creator, "{ours}");
        assert!(fs["geometry"]["cylinders"].as_u64().unwrap() > 0, "{ours}");
        assert!(fs["uuid"].as_str().unwrap().len() == 36, "{ours}");
        assert_eq!(
            has_finding(&ours, "unaligned-size", "warning"),
            !vsize.is_multiple_of(1 << 20),
            "{ours}"
        );
        assert!(ours["safety"]["safe"].as_bool().unwrap(), "{ours}");
    }
}

#[test]
fn vhd_converted_by_qemu() {
    let d = &scratch();
    let mut data = text(3 << 20, 1);
    data.extend(vec![0u8; 1 << 20]);
    data.extend(noise(1 << 20, 2));
    let variants = [
        "subformat=dynamic,force_size=on",
        "subformat=fixed,force_size=on",
    ];
    assert_reads_qemu_conversions(d, "vpc", "vhd", &variants, &data);
}

#[test]
fn vhd_fixed_is_not_raw() {
    let d = &scratch();
    create(d, "vpc", "subformat=fixed", "f.vhd", "3M");
    let vsize = json(&qemu_img_line("info -f vpc --output=json f.vhd", d))["virtual-size"]
        .as_u64()
        .unwrap();
    io(
        d,
        "vpc",
        "f.vhd",
        &[
            "write -P 0x5a 0 8k",
            &format!("write -P 0xa5 {} 512", vsize - 512),
        ],
    );
    let info = verify(d, "f.vhd", "vpc", "vhd");
    assert_eq!(info["format-specific"]["disk-type"], "fixed");

    // qemu's probe only looks at offset 0: it calls a fixed VHD raw and counts the footer as
    // guest data. vmdisk finds the footer and leaves it out.
    let probed = qemu_info("f.vhd", d);
    assert_eq!(probed["format"], "raw", "{probed}");
    assert_eq!(probed["virtual-size"].as_u64().unwrap(), vsize + 512);
    let as_raw = qemu_raw(d, "raw", "f.vhd", "as-raw.raw");
    let as_vpc = qemu_raw(d, "vpc", "f.vhd", "as-vpc.raw");
    let ours = vmdisk_raw(d, &["f.vhd"]);
    assert!(ours == as_vpc, "vmdisk reads what qemu -f vpc reads");
    assert_eq!(&as_raw[..ours.len()], &ours[..]);
    assert_eq!(&as_raw[ours.len()..ours.len() + 8], b"conectix");
}

#[test]
fn vhd_chs_size_follows_virtual_pc() {
    // A force_size image (creator "qem2": qemu uses the current size) relabelled as made by
    // Virtual PC: the guest, and qemu, then size it from the CHS geometry; vmdisk does too and
    // keeps the footer's size as a `size-ambiguous` finding.
    let d = &scratch();
    create(d, "vpc", "subformat=dynamic,force_size=on", "v.vhd", "4M");
    io(d, "vpc", "v.vhd", &["write -P 0x77 0 4M"]);
    let len = std::fs::metadata(path(d, "v.vhd")).unwrap().len();
    for at in [0, len - 512] {
        patch(d, "v.vhd", at + 28, b"vpc ");
        // 120 cylinders, 4 heads, 17 sectors (force_size wrote the maximum geometry, which
        // makes qemu use the current size whatever the creator).
        patch(d, "v.vhd", at + 56, &[0, 120, 4, 17]);
        fix_footer(d, "v.vhd", at);
    }
    let q = json(&qemu_img_line("info -f vpc --output=json v.vhd", d));
    let info = info_json(&["v.vhd"], d);
    let fs = &info["format-specific"];
    let chs = fs["chs-size"].as_u64().unwrap();
    assert_eq!(chs, 120 * 4 * 17 * 512, "{info}");
    assert_eq!(fs["current-size"], 4 << 20, "{info}");
    assert_eq!(
        q["virtual-size"].as_u64().unwrap(),
        chs,
        "qemu uses the geometry"
    );
    assert_eq!(info["virtual-size"].as_u64().unwrap(), chs, "{info}");
    assert!(fs.get("qemu-virtual-size").is_none(), "{info}");
    assert!(has_finding(&info, "size-ambiguous", "info"), "{info}");
    let ours = vmdisk_raw(d, &["v.vhd"]);
    assert!(ours.len() as u64 == chs && ours.iter().all(|&b| b == 0x77));
}

// ---------------------------------------------------------------------------------------------
// VHD: differencing (hand-built: qemu-img cannot create one)

#[test]
fn vhd_differencing_flattens() {
    let d = &scratch();
    let expected = parent_and_child(d);

    // Either order: the child is the main image.
    for files in [["child.vhd", "parent.vhd"], ["parent.vhd", "child.vhd"]] {
        let out = vmdisk_raw(d, &files);
        assert!(out == expected, "flattened differencing VHD content");
        let info = info_json(&files, d);
        assert_eq!(info["format"], "vhd");
        assert_eq!(info["virtual-size"], 4 << 20);
        assert_eq!(info["convertible"], true);
        let fs = &info["format-specific"];
        assert_eq!(fs["disk-type"], "differencing", "{info}");
        assert_eq!(fs["parent"], ".\\parent.vhd", "{info}");
        assert_eq!(fs["parent-unicode-name"], "parent.vhd", "{info}");
        assert_eq!(fs["block-size"], 1 << 20, "{info}");
        assert_eq!(
            fs["parent-locators"][1]["name"], "C:\\vms\\parent.vhd",
            "{info}"
        );
        assert!(!info["safety"]["safe"].as_bool().unwrap());
        assert!(has_finding(&info, "backing-file", "critical"), "{info}");
        assert!(
            messages(&info).contains("C:\\\\vms\\\\parent.vhd"),
            "{info}"
        );
        assert_has_role(&info, "parent.vhd", "backing");
    }

    // The map: sectors stored in the child at depth 0, the rest from the parent at depth 1.
    let map = json(&vmdisk(&["map", "--json", "child.vhd", "parent.vhd"], d));
    let rows = map.as_array().unwrap();
    assert_eq!(rows[0]["start"], 0);
    assert_eq!(rows[0]["length"], 4096);
    assert_eq!(rows[0]["depth"], 0);
    assert_eq!(rows[1]["depth"], 1, "{map}");
    let covers = |g: u64, depth: u64| {
        rows.iter().any(|r| {
            let s = r["start"].as_u64().unwrap();
            s <= g && g < s + r["length"].as_u64().unwrap() && r["depth"] == depth
        })
    };
    assert!(covers(100 * 512, 0) && covers(101 * 512, 1));
    assert!(covers((2 << 20) + 5, 0) && covers((3 << 20) + 5, 1) && covers((1 << 20) + 5, 1));
}

#[test]
fn vhd_differencing_missing_or_wrong_parent() {
    let d = &scratch();
    parent_and_child(d);
    std::fs::rename(path(d, "parent.vhd"), path(d, "elsewhere.vhd")).unwrap();

    // Missing: info works, convert fails naming the parent and leaves nothing behind.
    let info = info_json(&["child.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "backing-file", "critical"));
    assert!(messages(&info).contains("not supplied"), "{info}");
    let err = vmdisk_fails_line("convert -O raw --output out.raw child.vhd", d);
    assert!(err.contains("parent.vhd"), "{err}");
    assert_only_files(d, &["child.vhd", "elsewhere.vhd"]);

    // Another VHD under the parent's name: its UUID does not match.
    create(
        d,
        "vpc",
        "subformat=dynamic,force_size=on",
        "parent.vhd",
        "4M",
    );
    let info = info_json(&["child.vhd", "parent.vhd"], d);
    assert!(has_finding(&info, "parent-mismatch", "critical"), "{info}");

    // A parent that is not a VHD at all.
    std::fs::remove_file(path(d, "parent.vhd")).unwrap();
    std::fs::write(path(d, "parent.vhd"), vec![0u8; 4 << 20]).unwrap();
    let info = info_json(&["child.vhd", "parent.vhd"], d);
    assert!(has_finding(&info, "parent-mismatch", "critical"), "{info}");
}

// ---------------------------------------------------------------------------------------------
// VHD: damaged images

#[test]
fn vhd_backup_footer_used() {
    let d = &scratch();
    create(d, "vpc", "subformat=dynamic,force_size=on", "v.vhd", "4M");
    io(d, "vpc", "v.vhd", &["write -P 0x42 1M 1M"]);
    let want = vmdisk_raw(d, &["v.vhd"]);
    let len = std::fs::metadata(path(d, "v.vhd")).unwrap().len();
    // Damage the end footer's size field without fixing its checksum.
    patch(d, "v.vhd", len - 512 + 48, &[0xff; 4]);
    let info = info_json(&["v.vhd"], d);
    assert_eq!(info["virtual-size"], 4 << 20, "{info}");
    assert!(has_finding(&info, "corrupt", "warning"), "{info}");
    assert!(messages(&info).contains("offset 0"), "{info}");
    assert!(vmdisk_raw(d, &["v.vhd"]) == want);

    // Both copies damaged: a clean error.
    patch(d, "v.vhd", 48, &[0xff; 4]);
    info_fails_naming(d, &["v.vhd"], "checksum");
}

#[test]
fn vhd_malformed() {
    let d = &scratch();
    create(
        d,
        "vpc",
        "subformat=dynamic,force_size=on",
        "base.vhd",
        "4M",
    );
    io(
        d,
        "vpc",
        "base.vhd",
        &["write -P 0x42 0 1M", "write -P 0x43 2M 1M"],
    );
    let base = read(d, "base.vhd");
    let bat_at = u64::from_be_bytes(base[512 + 16..512 + 24].try_into().unwrap());
    let fresh = |name: &str| std::fs::write(path(d, name), &base).unwrap();
    // Rewrite dynamic header bytes and fix its checksum.
    let dyn_patch = |name: &str, at: usize, bytes: &[u8]| {
        patch(d, name, 512 + at as u64, bytes);
        let h = read(d, name)[512..1536].to_vec();
        patch(d, name, 512 + 36, &vhd_checksum(&h, 36).to_be_bytes());
    };

    // Dynamic header checksum wrong.
    fresh("sum.vhd");
    patch(d, "sum.vhd", 512 + 36, &[0, 0, 0, 1]);
    info_fails_naming(d, &["sum.vhd"], "checksum");

    // Block size zero, not a power of two, huge.
    for (i, bs) in [0u32, 3 << 20, 0x8000_0000].iter().enumerate() {
        let n = format!("bs{i}.vhd");
        fresh(&n);
        dyn_patch(&n, 32, &bs.to_be_bytes());
        let err = vmdisk_fails(&["info", &n], d);
        assert!(
            err.contains("block size") || err.contains("entries"),
            "{err}"
        );
    }

    // A block table too small for the disk.
    fresh("small.vhd");
    dyn_patch("small.vhd", 28, &1u32.to_be_bytes());
    info_fails_naming(d, &["small.vhd"], "entries");

    // Block table past the end of the file.
    fresh("batpast.vhd");
    dyn_patch("batpast.vhd", 16, &(1u64 << 40).to_be_bytes());
    info_fails_naming(d, &["batpast.vhd"], "past the end");

    // A BAT entry pointing past the end: info says so, convert refuses and writes nothing.
    fresh("past.vhd");
    patch(d, "past.vhd", bat_at + 4, &0x00ff_0000u32.to_be_bytes());
    let info = info_json(&["past.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    fails_naming(
        d,
        "convert -O raw --output o.raw past.vhd",
        "past the end",
        "o.raw",
    );

    // Two blocks at the same place; a block over the block table: info reports a critical
    // `corrupt` finding (the integrity walk), convert refuses.
    fresh("overlap.vhd");
    let first = &base[bat_at as usize..bat_at as usize + 4];
    patch(d, "overlap.vhd", bat_at + 4, first);
    fresh("onmeta.vhd");
    patch(
        d,
        "onmeta.vhd",
        bat_at,
        &((bat_at / 512) as u32).to_be_bytes(),
    );
    for (name, says) in [
        ("overlap.vhd", "same host bytes"),
        ("onmeta.vhd", "the BAT"),
    ] {
        let info = info_json(&[name], d);
        assert_eq!(info["convertible"], false, "{info}");
        let all = findings(&info);
        let f = finding(&all, "corrupt");
        assert_eq!(f.1, "critical", "{f:?}");
        assert!(f.2.contains(says), "{f:?}");
        fails_naming(
            d,
            &format!("convert -O raw --output o.raw {name}"),
            says,
            "o.raw",
        );
    }

    // Truncated in the middle: the end footer is gone, the copy at offset 0 is used, and the
    // blocks past the new end make it unreadable.
    fresh("cut.vhd");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path(d, "cut.vhd"))
        .unwrap();
    f.set_len(base.len() as u64 / 2).unwrap();
    let info = info_json(&["cut.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "cut.vhd"], d);

    // Huge current size.
    fresh("huge.vhd");
    let len = base.len() as u64;
    for at in [0, len - 512] {
        patch(d, "huge.vhd", at + 48, &(1u64 << 60).to_be_bytes());
        fix_footer(d, "huge.vhd", at);
    }
    vmdisk_fails(&["info", "huge.vhd"], d);

    // A truncated fixed VHD: info reports it, convert refuses.
    create(d, "vpc", "subformat=fixed,force_size=on", "fx.vhd", "2M");
    let fx = read(d, "fx.vhd");
    let mut cut = fx[..1 << 20].to_vec();
    cut.extend_from_slice(&fx[fx.len() - 512..]);
    std::fs::write(path(d, "fxcut.vhd"), &cut).unwrap();
    let info = info_json(&["fxcut.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    vmdisk_fails_line("convert -O raw --output o.raw fxcut.vhd", d);
}
