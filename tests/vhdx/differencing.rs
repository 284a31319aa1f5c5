//! Differencing disks (qemu can neither make nor read them): a child of a qemu parent, a parent
//! missing or changed.

use super::*;

// ---------------------------------------------------------------------------------------------
// Differencing disks (qemu can neither make nor read them)

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// The parent locator item ([MS-VHDX] 2.6.2.6) for `pairs`.
fn locator(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 12 * pairs.len()];
    b[0..16].copy_from_slice(&guid(GUID_LOCATOR_TYPE));
    b[18..20].copy_from_slice(&(pairs.len() as u16).to_le_bytes());
    for (i, (k, v)) in pairs.iter().enumerate() {
        let (k, v) = (utf16(k), utf16(v));
        let e = 20 + 12 * i;
        let ko = b.len();
        b.extend_from_slice(&k);
        let vo = b.len();
        b.extend_from_slice(&v);
        put32(&mut b, e, ko as u32);
        put32(&mut b, e + 4, vo as u32);
        b[e + 8..e + 10].copy_from_slice(&(k.len() as u16).to_le_bytes());
        b[e + 10..e + 12].copy_from_slice(&(v.len() as u16).to_le_bytes());
    }
    b
}

/// A differencing child of `parent.vhdx` (4 MiB, 1 MiB blocks), made from a qemu-made empty
/// VHDX: block 0 FULLY_PRESENT (0x11), block 1 PARTIALLY_PRESENT (0x22 in the sectors its
/// bitmap marks), block 2 NOT_PRESENT (the parent's), block 3 ZERO. Returns expected content.
fn child_fixture(dir: &Path, name: &str, linkage: &str, rel: &str) -> Vec<u8> {
    create(dir, name, "block_size=1M,block_state_zero=off", "4M");
    let mut img = read(dir, name);
    let fp = meta_item(&img, GUID_FILE_PARAMETERS);
    let flags = le32(&img, fp + 4);
    put32(&mut img, fp + 4, flags | 2); // HasParent
    // The locator as a new metadata item at 128 KiB into the region.
    let m = region(&img, GUID_METADATA);
    let n = u16::from_le_bytes([img[m + 10], img[m + 11]]) as usize;
    let loc = locator(&[
        ("parent_linkage", linkage),
        ("relative_path", rel),
        ("absolute_win32_path", "C:\\disks\\parent.vhdx"),
    ]);
    let e = m + 32 + 32 * n;
    img[e..e + 16].copy_from_slice(&guid(GUID_PARENT_LOCATOR));
    put32(&mut img, e + 16, 128 << 10);
    put32(&mut img, e + 20, loc.len() as u32);
    put32(&mut img, e + 24, 4); // IsRequired
    img[m + 10..m + 12].copy_from_slice(&((n + 1) as u16).to_le_bytes());
    img[m + (128 << 10)..m + (128 << 10) + loc.len()].copy_from_slice(&loc);
    // Payload and the sector bitmap appended at the end, 1 MiB aligned.
    let base = (img.len() as u64).div_ceil(MIB) * MIB;
    img.resize((base + 3 * MIB) as usize, 0);
    let (b0, b1, sb) = (
        base as usize,
        (base + MIB) as usize,
        (base + 2 * MIB) as usize,
    );
    img[b0..b0 + MIB as usize].fill(0x11);
    img[b1..b1 + MIB as usize].fill(0x22);
    // Chunk ratio 2^23 * 512 / 1 MiB = 4096: block 1's 2048 sector bits start at byte 256.
    let present: Vec<u64> = (0..8).chain(1024..1031).chain([2047]).collect();
    for s in &present {
        let bit = 2048 + s;
        img[sb + (bit / 8) as usize] |= 1 << (bit % 8);
    }
    let bat = region(&img, GUID_BAT);
    put64(&mut img, bat, base | 6);
    put64(&mut img, bat + 8, (base + MIB) | 7);
    put64(&mut img, bat + 16, 0);
    put64(&mut img, bat + 24, 2);
    put64(&mut img, bat + 4096 * 8, (base + 2 * MIB) | 6);
    write(dir, name, &img);

    let mut expected = qemu_raw(dir, "parent.vhdx");
    expected[..MIB as usize].fill(0x11);
    for s in &present {
        let at = (MIB + s * 512) as usize;
        expected[at..at + 512].fill(0x22);
    }
    expected[3 * MIB as usize..].fill(0);
    expected
}

fn make_parent(dir: &Path) -> String {
    create(dir, "parent.vhdx", "block_size=1M", "4M");
    qemu_io(
        "parent.vhdx",
        &["write -P 0x33 0 4M", "write -P 0x44 1M 600k"],
        dir,
    );
    let p = read(dir, "parent.vhdx");
    let h = current_header(&p);
    format!("{{{}}}", guid_text(&p[h + 32..h + 48]))
}

#[test]
fn differencing_child_of_a_qemu_parent() {
    let d = &scratch();
    let linkage = make_parent(d);
    let expected = child_fixture(d, "child.vhdx", &linkage, ".\\parent.vhdx");
    // Either order of the files: the child is the main image.
    assert_eq!(vmdisk_raw(d, &["child.vhdx", "parent.vhdx"]), expected);
    assert_eq!(vmdisk_raw(d, &["parent.vhdx", "child.vhdx"]), expected);
    let info = info_json(&["parent.vhdx", "child.vhdx"], d);
    let fs = &info["format-specific"];
    assert_eq!(fs["disk-type"], "differencing", "{info}");
    assert_eq!(fs["parent-locator"]["parent_linkage"], linkage.as_str());
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    assert!(
        !codes_and_severities(&info)
            .iter()
            .any(|(c, _)| c == "parent-mismatch"),
        "{info}"
    );
    assert_eq!(info["convertible"], true);
    assert_has_role(&info, "parent.vhdx", "backing");
    // The map: block 0 here, block 1 mixed, block 2 from the parent (depth 1), block 3 zero.
    let rows = map_rows(d, &["child.vhdx", "parent.vhdx"]);
    assert_eq!(rows[0], (0, MIB + 4096, "data".into()));
    assert_eq!(rows[1], (MIB + 4096, 1016 * 512, "data@1".into()));
    assert_eq!(rows[2], (MIB + 1024 * 512, 7 * 512, "data".into()));
    assert_eq!(rows[rows.len() - 2], (2 * MIB, MIB, "data@1".into()));
    assert_eq!(rows.last().unwrap(), &(3 * MIB, MIB, "zero".into()));
}

#[test]
fn differencing_parent_missing_or_changed() {
    let d = &scratch();
    let linkage = make_parent(d);
    child_fixture(
        d,
        "child.vhdx",
        "{00000000-1111-2222-3333-444444444444}",
        "..\\elsewhere\\parent.vhdx",
    );
    // A parent whose DataWriteGuid is not the linkage: Critical, but still readable.
    let info = info_json(&["child.vhdx", "parent.vhdx"], d);
    assert!(has_finding(&info, "parent-mismatch", "critical"), "{info}");
    assert!(linkage.len() == 38);
    // Missing parent: info still works, convert fails naming it and writes nothing.
    std::fs::remove_file(path(d, "parent.vhdx")).unwrap();
    let info = info_json(&["child.vhdx"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    let err = vmdisk_fails_line("convert -O raw --output out.raw child.vhdx", d);
    assert!(err.contains("parent.vhdx"), "{err}");
    assert_only_files(d, &["child.vhdx"]);
}
