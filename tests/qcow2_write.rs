//! Differential tests of qcow2 output against qemu-img: `vmdisk convert -O qcow2` on raw disks
//! made at test time, then `qemu-img check` (no errors, no leaks), `qemu-img compare` (same
//! content), `qemu-img info` and `qemu-img map` (layout as asked).

mod common;
use common::*;
use std::path::Path;

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

/// A sparse raw disk of `size` bytes with `parts` written in.
fn raw(dir: &Path, name: &str, size: u64, parts: &[(u64, Vec<u8>)]) {
    let p = path(dir, name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    for (at, data) in parts {
        write_at(&p, *at, data);
    }
}

/// `vmdisk convert -O qcow2 EXTRA --output out in`, then check and compare with qemu-img.
fn convert_ok(dir: &Path, input: &str, out: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["convert", "-O", "qcow2"];
    args.extend(extra);
    args.extend(["--output", out, input]);
    vmdisk(&args, dir);
    assert_check_clean(out, dir);
    assert_same(input, out, dir);
    qemu_info(out, dir)
}

fn map(file: &str, dir: &Path) -> Vec<serde_json::Value> {
    json(&qemu_img(&["map", "--output=json", file], dir))
        .as_array()
        .unwrap()
        .clone()
}

/// The map row covering guest offset `at`.
fn row_at(rows: &[serde_json::Value], at: u64) -> &serde_json::Value {
    rows.iter()
        .find(|r| {
            let (s, l) = (r["start"].as_u64().unwrap(), r["length"].as_u64().unwrap());
            s <= at && at < s + l
        })
        .unwrap_or_else(|| panic!("no map row at {at}"))
}

fn len(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(path(dir, name)).unwrap().len()
}

#[test]
fn every_cluster_size_with_an_unaligned_end() {
    let dir = &scratch();
    // Not a multiple of any cluster size above 512; data in the very last sector.
    let size = 5 * M + 3 * 512;
    raw(
        dir,
        "in.raw",
        size,
        &[
            (0, noise(70_000, 1)),
            (M + 4 * K, text(300_000, 2)),
            (3 * M - 100, noise(200, 3)), // straddles cluster boundaries
            (size - 512, vec![0xAB; 512]),
        ],
    );
    for (cs, arg) in [
        (512u64, "512"),
        (4 * K, "4k"),
        (64 * K, "64k"),
        (2 * M, "2M"),
    ] {
        let out = format!("out-{arg}.qcow2");
        let info = convert_ok(dir, "in.raw", &out, &["--cluster-size", arg]);
        assert_eq!(info["virtual-size"], size, "{arg}");
        assert_eq!(info["cluster-size"], cs, "{arg}");
        let data = &info["format-specific"]["data"];
        assert_eq!(data["compat"], "1.1", "{arg}");
        assert_eq!(data["compression-type"], "zlib", "{arg}");
        assert_eq!(data["refcount-bits"], 16, "{arg}");
        // Every allocated cluster lies wholly inside the file.
        assert_eq!(len(dir, &out) % cs, 0, "{arg}");
        // The unaligned tail reads back through vmdisk too.
        assert_eq!(info_json(&[&out], dir)["virtual-size"], size);
    }
    // Default cluster size: 64 KiB.
    let info = convert_ok(dir, "in.raw", "default.qcow2", &[]);
    assert_eq!(info["cluster-size"], 65536);
}

/// qemu sees disks in whole sectors: a raw file of 1000 bytes is a 1024-byte disk to it, and
/// the qcow2 output says 1024 like `qemu-img convert`'s.
#[test]
fn a_partial_last_sector_is_rounded_up() {
    let dir = &scratch();
    let size = 3 * M + 1000;
    let parts = [(0, text(5000, 1)), (size - 700, noise(700, 2))];
    raw(dir, "in.raw", size, &parts);
    for extra in [&[][..], &["-c"]] {
        let info = convert_ok(dir, "in.raw", "out.qcow2", extra);
        assert_eq!(info["virtual-size"], 3 * M + 1024);
        std::fs::remove_file(path(dir, "out.qcow2")).unwrap();
    }
}

#[test]
fn compat_0_10_writes_version_2() {
    let dir = &scratch();
    raw(dir, "in.raw", 3 * M, &[(100 * K, text(500_000, 4))]);
    let info = convert_ok(dir, "in.raw", "v2.qcow2", &["--compat", "0.10"]);
    assert_eq!(info["format-specific"]["data"]["compat"], "0.10");
    let info = convert_ok(dir, "in.raw", "v2c.qcow2", &["--compat", "0.10", "-c"]);
    assert_eq!(info["format-specific"]["data"]["compat"], "0.10");
    assert!(
        map("v2c.qcow2", dir)
            .iter()
            .any(|r| r["compressed"] == true)
    );
    // The header is 72 bytes: version 2 and no header extension right after it.
    let head = std::fs::read(path(dir, "v2.qcow2")).unwrap();
    assert_eq!(&head[4..8], &[0, 0, 0, 2]);
    assert!(head[72..200].iter().all(|&b| b == 0));
}

#[test]
fn an_all_zero_disk_allocates_no_data() {
    let dir = &scratch();
    raw(dir, "zero.raw", 64 * M, &[(10 * M, vec![0; 1 << 20])]);
    for extra in [&[][..], &["-c"], &["--cluster-size", "512"]] {
        convert_ok(dir, "zero.raw", "zero.qcow2", extra);
        let rows = map("zero.qcow2", dir);
        assert!(
            rows.iter().all(|r| r["data"] == false),
            "{extra:?}: {rows:?}"
        );
        // Header, one refcount block, the L1 table and the refcount table.
        assert!(len(dir, "zero.qcow2") <= 4 * 64 * K, "{extra:?}");
        std::fs::remove_file(path(dir, "zero.qcow2")).unwrap();
    }
}

#[test]
fn zero_clusters_are_skipped_and_half_zero_clusters_kept() {
    let dir = &scratch();
    let c = 64 * K;
    raw(
        dir,
        "in.raw",
        8 * c,
        &[
            (c + c / 2, noise((c / 2) as usize, 5)), // cluster 1: zero, then data
            (3 * c, noise(100, 6)),                  // cluster 3: data, then zero
            (6 * c, vec![0; c as usize]),            // cluster 6: written zeros
            (8 * c - 1, vec![1]),                    // last byte
        ],
    );
    convert_ok(dir, "in.raw", "out.qcow2", &[]);
    let rows = map("out.qcow2", dir);
    for (cluster, data) in [
        (0, false),
        (1, true),
        (2, false),
        (3, true),
        (6, false),
        (7, true),
    ] {
        assert_eq!(
            row_at(&rows, cluster * c)["data"],
            data,
            "cluster {cluster}"
        );
    }
    // Header, refcount block, 3 data clusters, one L2 table, L1 and refcount table.
    assert_eq!(len(dir, "out.qcow2"), 8 * c);
}

#[test]
fn compression_shrinks_text_and_keeps_noise_plain() {
    let dir = &scratch();
    let size = 6 * M + 512;
    raw(
        dir,
        "in.raw",
        size,
        &[
            (0, text(2 * M as usize, 7)),
            (3 * M, noise(M as usize, 8)),
            (5 * M, text((M / 2) as usize, 9)),
            (size - 512, text(512, 10)), // a compressed tail cluster
        ],
    );
    let plain = convert_ok(dir, "in.raw", "plain.qcow2", &[]);
    assert_eq!(plain["format-specific"]["data"]["compression-type"], "zlib");
    for (kind, out) in [("zlib", "zlib.qcow2"), ("zstd", "zstd.qcow2")] {
        let info = convert_ok(dir, "in.raw", out, &["-c", "--compression-type", kind]);
        assert_eq!(info["format-specific"]["data"]["compression-type"], kind);
        assert_eq!(info["virtual-size"], size);
        let rows = map(out, dir);
        for at in [0, M, 5 * M, size - 1] {
            let r = row_at(&rows, at);
            assert_eq!(
                (&r["data"], &r["compressed"]),
                (&true.into(), &true.into()),
                "{kind} @{at}"
            );
        }
        // Incompressible clusters are stored as they are.
        let r = row_at(&rows, 3 * M + 100);
        assert_eq!(
            (&r["data"], &r["compressed"]),
            (&true.into(), &false.into()),
            "{kind}"
        );
        assert!(r["offset"].as_u64().unwrap().is_multiple_of(64 * K));
        // 2.5 MiB of text shrinks a lot; the 1 MiB of noise does not.
        let (c, p) = (len(dir, out), len(dir, "plain.qcow2"));
        assert!(c + 3 * M / 2 < p, "{kind}: {c} vs {p}");
        assert!(c > M, "{kind}: {c}");
        // vmdisk reads its own compressed output.
        assert_eq!(info_json(&[out], dir)["virtual-size"], size);
    }
    // The incompatible bit 3 (compression type) is set for zstd only.
    let head = std::fs::read(path(dir, "zstd.qcow2")).unwrap();
    assert_eq!(head[79], 1 << 3);
    assert_eq!(head[104], 1);
    let head = std::fs::read(path(dir, "zlib.qcow2")).unwrap();
    assert_eq!(head[79], 0);
    assert_eq!(u32::from_be_bytes(head[100..104].try_into().unwrap()), 112);
}

#[test]
fn incompressible_data_with_c_is_stored_uncompressed() {
    let dir = &scratch();
    raw(dir, "in.raw", 2 * M, &[(0, noise(2 * M as usize, 11))]);
    for kind in ["zlib", "zstd"] {
        convert_ok(
            dir,
            "in.raw",
            "out.qcow2",
            &["-c", "--compression-type", kind],
        );
        let rows = map("out.qcow2", dir);
        assert!(
            rows.iter().all(|r| r["compressed"] == false),
            "{kind}: {rows:?}"
        );
        assert!(rows.iter().all(|r| r["data"] == true), "{kind}: {rows:?}");
        std::fs::remove_file(path(dir, "out.qcow2")).unwrap();
    }
}

/// 512-byte clusters: an L2 table maps 32 KiB of guest and a refcount block covers 128 KiB
/// of file, so a few MiB need hundreds of each.
#[test]
fn many_l2_tables_and_refcount_blocks() {
    let dir = &scratch();
    let size = 9 * M + 512;
    let mut parts = vec![];
    for i in 0..24u64 {
        let at = i * 370 * K + i * 512;
        let part = if i % 2 == 0 {
            text(150_000, i)
        } else {
            noise(150_000, i)
        };
        parts.push((at, part));
    }
    parts.push((size - 512, noise(512, 99)));
    raw(dir, "in.raw", size, &parts);
    for extra in [
        &["--cluster-size", "512"][..],
        &["--cluster-size", "512", "-c"],
    ] {
        let info = convert_ok(dir, "in.raw", "out.qcow2", extra);
        assert_eq!(info["cluster-size"], 512);
        // Check that the layout needed many refcount blocks: the file spans more than
        // 128 KiB per block.
        assert!(len(dir, "out.qcow2") > 8 * 128 * K, "{extra:?}");
        std::fs::remove_file(path(dir, "out.qcow2")).unwrap();
    }
    let info = convert_ok(
        dir,
        "in.raw",
        "out.qcow2",
        &["--cluster-size", "512", "-c", "--compression-type", "zstd"],
    );
    assert_eq!(info["format-specific"]["data"]["compression-type"], "zstd");
}

#[test]
fn impossible_options_are_refused_before_writing() {
    let dir = &scratch();
    raw(dir, "in.raw", M, &[(0, text(1000, 1))]);
    let err = vmdisk_fails_line(
        "convert -O qcow2 --compat 0.10 -c --compression-type zstd --output out.qcow2 in.raw",
        dir,
    );
    assert!(err.contains("zstd") && err.contains("1.1"), "{err}");
    for bad in ["1000", "4M", "256", "0"] {
        let err = vmdisk_fails_line(
            &format!("convert -O qcow2 --cluster-size {bad} --output out.qcow2 in.raw"),
            dir,
        );
        assert!(err.contains("cluster size"), "{bad}: {err}");
    }
    assert_only_files(dir, &["in.raw"]);
}

#[test]
fn a_failed_conversion_leaves_nothing_behind() {
    let dir = &scratch();
    raw(
        dir,
        "in.raw",
        4 * M,
        &[(0, text(M as usize, 1)), (3 * M, noise(1000, 2))],
    );
    // The output path is a directory: everything is written, then the final rename fails.
    std::fs::create_dir(path(dir, "taken")).unwrap();
    std::fs::write(path(dir, "taken/keep"), b"keep").unwrap();
    vmdisk_fails_line("convert -O qcow2 -c --output taken in.raw", dir);
    assert_only_files(dir, &["in.raw", "taken"]);
    assert_eq!(std::fs::read(path(dir, "taken/keep")).unwrap(), b"keep");
    // An input that breaks mid-way: a qcow2 whose last data cluster was cut off.
    qemu_img(&["convert", "-O", "qcow2", "in.raw", "cut.qcow2"], dir);
    let cut = len(dir, "cut.qcow2");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path(dir, "cut.qcow2"))
        .unwrap()
        .set_len(cut - 200 * K)
        .unwrap();
    std::fs::write(path(dir, "old.qcow2"), b"previous output").unwrap();
    vmdisk_fails_line("convert -O qcow2 --output old.qcow2 cut.qcow2", dir);
    assert_eq!(
        std::fs::read(path(dir, "old.qcow2")).unwrap(),
        b"previous output"
    );
    assert_only_files(dir, &["in.raw", "taken", "cut.qcow2", "old.qcow2"]);
}

#[test]
fn never_overwrites_an_input() {
    let dir = &scratch();
    raw(dir, "in.raw", M, &[(0, text(5000, 1))]);
    let before = std::fs::read(path(dir, "in.raw")).unwrap();
    let err = vmdisk_fails_line("convert -O qcow2 --output in.raw in.raw", dir);
    assert!(err.contains("in.raw"), "{err}");
    std::os::unix::fs::symlink("in.raw", path(dir, "alias.raw")).unwrap();
    vmdisk_fails_line("convert -O qcow2 --output alias.raw in.raw", dir);
    assert_eq!(std::fs::read(path(dir, "in.raw")).unwrap(), before);
    assert_only_files(dir, &["in.raw", "alias.raw"]);
}
