//! Images vmdisk reports but refuses to read (external data file, encryption, unknown features),
//! and malformed images built by patching real ones: each must fail with one clean line.

use super::*;

// ---------------------------------------------------------------------------------------------
// Images vmdisk reports but refuses to read

#[test]
fn external_data_file_is_refused() {
    let dir = &scratch();
    create(dir, "df.qcow2", "data_file=df.raw", "1M", &[]);
    qemu_io("df.qcow2", &["write -P 0x61 0 64k"], dir);
    let info = info_json(&["df.qcow2"], dir);
    assert_eq!(info["convertible"], false);
    assert_eq!(info["format-specific"]["data-file"], "df.raw");
    let all = findings(&info);
    let f = finding(&all, "data-file");
    assert_eq!(f.1, "critical");
    assert!(f.2.contains("df.raw"), "{f:?}");
    let err = convert_fails(dir, &["df.qcow2"]);
    assert!(err.contains("external data file"), "{err}");
    // Supplying the data file does not change that.
    convert_fails(dir, &["df.qcow2", "df.raw"]);
}

#[test]
fn encrypted_image_is_refused() {
    let dir = &scratch();
    qemu_img_line(
        "create -q -f qcow2 --object secret,id=s0,data=pw -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 luks.qcow2 1M",
        dir,
    );
    let info = info_json(&["luks.qcow2"], dir);
    assert_eq!(info["convertible"], false);
    assert_eq!(info["format-specific"]["encrypted"], true);
    assert_eq!(info["format-specific"]["encryption-format"], "luks");
    let all = findings(&info);
    assert_eq!(finding(&all, "encrypted").1, "critical");
    let err = convert_fails(dir, &["luks.qcow2"]);
    assert!(err.contains("encrypted"), "{err}");

    // Legacy AES (crypt_method 1), made by patching a plain image.
    create(dir, "aes.qcow2", "", "1M", &[]);
    write_at(&path(dir, "aes.qcow2"), 32, &1u32.to_be_bytes());
    let info = info_json(&["aes.qcow2"], dir);
    assert_eq!(info["format-specific"]["encryption-format"], "aes");
    assert_eq!(info["convertible"], false);
    convert_fails(dir, &["aes.qcow2"]);
}

#[test]
fn unknown_feature_and_corrupt_bit() {
    let dir = &scratch();
    written_image(dir, "qcow2", "u.qcow2", "1M", &["write -P 0x71 0 64k"]);
    std::fs::copy(path(dir, "u.qcow2"), path(dir, "c.qcow2")).unwrap();
    std::fs::copy(path(dir, "u.qcow2"), path(dir, "clean.qcow2")).unwrap();
    let u = path(dir, "u.qcow2");
    write_at(&u, 72, &(read_be64(&u, 72) | 1 << 40).to_be_bytes());
    let info = info_json(&["u.qcow2"], dir);
    assert_eq!(info["convertible"], false);
    let all = findings(&info);
    let f = finding(&all, "unknown-feature");
    assert!(f.1 == "critical" && f.2.contains("bit 40"), "{f:?}");
    let err = convert_fails(dir, &["u.qcow2"]);
    assert!(err.contains("not supported"), "{err}");

    // The corrupt bit: reported, but qemu reads such images and so do we.
    let c = path(dir, "c.qcow2");
    write_at(&c, 72, &(read_be64(&c, 72) | 2).to_be_bytes());
    let info = info_json(&["c.qcow2"], dir);
    assert_eq!(info["format-specific"]["corrupt"], true);
    assert_eq!(info["convertible"], true);
    assert_eq!(finding(&findings(&info), "corrupt").1, "critical");
    vmdisk_line("convert -O raw --output c.raw c.qcow2", dir);
    assert_same("clean.qcow2", "c.raw", dir);
}

// ---------------------------------------------------------------------------------------------
// Malformed images: built by patching real ones, each must fail with one clean line.

/// A 4 MiB, 64k-cluster image with data in the first cluster and at 1M. Returns
/// (L1 table offset, L2 table offset of L1 entry 0).
fn victim(dir: &Path, name: &str) -> (u64, u64) {
    create(dir, name, "", "4M", &[]);
    qemu_io(name, &["write -P 0x81 0 64k", "write -P 0x82 1M 64k"], dir);
    let f = path(dir, name);
    let l1 = read_be64(&f, 40);
    let l2 = read_be64(&f, l1) & 0x00ff_ffff_ffff_fe00;
    assert!(l1 > 0 && l2 > 0);
    (l1, l2)
}

/// A change made to a copy of the victim image.
type Patch = Box<dyn FnOnce(&Path)>;

/// A patch writing `bytes` at `offset`.
fn put_at(offset: u64, bytes: Vec<u8>) -> Patch {
    Box::new(move |f| write_at(f, offset, &bytes))
}

/// A patch cutting the file to `len` bytes.
fn cut_to(len: u64) -> Patch {
    Box::new(move |f| truncate(f, len))
}

fn damaged(dir: &Path, name: &str, change: impl FnOnce(&Path)) {
    std::fs::copy(path(dir, "victim.qcow2"), path(dir, name)).unwrap();
    change(&path(dir, name));
}

#[test]
fn malformed_headers_fail_to_open() {
    let dir = &scratch();
    let (l1, _) = victim(dir, "victim.qcow2");
    let cases: Vec<(&str, Patch, &str)> = vec![
        ("half-header.qcow2", cut_to(52), "truncated"),
        ("mid-l1.qcow2", cut_to(l1 + 4), "L1 table"),
        ("l1-past-eof.qcow2", put_at(40, be64(1 << 40)), "L1 table"),
        ("l1-unaligned.qcow2", put_at(40, be64(l1 + 8)), "aligned"),
        ("bits0.qcow2", put_at(20, be32(0)), "cluster_bits 0"),
        ("bits40.qcow2", put_at(20, be32(40)), "cluster_bits 40"),
        (
            "size-small-l1.qcow2",
            put_at(24, be64(1 << 45)),
            "L1 table has 1 entries",
        ),
        (
            "size-absurd.qcow2",
            put_at(24, be64(u64::MAX - 511)),
            "L1 entries",
        ),
        ("l1-size-huge.qcow2", put_at(36, be32(u32::MAX)), "L1 table"),
        (
            "snapshots-huge.qcow2",
            put_at(60, be32(u32::MAX)),
            "snapshots",
        ),
        (
            "snapshots-past-eof.qcow2",
            Box::new(|f| {
                write_at(f, 60, &be32(1000));
                write_at(f, 64, &be64(1 << 30));
            }),
            "snapshot",
        ),
        (
            "backing-size-huge.qcow2",
            Box::new(|f| {
                write_at(f, 8, &be64(512));
                write_at(f, 16, &be32(u32::MAX));
            }),
            "backing file name",
        ),
        (
            "backing-outside-header.qcow2",
            Box::new(|f| {
                write_at(f, 8, &be64(65536 - 10));
                write_at(f, 16, &be32(20));
            }),
            "header cluster",
        ),
        (
            "reftable-past-eof.qcow2",
            put_at(48, be64(1 << 40)),
            "refcount table",
        ),
        (
            "refcount-order.qcow2",
            put_at(96, be32(7)),
            "refcount_order",
        ),
        ("version9.qcow2", put_at(4, be32(9)), "version 9"),
    ];
    for (name, change, expect) in cases {
        damaged(dir, name, change);
        let err = vmdisk_fails(&["info", name], dir);
        assert!(err.contains(expect), "{name}: {err}");
        convert_fails(dir, &[name]);
        std::fs::remove_file(path(dir, name)).unwrap();
    }
}

#[test]
fn malformed_tables_fail_to_convert() {
    let dir = &scratch();
    let (l1, l2) = victim(dir, "victim.qcow2");
    // (name, change, expected finding at open if any, expected convert error); the integrity
    // walk at open (formats/common/intact.rs) finds damaged L2 entries too.
    let cases: Vec<(&str, Patch, Option<&str>, &str)> = vec![
        (
            "mid-l2.qcow2",
            cut_to(l2 + 100),
            Some("truncated"),
            "past the end",
        ),
        (
            "l2-past-eof.qcow2",
            put_at(l1, be64(1 << 63 | 1 << 36)),
            Some("truncated"),
            "past the end",
        ),
        (
            "l2-at-header.qcow2",
            put_at(l1, be64(1 << 63)),
            Some("corrupt"),
            "the header",
        ),
        (
            "data-at-header.qcow2",
            put_at(l2, be64(1 << 63)),
            Some("corrupt"),
            "the header",
        ),
        (
            "data-unaligned.qcow2",
            put_at(l2, be64(1 << 63 | (l2 + 512))),
            Some("corrupt"),
            "unaligned",
        ),
        (
            "data-past-eof.qcow2",
            put_at(l2 + 8, be64(1 << 63 | 1 << 40)),
            Some("truncated"),
            "past the end",
        ),
        (
            "subcluster-bits-on-v2-layout.qcow2",
            // Both allocated and... not applicable without extended L2: an L2 entry with the
            // zero flag and no offset is simply a zero cluster, so this one must succeed.
            put_at(l2 + 16, be64(1)),
            None,
            "",
        ),
    ];
    for (name, change, at_open, expect) in cases {
        damaged(dir, name, change);
        let info = info_json(&[name], dir);
        if expect.is_empty() {
            assert_eq!(info["convertible"], true, "{name}: {info}");
            vmdisk(&["convert", "-O", "raw", "--output", "ok.raw", name], dir);
            assert_same(name, "ok.raw", dir);
            continue;
        }
        match at_open {
            Some(code) => {
                assert_eq!(info["convertible"], false, "{name}: {info}");
                assert_eq!(finding(&findings(&info), code).1, "critical", "{name}");
            }
            None => assert_eq!(info["convertible"], true, "{name}: {info}"),
        }
        let err = convert_fails(dir, &[name]);
        assert!(err.contains(expect), "{name}: {err}");
        vmdisk_fails(&["map", "--json", name], dir);
        std::fs::remove_file(path(dir, name)).unwrap();
    }
}

#[test]
fn compressed_cluster_past_eof() {
    let dir = &scratch();
    convert_from_raw(dir, "cz.qcow2", &text(1024 * 1024, 1), &["-c"]);
    let f = path(dir, "cz.qcow2");
    let l1 = read_be64(&f, 40);
    let l2 = read_be64(&f, l1) & 0x00ff_ffff_ffff_fe00;
    let entry = read_be64(&f, l2);
    assert!(entry & 1 << 62 != 0, "first cluster is compressed");
    // 64k clusters: bits 0..53 hold the offset. Point it past the end, keep the sector count.
    let x = 62 - (16 - 8);
    let len = std::fs::metadata(&f).unwrap().len();
    let patched = (entry & !((1u64 << x) - 1)) | (len + 4096);
    write_at(&f, l2, &patched.to_be_bytes());
    let err = convert_fails(dir, &["cz.qcow2"]);
    assert!(err.contains("past the end"), "{err}");
    // A file cut inside the last compressed cluster's data: the descriptor's sector count is
    // clamped to the end of the file, and the short stream fails to inflate.
    convert_from_raw(dir, "cut.qcow2", &text(512 * 1024, 2), &["-c"]);
    let f = path(dir, "cut.qcow2");
    let l1 = read_be64(&f, 40);
    let l2 = read_be64(&f, l1) & 0x00ff_ffff_ffff_fe00;
    let last = read_be64(&f, l2 + 7 * 8);
    assert!(last & 1 << 62 != 0, "cluster 7 is compressed");
    truncate(&f, (last & ((1u64 << x) - 1)) + 50);
    let err = convert_fails(dir, &["cut.qcow2"]);
    assert!(
        err.contains("compressed") || err.contains("truncated"),
        "{err}"
    );
}
