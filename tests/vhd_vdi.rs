//! VHD and VDI readers: differential tests against qemu-img for every variant it can create,
//! hand-built differencing images (qemu cannot create them) checked byte for byte, and
//! malformed images that must fail cleanly or raise findings.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Helpers

fn create(dir: &Path, fmt: &str, opts: &str, name: &str, size: &str) {
    let mut args = vec!["create", "-q", "-f", fmt];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend([name, size]);
    qemu_img(&args, dir);
}

/// `qemu-io -f FMT -c ...` (explicit format: qemu probes a fixed VHD as raw).
fn io(dir: &Path, fmt: &str, image: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(image);
    ok("qemu-io", &args, dir);
}

/// What qemu reads from `img` as format `fmt`, as a raw file.
fn qemu_raw(dir: &Path, fmt: &str, img: &str, out: &str) -> Vec<u8> {
    qemu_img(&["convert", "-f", fmt, "-O", "raw", img, out], dir);
    std::fs::read(path(dir, out)).unwrap()
}

/// What vmdisk reads from `files` (the first being the image), as bytes.
fn vmdisk_raw(dir: &Path, files: &[&str]) -> Vec<u8> {
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    let data = std::fs::read(path(dir, "vmdisk-out.raw")).unwrap();
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
    data
}

/// Map rows reduced to (start, length, depth, data offset or None for zeros), neighbours merged.
/// qemu reports unallocated ranges of an image without backing as present zeros, vmdisk as
/// absent zeros: both read as zeros, so both count as zeros here.
fn normalise(map: &Value) -> Vec<(u64, u64, u64, Option<u64>)> {
    let mut rows: Vec<(u64, u64, u64, Option<u64>)> = vec![];
    for r in map.as_array().expect("map rows") {
        let data = r["data"].as_bool().unwrap();
        let row = (
            r["start"].as_u64().unwrap(),
            r["length"].as_u64().unwrap(),
            r["depth"].as_u64().unwrap(),
            data.then(|| r["offset"].as_u64().unwrap()),
        );
        if let Some(last) = rows.last_mut() {
            assert_eq!(last.0 + last.1, row.0, "rows tile the disk");
            let joins = last.2 == row.2
                && match (last.3, row.3) {
                    (Some(a), Some(b)) => a + last.1 == b,
                    (None, None) => true,
                    _ => false,
                };
            if joins {
                last.1 += row.1;
                continue;
            }
        }
        rows.push(row);
    }
    rows
}

/// vmdisk and qemu-img (reading `img` as `qfmt`) agree on content, virtual size and map.
fn verify(dir: &Path, img: &str, qfmt: &str, ours: &str) -> Value {
    let q = json(&qemu_img(&["info", "-f", qfmt, "--output=json", img], dir));
    let size = q["virtual-size"].as_u64().unwrap();
    let expected = qemu_raw(dir, qfmt, img, "qemu-out.raw");
    std::fs::remove_file(path(dir, "qemu-out.raw")).unwrap();
    let got = vmdisk_raw(dir, &[img]);
    assert_eq!(got.len() as u64, size, "raw output length of {img}");
    assert!(got == expected, "content of {img} differs from qemu's");

    let info = info_json(&[img], dir);
    assert_eq!(info["format"], ours, "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");

    // A fixed VHD: qemu -f vpc maps the whole data area as data without looking for holes;
    // vmdisk maps sparse holes as zeros like raw images, so compare with qemu's raw view of
    // the same bytes (without the footer).
    let fixed = info["format-specific"]["disk-type"] == "fixed";
    let theirs = if fixed {
        let mut rows = normalise(&json(&qemu_img(
            &["map", "-f", "raw", "--output=json", img],
            dir,
        )));
        rows.retain(|r| r.0 < size);
        let last = rows.last_mut().unwrap();
        last.1 = size - last.0;
        rows
    } else {
        normalise(&json(&qemu_img(
            &["map", "-f", qfmt, "--output=json", img],
            dir,
        )))
    };
    let mine = normalise(&json(&vmdisk(&["map", "--json", img], dir)));
    assert_eq!(mine, theirs, "map of {img}");
    info
}

fn codes(info: &Value) -> Vec<(String, String)> {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_finding(info: &Value, code: &str, severity: &str) -> bool {
    codes(info).iter().any(|(c, s)| c == code && s == severity)
}

fn messages(info: &Value) -> String {
    info["safety"]["findings"].to_string()
}

fn patch(dir: &Path, name: &str, offset: u64, bytes: &[u8]) {
    write_at(&path(dir, name), offset, bytes);
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(path(dir, name)).unwrap()
}

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
    create(
        dir,
        "vpc",
        "subformat=dynamic,force_size=on",
        "parent.vhd",
        "4M",
    );
    io(
        dir,
        "vpc",
        "parent.vhd",
        &[
            "write -P 0x11 0 1M",
            "write -P 0x22 1M 64k",
            "write -P 0x33 3M 1M",
        ],
    );
    let data = qemu_raw(dir, "vpc", "parent.vhd", "parent-content.raw");
    std::fs::remove_file(path(dir, "parent-content.raw")).unwrap();
    data
}

fn parent_uuid(dir: &Path) -> [u8; 16] {
    let p = read(dir, "parent.vhd");
    p[p.len() - 512 + 68..p.len() - 512 + 84]
        .try_into()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// VHD: what qemu-img creates

#[test]
fn vhd_dynamic_matches_qemu() {
    let dir = tmp();
    let d = dir.path();
    // qemu rounds sizes up to a CHS geometry unless force_size is set; odd sizes either way.
    for (name, opts, size) in [
        ("a.vhd", "subformat=dynamic", "5M"),
        ("b.vhd", "subformat=dynamic", "3000001"),
        ("c.vhd", "subformat=dynamic,force_size=on", "6M"),
        ("e.vhd", "subformat=dynamic,force_size=on", "4194816"),
    ] {
        create(d, "vpc", opts, name, size);
        let info = json(&qemu_img(&["info", "--output=json", name], d));
        let vsize = info["virtual-size"].as_u64().unwrap();
        let last = vsize - 512;
        io(
            d,
            "vpc",
            name,
            &[
                "write -P 0xab 0 64k",
                "write -P 0xcd 2M 4k",
                &format!("write -P 0xef {last} 512"),
            ],
        );
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
    let dir = tmp();
    let d = dir.path();
    let mut data = text(3 << 20, 1);
    data.extend(vec![0u8; 1 << 20]);
    data.extend(noise(1 << 20, 2));
    std::fs::write(path(d, "src.raw"), &data).unwrap();
    for sub in ["dynamic", "fixed"] {
        let name = format!("{sub}.vhd");
        qemu_img(
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                &format!("subformat={sub},force_size=on"),
                "src.raw",
                &name,
            ],
            d,
        );
        verify(d, &name, "vpc", "vhd");
        assert!(vmdisk_raw(d, &[&name]) == data, "{name} holds the source");
    }
}

#[test]
fn vhd_fixed_is_not_raw() {
    let dir = tmp();
    let d = dir.path();
    create(d, "vpc", "subformat=fixed", "f.vhd", "3M");
    let vsize = json(&qemu_img(
        &["info", "-f", "vpc", "--output=json", "f.vhd"],
        d,
    ))["virtual-size"]
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
fn vhd_chs_size_differs_from_qemu() {
    // A force_size image (creator "qem2": qemu uses the current size) relabelled as made by
    // Virtual PC: qemu then sizes it from the CHS geometry, vmdisk keeps the footer's size.
    let dir = tmp();
    let d = dir.path();
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
    let q = json(&qemu_img(
        &["info", "-f", "vpc", "--output=json", "v.vhd"],
        d,
    ));
    let info = info_json(&["v.vhd"], d);
    let fs = &info["format-specific"];
    let chs = fs["chs-size"].as_u64().unwrap();
    assert_ne!(chs, 4 << 20, "{info}");
    assert_eq!(info["virtual-size"], 4 << 20, "{info}");
    assert_eq!(
        q["virtual-size"].as_u64().unwrap(),
        chs,
        "qemu uses the geometry"
    );
    assert_eq!(fs["qemu-virtual-size"].as_u64().unwrap(), chs, "{info}");
    let ours = vmdisk_raw(d, &["v.vhd"]);
    assert!(ours.len() == 4 << 20 && ours.iter().all(|&b| b == 0x77));
}

// ---------------------------------------------------------------------------------------------
// VHD: differencing (hand-built: qemu-img cannot create one)

#[test]
fn vhd_differencing_flattens() {
    let dir = tmp();
    let d = dir.path();
    let parent = vhd_parent(d);
    let (child, expected) = vhd_child(parent_uuid(d), &parent);
    std::fs::write(path(d, "child.vhd"), &child).unwrap();

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
        let roles: Vec<_> = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["role"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            roles.contains(&("parent.vhd".into(), "backing".into())),
            "{roles:?}"
        );
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
    let dir = tmp();
    let d = dir.path();
    let parent = vhd_parent(d);
    let (child, _) = vhd_child(parent_uuid(d), &parent);
    std::fs::write(path(d, "child.vhd"), &child).unwrap();
    std::fs::rename(path(d, "parent.vhd"), path(d, "elsewhere.vhd")).unwrap();

    // Missing: info works, convert fails naming the parent and leaves nothing behind.
    let info = info_json(&["child.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "backing-file", "critical"));
    assert!(messages(&info).contains("not supplied"), "{info}");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "out.raw", "child.vhd"],
        d,
    );
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
    let dir = tmp();
    let d = dir.path();
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
    let err = vmdisk_fails(&["info", "v.vhd"], d);
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn vhd_malformed() {
    let dir = tmp();
    let d = dir.path();
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
    assert!(vmdisk_fails(&["info", "sum.vhd"], d).contains("checksum"));

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
    assert!(vmdisk_fails(&["info", "small.vhd"], d).contains("entries"));

    // Block table past the end of the file.
    fresh("batpast.vhd");
    dyn_patch("batpast.vhd", 16, &(1u64 << 40).to_be_bytes());
    assert!(vmdisk_fails(&["info", "batpast.vhd"], d).contains("past the end"));

    // A BAT entry pointing past the end: info says so, convert refuses and writes nothing.
    fresh("past.vhd");
    patch(d, "past.vhd", bat_at + 4, &0x00ff_0000u32.to_be_bytes());
    let info = info_json(&["past.vhd"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "past.vhd"],
        d,
    );
    assert!(err.contains("past the end"), "{err}");
    assert!(!path(d, "o.raw").exists());

    // Two blocks at the same place; a block over the block table.
    fresh("overlap.vhd");
    let first = &base[bat_at as usize..bat_at as usize + 4];
    patch(d, "overlap.vhd", bat_at + 4, first);
    assert!(vmdisk_fails(&["info", "overlap.vhd"], d).contains("overlap"));
    fresh("onmeta.vhd");
    patch(
        d,
        "onmeta.vhd",
        bat_at,
        &((bat_at / 512) as u32).to_be_bytes(),
    );
    assert!(vmdisk_fails(&["info", "onmeta.vhd"], d).contains("overlap"));

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
    vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "fxcut.vhd"],
        d,
    );
}

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
    create(dir, "vdi", "", "parent.vdi", "4M");
    io(
        dir,
        "vdi",
        "parent.vdi",
        &[
            "write -P 0x11 0 1M",
            "write -P 0x22 1M 1M",
            "write -P 0x33 2M 1M",
            "write -P 0x44 3M 1M",
        ],
    );
    let data = qemu_raw(dir, "vdi", "parent.vdi", "parent-content.raw");
    std::fs::remove_file(path(dir, "parent-content.raw")).unwrap();
    data
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
    let dir = tmp();
    let d = dir.path();
    for (name, opts, size) in [
        ("dyn.vdi", "static=off", "5M"),
        ("odd.vdi", "static=off", "3000001"),
        ("static.vdi", "static=on", "3M"),
        ("static-odd.vdi", "static=on", "5000000"),
    ] {
        create(d, "vdi", opts, name, size);
        let vsize = json(&qemu_img(&["info", "--output=json", name], d))["virtual-size"]
            .as_u64()
            .unwrap();
        io(
            d,
            "vdi",
            name,
            &[
                "write -P 0xab 4k 64k",
                "write -P 0xcd 2M 4k",
                &format!("write -P 0xef {} 512", vsize - 512),
            ],
        );
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
    let dir = tmp();
    let d = dir.path();
    let mut data = noise(1 << 20, 5);
    data.extend(vec![0u8; 2 << 20]);
    data.extend(text((1 << 20) + 4096, 6));
    std::fs::write(path(d, "src.raw"), &data).unwrap();
    for opts in ["static=off", "static=on"] {
        qemu_img(
            &[
                "convert", "-f", "raw", "-O", "vdi", "-o", opts, "src.raw", "c.vdi",
            ],
            d,
        );
        verify(d, "c.vdi", "vdi", "vdi");
        assert!(vmdisk_raw(d, &["c.vdi"]) == data);
        std::fs::remove_file(path(d, "c.vdi")).unwrap();
    }
}

#[test]
fn vdi_discarded_blocks_read_as_zeros() {
    let dir = tmp();
    let d = dir.path();
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
    let dir = tmp();
    let d = dir.path();
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
    let rows: Vec<(u64, u64, bool)> = map
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().unwrap(),
                r["depth"].as_u64().unwrap(),
                r["data"].as_bool().unwrap(),
            )
        })
        .collect();
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
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "child.vdi"],
        d,
    );
    assert!(err.contains("not supplied"), "{err}");
    assert!(!path(d, "o.raw").exists());
}

#[test]
fn vdi_malformed() {
    let dir = tmp();
    let d = dir.path();
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
        assert!(vmdisk_fails(&["info", &n], d).contains("block size"));
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
    assert!(vmdisk_fails(&["info", "v2.vdi"], d).contains("version"));
    // Two guest blocks stored in the same data block.
    fresh("dup.vdi");
    patch(d, "dup.vdi", 512 + 4, &0u32.to_le_bytes());
    assert!(vmdisk_fails(&["info", "dup.vdi"], d).contains("same data block"));
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
