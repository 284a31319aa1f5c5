//! Differential tests of the qcow2 reader against qemu-img: every image is made at test time by
//! qemu-img / qemu-io, read by vmdisk, and compared with qemu's own view (content, info, map).

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "qcow2_read/layers.rs"]
mod layers;
#[path = "qcow2_read/library.rs"]
mod library;
#[path = "qcow2_read/refused.rs"]
mod refused;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `qemu-img create -f qcow2 [-o OPTS] NAME SIZE` (plus extra args such as `-b`).
fn create(dir: &Path, name: &str, opts: &str, size: &str, extra: &[&str]) {
    create_image(dir, "qcow2", opts, extra, name, size);
}

/// qcow2 image `name` made by `qemu-img convert` from a raw file holding `data`.
fn convert_from_raw(dir: &Path, name: &str, data: &[u8], args: &[&str]) {
    let raw = format!("{name}.src.raw");
    std::fs::write(path(dir, &raw), data).unwrap();
    let mut a = vec!["convert", "-f", "raw", "-O", "qcow2"];
    a.extend(args);
    a.extend([raw.as_str(), name]);
    qemu_img(&a, dir);
    std::fs::remove_file(path(dir, &raw)).unwrap();
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// No layer stores it (reads as zeros).
    Unallocated,
    /// A layer says zeros.
    Zero,
    /// Stored verbatim at this host offset (of the layer at `depth`).
    Data(u64),
    Compressed,
}

/// Normalise `qemu-img map --output=json` or `vmdisk map --json` output and merge adjacent
/// rows that continue each other. qemu reports `zero: true` for stored clusters whose host
/// bytes are a hole in the file (preallocation); that is a property of the file system, so a
/// row with `data: true` counts as data. Offsets of rows without data are ignored (qemu prints
/// them for preallocated zero clusters and unallocated subclusters).
fn normalise(map: &Value) -> Vec<MapRow<Kind>> {
    let kind = |r: &Value| {
        let b = |k: &str| r[k].as_bool().unwrap_or_else(|| panic!("{k} in {r}"));
        if !b("present") {
            Kind::Unallocated
        } else if b("compressed") {
            Kind::Compressed
        } else if b("data") {
            Kind::Data(r["offset"].as_u64().expect("data rows have offsets"))
        } else {
            assert!(b("zero"), "present, no data, not zero: {r}");
            Kind::Zero
        }
    };
    let joins = |last: &MapRow<Kind>, row: &MapRow<Kind>| {
        last.depth == row.depth
            && match (&last.kind, &row.kind) {
                (Kind::Data(a), Kind::Data(b)) => a + last.length == *b,
                (a, b) => a == b,
            }
    };
    normalise_map(map, "rows must tile the disk", kind, joins)
}

/// vmdisk and qemu-img agree on `img`: converted content, virtual size, format details and map.
/// `files` are the files handed to vmdisk (the image and its backing files, in any order).
/// Returns vmdisk's info report.
fn verify(dir: &Path, img: &str, files: &[&str]) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();

    // Content: vmdisk's raw output is what qemu reads.
    let len_msg = format!("raw output length of {img}");
    assert_raw_like_qemu(dir, img, files, size, Some(&len_msg));

    // info: size and the format-specific fields qemu reports.
    let info = info_checked(dir, files, "qcow2", size);
    let ours = &info["format-specific"];
    let theirs = &q["format-specific"]["data"];
    for key in [
        "compat",
        "compression-type",
        "lazy-refcounts",
        "refcount-bits",
        "corrupt",
        "extended-l2",
    ] {
        if let Some(v) = theirs.get(key) {
            assert_eq!(&ours[key], v, "format-specific {key} of {img}: {info}");
        }
    }
    assert_eq!(ours["cluster-size"], q["cluster-size"], "{info}");
    let snaps = q.get("snapshots").and_then(Value::as_array);
    match snaps {
        Some(list) if !list.is_empty() => {
            let mine = ours["snapshots"].as_array().expect("snapshots listed");
            assert_eq!(mine.len(), list.len());
            for (a, b) in mine.iter().zip(list) {
                for key in [
                    "id",
                    "name",
                    "vm-state-size",
                    "date-sec",
                    "date-nsec",
                    "vm-clock-sec",
                    "vm-clock-nsec",
                ] {
                    assert_eq!(a[key], b[key], "snapshot {key}: {a} vs {b}");
                }
            }
        }
        _ => assert!(ours.get("snapshots").is_none(), "{info}"),
    }
    match q.get("backing-filename") {
        Some(b) => assert_eq!(&ours["backing-file"], b, "{info}"),
        None => assert!(ours.get("backing-file").is_none(), "{info}"),
    }

    // map: the same ranges, kinds, depths and host offsets.
    assert_map_like_qemu(dir, img, files, normalise);
    info
}

/// vmdisk's raw conversion of `files` (to `o.raw`), checked against qemu's reading of the first.
fn raw_like_qemu(dir: &Path, files: &[&str]) -> Vec<u8> {
    let mut args = vec!["convert", "-O", "raw", "--output", "o.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    assert_same(files[0], "o.raw", dir);
    std::fs::read(path(dir, "o.raw")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Versions, cluster sizes, zeros

/// Data scattered over the disk (including its last sector), zeroed and discarded ranges.
fn scatter(dir: &Path, img: &str, size: u64, cluster: u64, v3: bool) {
    let last = size - 512;
    let mut cmds = vec![
        "write -P 0x11 0 4k".to_string(),
        format!("write -P 0x22 {} 1536", cluster + 512),
        "write -P 0x33 300k 200k".to_string(),
        format!("write -P 0x44 {last} 512"),
        "write -P 0x55 1M 512k".to_string(),
        "write -z 1100k 100k".to_string(),
        "discard 1400k 64k".to_string(),
    ];
    if v3 {
        // Zero flag on unallocated and on allocated clusters.
        cmds.push("write -z 2M 256k".to_string());
        cmds.push("write -z 320k 64k".to_string());
    }
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io(img, &refs, dir);
}

fn versions_and_cluster_sizes(compat: &str) {
    let dir = &scratch();
    for (cluster, size) in [
        (512u64, 3 * 1024 * 1024 + 1536),
        (4096, 3 * 1024 * 1024 + 1536),
        (65536, 3 * 1024 * 1024 + 4096 + 512),
        (2 << 20, 5 * 1024 * 1024 + 512),
    ] {
        let img = format!("c{cluster}.qcow2");
        create(
            dir,
            &img,
            &format!("compat={compat},cluster_size={cluster}"),
            &size.to_string(),
            &[],
        );
        scatter(dir, &img, size, cluster, compat == "1.1");
        let info = verify(dir, &img, &[&img]);
        assert_eq!(info["format-specific"]["cluster-size"], cluster);
        assert_eq!(info["safety"]["safe"], true, "{info}");
    }
}

#[test]
fn v2_cluster_sizes() {
    versions_and_cluster_sizes("0.10");
}

#[test]
fn v3_cluster_sizes() {
    versions_and_cluster_sizes("1.1");
}

#[test]
fn zero_runs_and_half_zero_clusters_from_raw() {
    let dir = &scratch();
    let size = 2 * 1024 * 1024 + 3 * 512;
    let mut data = noise(size, 7);
    data[64 * 1024..96 * 1024].fill(0); // half of a 64k cluster
    data[200 * 1024..700 * 1024].fill(0); // whole clusters
    data[size - 1024..size - 512].fill(0); // the last sector keeps data
    for (name, compat) in [("z2.qcow2", "0.10"), ("z3.qcow2", "1.1")] {
        convert_from_raw(dir, name, &data, &["-o", &format!("compat={compat}")]);
        verify(dir, name, &[name]);
    }
    // The zero flag keeping a preallocated host cluster, and with the cluster released.
    qemu_io(
        "z3.qcow2",
        &[
            "write -z 0 128k",
            "write -z -u 1M 128k",
            "write -P 0 1600k 64k",
        ],
        dir,
    );
    verify(dir, "z3.qcow2", &["z3.qcow2"]);
}

// ---------------------------------------------------------------------------------------------
// Compression

#[test]
fn compressed_zlib_and_zstd() {
    let dir = &scratch();
    // Compressible text, an incompressible stretch (stored uncompressed), a zero run, and a
    // size that ends mid-cluster: the last compressed cluster is partial.
    let size = 3 * 1024 * 1024 + 2560;
    let mut data = text(size, 3);
    data[512 * 1024..640 * 1024].copy_from_slice(&noise(128 * 1024, 9));
    data[1024 * 1024..1536 * 1024].fill(0);
    for (name, opts, codec) in [
        ("zlib64k.qcow2", "cluster_size=65536", "zlib"),
        ("zlib512.qcow2", "cluster_size=512", "zlib"),
        ("zlib2m.qcow2", "cluster_size=2M", "zlib"),
        ("zlibv2.qcow2", "compat=0.10,cluster_size=4096", "zlib"),
        ("zstd64k.qcow2", "compression_type=zstd", "zstd"),
        (
            "zstd4k.qcow2",
            "compression_type=zstd,cluster_size=4096",
            "zstd",
        ),
    ] {
        convert_from_raw(dir, name, &data, &["-c", "-o", opts]);
        let info = verify(dir, name, &[name]);
        assert_eq!(info["format-specific"]["compression-type"], codec);
        let map = json(&vmdisk(&["map", "--json", name], dir));
        assert!(
            map.as_array()
                .unwrap()
                .iter()
                .any(|r| r["compressed"] == true),
            "{name} has compressed clusters"
        );
    }
    // Compressed and plain clusters mixed, and a compressed cluster overwritten in part.
    qemu_io(
        "zstd64k.qcow2",
        &["write -P 0x66 70000 5000", "write -z 200k 64k"],
        dir,
    );
    verify(dir, "zstd64k.qcow2", &["zstd64k.qcow2"]);
}

// ---------------------------------------------------------------------------------------------
// Extended L2 entries, refcount widths, lazy refcounts, preallocation

#[test]
fn extended_l2_subclusters() {
    let dir = &scratch();
    for (name, cluster) in [
        ("e64k.qcow2", 65536u64),
        ("e32k.qcow2", 32768),
        ("e2m.qcow2", 2 << 20),
    ] {
        let sub = cluster / 32;
        let size = (4 << 20).max(3 * cluster) + 1024;
        create(
            dir,
            name,
            &format!("extended_l2=on,cluster_size={cluster}"),
            &size.to_string(),
            &[],
        );
        let cmds = [
            format!("write -P 0x11 {sub} {sub}"),
            format!("write -P 0x22 {} {}", 3 * sub, 2 * sub),
            format!("write -z {} {}", 8 * sub, 4 * sub),
            format!("write -P 0x33 {} {}", cluster + 31 * sub, 2 * sub),
            format!("write -P 0x44 {} 512", size - 512),
            format!("discard {} {}", 4 * sub, sub),
            "write -P 0x55 2M 100k".to_string(),
            format!("write -z {} {}", 2 * 1024 * 1024 + 2 * sub, sub),
        ];
        let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
        qemu_io(name, &refs, dir);
        let info = verify(dir, name, &[name]);
        assert_eq!(info["format-specific"]["extended-l2"], true);
    }
    // Unallocated subclusters of an overlay read from its backing file.
    written_image(dir, "qcow2", "ebase.qcow2", "1M", &["write -P 0x77 0 1M"]);
    create_overlay(
        dir,
        "qcow2",
        "extended_l2=on",
        "etop.qcow2",
        "1M",
        ("ebase.qcow2", "qcow2"),
    );
    qemu_io(
        "etop.qcow2",
        &[
            "write -P 0x88 2k 2k",
            "write -z 8k 4k",
            "write -P 0x99 70k 6k",
        ],
        dir,
    );
    verify(dir, "etop.qcow2", &["ebase.qcow2", "etop.qcow2"]);
}

#[test]
fn refcount_widths_and_lazy_refcounts() {
    let dir = &scratch();
    for (name, opts, bits) in [
        ("r1.qcow2", "refcount_bits=1", 1),
        ("r64.qcow2", "refcount_bits=64", 64),
        ("r8v3.qcow2", "refcount_bits=8,cluster_size=4096", 8),
        ("lazy.qcow2", "lazy_refcounts=on", 16),
    ] {
        create(dir, name, opts, "2M", &[]);
        qemu_io(name, &["write -P 0x5a 4k 300k", "write -P 0xa5 1M 4k"], dir);
        let info = verify(dir, name, &[name]);
        assert_eq!(info["format-specific"]["refcount-bits"], bits);
    }
    let info = info_json(&["lazy.qcow2"], dir);
    assert_eq!(info["format-specific"]["lazy-refcounts"], true);
    assert_eq!(info["format-specific"]["dirty"], false);

    // A dirty image (incompatible bit 0, as left by a crash with lazy refcounts): reported,
    // still readable.
    let f = path(dir, "lazy.qcow2");
    let incompat = read_be64(&f, 72);
    write_at(&f, 72, &(incompat | 1).to_be_bytes());
    assert_eq!(qemu_info("lazy.qcow2", dir)["dirty-flag"], true);
    let info = info_json(&["lazy.qcow2"], dir);
    assert_eq!(info["format-specific"]["dirty"], true);
    let all = findings(&info);
    assert_eq!(finding(&all, "dirty").1, "warning");
    assert_eq!(info["convertible"], true);
    vmdisk_line("convert -O raw --output dirty.raw lazy.qcow2", dir);
    assert_same("lazy.qcow2", "dirty.raw", dir);
}

#[test]
fn preallocation_modes() {
    let dir = &scratch();
    for (name, opts) in [
        ("pm3.qcow2", "preallocation=metadata"),
        ("pm2.qcow2", "preallocation=metadata,compat=0.10"),
        ("pf.qcow2", "preallocation=falloc"),
        ("pfull.qcow2", "preallocation=full,cluster_size=4096"),
    ] {
        create(dir, name, opts, &(2 * 1024 * 1024 + 512).to_string(), &[]);
        qemu_io(name, &["write -P 0x3c 100k 50k", "write -z 1M 64k"], dir);
        verify(dir, name, &[name]);
    }
}
