//! Damage: one bad header or region table falls back to the other; malformed images fail cleanly.

use super::*;

/// `a.vhdx`, 3 MiB in 1 MiB blocks, written by `cmd`: the image damaged copies start from.
fn victim(d: &Path, cmd: &str) -> Vec<u8> {
    create(d, "a.vhdx", "block_size=1M", "3M");
    qemu_io("a.vhdx", &[cmd], d);
    read(d, "a.vhdx")
}

#[test]
fn one_damaged_header_or_region_table_falls_back_to_the_other() {
    let d = &scratch();
    let good = victim(d, "write -P 9 1M 8k");
    let expected = qemu_raw(d, "a.vhdx");
    for (i, at) in [64usize << 10, 128 << 10, 192 << 10, 256 << 10]
        .iter()
        .enumerate()
    {
        let mut img = good.clone();
        img[at + 100] ^= 0xff;
        let name = format!("d{i}.vhdx");
        write(d, &name, &img);
        let info = info_json(&[&name], d);
        assert!(has_finding(&info, "corrupt", "warning"), "{name}: {info}");
        assert_eq!(vmdisk_raw(d, &[&name]), expected, "{name}");
    }
    // Both headers, or both region tables, damaged: a clean error.
    for (i, pair) in [[64usize << 10, 128 << 10], [192 << 10, 256 << 10]]
        .iter()
        .enumerate()
    {
        let mut img = good.clone();
        for at in pair {
            img[at + 100] ^= 0xff;
        }
        let name = format!("b{i}.vhdx");
        write(d, &name, &img);
        let convert = format!("convert -O raw --output o.raw {name}");
        fails_naming(d, &convert, "checksum", "o.raw");
    }
}

#[test]
fn malformed_images_fail_cleanly() {
    let d = &scratch();
    let good = victim(d, "write -P 9 0 8k");
    let convert =
        |name: &str| vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", name], d);

    // Cut inside the region tables.
    write(d, "t1.vhdx", &good[..200 << 10]);
    let err = convert("t1.vhdx");
    assert!(err.contains("past the end"), "{err}");
    // Cut before the BAT region ends.
    let bat = region(&good, GUID_BAT);
    write(d, "t2.vhdx", &good[..bat + 4096]);
    let err = convert("t2.vhdx");
    assert!(err.contains("past the end"), "{err}");

    // A BAT entry past the end of the file: info flags it, convert refuses.
    let mut img = good.clone();
    put64(&mut img, bat + 8, (1 << 40) | 6);
    write(d, "p.vhdx", &img);
    let info = info_json(&["p.vhdx"], d);
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    assert_eq!(info["convertible"], false);
    let err = convert("p.vhdx");
    assert!(err.contains("first at host offset 0x10000000000"), "{err}");
    // An invalid BAT state.
    let mut img = good.clone();
    put64(&mut img, bat + 16, 5);
    write(d, "s.vhdx", &img);
    let err = convert("s.vhdx");
    assert!(err.contains("invalid state"), "{err}");

    // Block sizes: huge, zero, not a power of two.
    let fp = meta_item(&good, GUID_FILE_PARAMETERS);
    for (i, bs) in [1u32 << 31, 0, 3 << 20].iter().enumerate() {
        let mut img = good.clone();
        put32(&mut img, fp, *bs);
        let name = format!("bs{i}.vhdx");
        write(d, &name, &img);
        let err = convert(&name);
        assert!(err.contains("block size"), "{err}");
    }
    // A region past the end of the file (the table's checksum made valid again).
    let mut img = good.clone();
    for t in [192usize << 10, 256 << 10] {
        let n = le32(&img, t + 8) as usize;
        for e in 0..n {
            let e = t + 16 + 32 * e;
            if img[e..e + 16] == guid(GUID_BAT) {
                put64(&mut img, e + 16, 1 << 40);
            }
        }
        fix_crc(&mut img[t..t + (64 << 10)]);
    }
    write(d, "r.vhdx", &img);
    let err = convert("r.vhdx");
    assert!(err.contains("past the end"), "{err}");
    assert!(!path(d, "o.raw").exists());
}
