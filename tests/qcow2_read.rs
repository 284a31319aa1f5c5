//! Differential tests of the qcow2 reader against qemu-img: every image is made at test time by
//! qemu-img / qemu-io, read by vmdisk, and compared with qemu's own view (content, info, map).

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `qemu-img create -f qcow2 [-o OPTS] NAME SIZE` (plus extra args such as `-b`).
fn create(dir: &Path, name: &str, opts: &str, size: &str, extra: &[&str]) {
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend(extra);
    args.extend([name, size]);
    qemu_img(&args, dir);
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

/// One row of a map, reduced to what both tools must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    start: u64,
    length: u64,
    depth: u64,
    kind: Kind,
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
fn normalise(map: &Value) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![];
    for r in map.as_array().expect("map is an array") {
        let b = |k: &str| r[k].as_bool().unwrap_or_else(|| panic!("{k} in {r}"));
        let kind = if !b("present") {
            Kind::Unallocated
        } else if b("compressed") {
            Kind::Compressed
        } else if b("data") {
            Kind::Data(r["offset"].as_u64().expect("data rows have offsets"))
        } else {
            assert!(b("zero"), "present, no data, not zero: {r}");
            Kind::Zero
        };
        let row = Row {
            start: r["start"].as_u64().unwrap(),
            length: r["length"].as_u64().unwrap(),
            depth: r["depth"].as_u64().unwrap(),
            kind,
        };
        if let Some(last) = rows.last_mut() {
            assert_eq!(
                last.start + last.length,
                row.start,
                "rows must tile the disk"
            );
            let joins = last.depth == row.depth
                && match (&last.kind, &row.kind) {
                    (Kind::Data(a), Kind::Data(b)) => a + last.length == *b,
                    (a, b) => a == b,
                };
            if joins {
                last.length += row.length;
                continue;
            }
        }
        rows.push(row);
    }
    rows
}

/// vmdisk and qemu-img agree on `img`: converted content, virtual size, format details and map.
/// `files` are the files handed to vmdisk (the image and its backing files, in any order).
/// Returns vmdisk's info report.
fn verify(dir: &Path, img: &str, files: &[&str]) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();

    // Content: vmdisk's raw output is what qemu reads.
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.raw", dir);
    assert_eq!(
        std::fs::metadata(path(dir, "vmdisk-out.raw"))
            .unwrap()
            .len(),
        size,
        "raw output length of {img}"
    );
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();

    // info: size and the format-specific fields qemu reports.
    let info = info_json(files, dir);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");
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
    let theirs = normalise(&json(&qemu_img(&["map", "--output=json", img], dir)));
    let mut args = vec!["map", "--json"];
    args.extend(files);
    let ours = normalise(&json(&vmdisk(&args, dir)));
    assert_eq!(ours, theirs, "map of {img}");
    info
}

fn findings(info: &Value) -> Vec<(String, String, String)> {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding<'a>(all: &'a [(String, String, String)], code: &str) -> &'a (String, String, String) {
    all.iter()
        .find(|f| f.0 == code)
        .unwrap_or_else(|| panic!("no {code} finding in {all:?}"))
}

/// Files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `vmdisk convert` of `files` must fail with one line, leaving no file behind. Returns stderr.
fn convert_fails(dir: &Path, files: &[&str]) -> String {
    let before = listing(dir);
    let mut args = vec!["convert", "-O", "raw", "--output", "out.raw"];
    args.extend(files);
    let err = vmdisk_fails(&args, dir);
    assert_eq!(listing(dir), before, "convert left files behind: {err}");
    err
}

fn read_be64(file: &Path, at: u64) -> u64 {
    let b = std::fs::read(file).unwrap();
    u64::from_be_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
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
    create(dir, "ebase.qcow2", "", "1M", &[]);
    qemu_io("ebase.qcow2", &["write -P 0x77 0 1M"], dir);
    create(
        dir,
        "etop.qcow2",
        "extended_l2=on",
        "1M",
        &["-b", "ebase.qcow2", "-F", "qcow2"],
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
    let d = tmp();
    let dir = d.path();
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
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "dirty.raw",
            "lazy.qcow2",
        ],
        dir,
    );
    assert_same("lazy.qcow2", "dirty.raw", dir);
}

#[test]
fn preallocation_modes() {
    let d = tmp();
    let dir = d.path();
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

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn internal_snapshot_reads_active_layer() {
    let d = tmp();
    let dir = d.path();
    create(dir, "s.qcow2", "", "2M", &[]);
    qemu_io("s.qcow2", &["write -P 0x01 0 1M"], dir);
    qemu_img(&["snapshot", "-c", "snap1", "s.qcow2"], dir);
    qemu_io(
        "s.qcow2",
        &["write -P 0x02 64k 128k", "discard 512k 64k"],
        dir,
    );
    qemu_img(&["snapshot", "-c", "second one", "s.qcow2"], dir);
    qemu_io("s.qcow2", &["write -P 0x03 1M 4k"], dir);
    let info = verify(dir, "s.qcow2", &["s.qcow2"]);
    let snaps = info["format-specific"]["snapshots"].as_array().unwrap();
    let names: Vec<&str> = snaps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["snap1", "second one"]);
    // The active layer, not the snapshot: byte 64k is 0x02 and 1M is 0x03.
    vmdisk(
        &["convert", "-O", "raw", "--output", "s.raw", "s.qcow2"],
        dir,
    );
    let raw = std::fs::read(path(dir, "s.raw")).unwrap();
    assert_eq!((raw[0], raw[65536], raw[1 << 20]), (1, 2, 3));
}

// ---------------------------------------------------------------------------------------------
// Backing files

#[test]
fn backing_chain_of_three_in_any_order() {
    let d = tmp();
    let dir = d.path();
    create(dir, "base.qcow2", "cluster_size=4096", "3M", &[]);
    qemu_io("base.qcow2", &["write -P 0x0b 0 3M"], dir);
    create(
        dir,
        "mid.qcow2",
        "",
        "3M",
        &["-b", "base.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        "mid.qcow2",
        &["write -P 0x0c 1M 512k", "write -z 2M 64k"],
        dir,
    );
    create(
        dir,
        "top.qcow2",
        "compat=0.10",
        "3M",
        &["-b", "mid.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        "top.qcow2",
        &["write -P 0x0d 1200k 8k", "write -P 0x0e 0 4k"],
        dir,
    );
    for order in [
        ["top.qcow2", "mid.qcow2", "base.qcow2"],
        ["base.qcow2", "mid.qcow2", "top.qcow2"],
        ["mid.qcow2", "top.qcow2", "base.qcow2"],
    ] {
        let info = verify(dir, "top.qcow2", &order);
        let all = findings(&info);
        assert!(finding(&all, "backing-file").2.contains("mid.qcow2"));
        // The backing image's own finding is reported too, under its prefix.
        assert!(
            all.iter()
                .any(|f| f.0 == "backing-file" && f.2.contains("base.qcow2")),
            "{all:?}"
        );
        assert_eq!(info["safety"]["safe"], false);
        let roles: Vec<(String, String)> = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().into(),
                    f["role"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            roles.contains(&("top.qcow2".into(), "image".into())),
            "{roles:?}"
        );
        assert!(
            roles.contains(&("base.qcow2".into(), "backing".into())),
            "{roles:?}"
        );
        assert_eq!(info["format-specific"]["backing-file-format"], "qcow2");
    }
}

#[test]
fn raw_base_and_overlay_larger_than_backing() {
    let d = tmp();
    let dir = d.path();
    // A raw base with no holes (so qemu's map of it is all data, like ours).
    std::fs::write(path(dir, "base.raw"), noise(1024 * 1024, 5)).unwrap();
    create(dir, "mid.qcow2", "", "2M", &["-b", "base.raw", "-F", "raw"]);
    qemu_io(
        "mid.qcow2",
        &["write -P 0x21 512k 64k", "write -P 0x22 1536k 4k"],
        dir,
    );
    create(
        dir,
        "top.qcow2",
        "",
        "3M",
        &["-b", "mid.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        "top.qcow2",
        &["write -P 0x23 0 4k", "write -P 0x24 2900k 4k"],
        dir,
    );
    verify(dir, "top.qcow2", &["base.raw", "top.qcow2", "mid.qcow2"]);
    verify(dir, "mid.qcow2", &["mid.qcow2", "base.raw"]);
}

#[test]
fn declared_backing_format_is_honoured() {
    let d = tmp();
    let dir = d.path();
    create(dir, "inner.qcow2", "", "1M", &[]);
    qemu_io("inner.qcow2", &["write -P 0x31 0 64k"], dir);
    // The overlay says its backing file is raw: qemu reads the qcow2 file's bytes as the disk.
    create(
        dir,
        "over.qcow2",
        "",
        "1M",
        &["-b", "inner.qcow2", "-F", "raw"],
    );
    // (No map comparison: qemu maps the holes of the sparse file inner.qcow2 as zeros, which a
    // raw layer cannot know.)
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "o.raw",
            "over.qcow2",
            "inner.qcow2",
        ],
        dir,
    );
    assert_same("over.qcow2", "o.raw", dir);
    let raw = std::fs::read(path(dir, "o.raw")).unwrap();
    assert_eq!(
        &raw[..4],
        b"QFI\xfb",
        "the disk starts with the backing file's header"
    );
    let info = info_json(&["over.qcow2", "inner.qcow2"], dir);
    assert_eq!(info["convertible"], true);
    let all = findings(&info);
    assert!(finding(&all, "backing-format").2.contains("raw"), "{all:?}");
}

#[test]
fn missing_backing_file() {
    let d = tmp();
    let dir = d.path();
    create(dir, "base.qcow2", "", "1M", &[]);
    create(
        dir,
        "top.qcow2",
        "",
        "1M",
        &["-b", "base.qcow2", "-F", "qcow2"],
    );
    qemu_io("top.qcow2", &["write -P 0x41 0 4k"], dir);
    let info = info_json(&["top.qcow2"], dir);
    assert_eq!(info["convertible"], false);
    assert_eq!(info["safety"]["safe"], false);
    assert_eq!(info["format-specific"]["backing-file"], "base.qcow2");
    let all = findings(&info);
    let f = finding(&all, "backing-file");
    assert_eq!(f.1, "critical");
    assert!(
        f.2.contains("base.qcow2") && f.2.contains("not supplied"),
        "{f:?}"
    );
    let err = convert_fails(dir, &["top.qcow2"]);
    assert!(err.contains("base.qcow2"), "{err}");
    let err = vmdisk_fails(&["map", "--json", "top.qcow2"], dir);
    assert!(err.contains("base.qcow2"), "{err}");
}

#[test]
fn absolute_backing_path_resolves_by_base_name() {
    let d = tmp();
    let dir = d.path();
    create(dir, "base.qcow2", "", "1M", &[]);
    qemu_io("base.qcow2", &["write -P 0x51 0 1M"], dir);
    let abs = path(dir, "base.qcow2").to_string_lossy().into_owned();
    create(dir, "top.qcow2", "", "1M", &["-b", &abs, "-F", "qcow2"]);
    qemu_io("top.qcow2", &["write -P 0x52 4k 4k"], dir);
    let info = verify(dir, "top.qcow2", &["top.qcow2", "base.qcow2"]);
    assert_eq!(info["format-specific"]["backing-file"], abs.as_str());
    let all = findings(&info);
    let f = finding(&all, "backing-file");
    assert_eq!(f.1, "critical");
    assert!(f.2.contains(&abs) && f.2.contains("path"), "{f:?}");
}

#[test]
fn backing_loops_fail_cleanly() {
    let d = tmp();
    let dir = d.path();
    // An image naming itself, and two images naming each other.
    // (qemu-img refuses to create that, so name "selg.qcow2" and patch the name.)
    create(
        dir,
        "self.qcow2",
        "",
        "1M",
        &["-u", "-b", "selg.qcow2", "-F", "qcow2"],
    );
    let f = path(dir, "self.qcow2");
    write_at(&f, read_be64(&f, 8), b"self.qcow2");
    assert_eq!(
        qemu_info("self.qcow2", dir)["backing-filename"],
        "self.qcow2"
    );
    let err = vmdisk_fails(&["info", "self.qcow2"], dir);
    assert!(err.contains("itself"), "{err}");
    convert_fails(dir, &["self.qcow2"]);

    create(
        dir,
        "a.qcow2",
        "",
        "1M",
        &["-u", "-b", "b.qcow2", "-F", "qcow2"],
    );
    create(
        dir,
        "b.qcow2",
        "",
        "1M",
        &["-u", "-b", "a.qcow2", "-F", "qcow2"],
    );
    let err = vmdisk_fails(&["info", "a.qcow2", "b.qcow2"], dir);
    assert!(err.contains("deeper than"), "{err}");
    convert_fails(dir, &["b.qcow2", "a.qcow2"]);
}

// ---------------------------------------------------------------------------------------------
// Images vmdisk reports but refuses to read

#[test]
fn external_data_file_is_refused() {
    let d = tmp();
    let dir = d.path();
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
    let d = tmp();
    let dir = d.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "--object",
            "secret,id=s0,data=pw",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
            "luks.qcow2",
            "1M",
        ],
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
    let d = tmp();
    let dir = d.path();
    create(dir, "u.qcow2", "", "1M", &[]);
    qemu_io("u.qcow2", &["write -P 0x71 0 64k"], dir);
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
    vmdisk(
        &["convert", "-O", "raw", "--output", "c.raw", "c.qcow2"],
        dir,
    );
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

fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn be64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// A change made to a copy of the victim image.
type Patch = Box<dyn FnOnce(&Path)>;

fn damaged(dir: &Path, name: &str, change: impl FnOnce(&Path)) {
    std::fs::copy(path(dir, "victim.qcow2"), path(dir, name)).unwrap();
    change(&path(dir, name));
}

fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn malformed_headers_fail_to_open() {
    let d = tmp();
    let dir = d.path();
    let (l1, _) = victim(dir, "victim.qcow2");
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "half-header.qcow2",
            Box::new(|f| truncate(f, 52)),
            "truncated",
        ),
        (
            "mid-l1.qcow2",
            Box::new(move |f| truncate(f, l1 + 4)),
            "L1 table",
        ),
        (
            "l1-past-eof.qcow2",
            Box::new(|f| write_at(f, 40, &be64(1 << 40))),
            "L1 table",
        ),
        (
            "l1-unaligned.qcow2",
            Box::new(move |f| write_at(f, 40, &be64(l1 + 8))),
            "aligned",
        ),
        (
            "bits0.qcow2",
            Box::new(|f| write_at(f, 20, &be32(0))),
            "cluster_bits 0",
        ),
        (
            "bits40.qcow2",
            Box::new(|f| write_at(f, 20, &be32(40))),
            "cluster_bits 40",
        ),
        (
            "size-small-l1.qcow2",
            Box::new(|f| write_at(f, 24, &be64(1 << 45))),
            "L1 table has 1 entries",
        ),
        (
            "size-absurd.qcow2",
            Box::new(|f| write_at(f, 24, &be64(u64::MAX - 511))),
            "L1 entries",
        ),
        (
            "l1-size-huge.qcow2",
            Box::new(|f| write_at(f, 36, &be32(u32::MAX))),
            "L1 table",
        ),
        (
            "snapshots-huge.qcow2",
            Box::new(|f| write_at(f, 60, &be32(u32::MAX))),
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
            Box::new(|f| write_at(f, 48, &be64(1 << 40))),
            "refcount table",
        ),
        (
            "refcount-order.qcow2",
            Box::new(|f| write_at(f, 96, &be32(7))),
            "refcount_order",
        ),
        (
            "version9.qcow2",
            Box::new(|f| write_at(f, 4, &be32(9))),
            "version 9",
        ),
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
    let d = tmp();
    let dir = d.path();
    let (l1, l2) = victim(dir, "victim.qcow2");
    // (name, change, expected finding at open if any, expected convert error)
    let cases: Vec<(&str, Patch, Option<&str>, &str)> = vec![
        (
            "mid-l2.qcow2",
            Box::new(move |f| truncate(f, l2 + 100)),
            Some("truncated"),
            "past the end",
        ),
        (
            "l2-past-eof.qcow2",
            Box::new(move |f| write_at(f, l1, &be64(1 << 63 | 1 << 36))),
            Some("truncated"),
            "past the end",
        ),
        (
            "l2-at-header.qcow2",
            Box::new(move |f| write_at(f, l1, &be64(1 << 63))),
            Some("corrupt"),
            "the header",
        ),
        (
            "data-at-header.qcow2",
            Box::new(move |f| write_at(f, l2, &be64(1 << 63))),
            None,
            "the header",
        ),
        (
            "data-unaligned.qcow2",
            Box::new(move |f| write_at(f, l2, &be64(1 << 63 | (l2 + 512)))),
            None,
            "unaligned",
        ),
        (
            "data-past-eof.qcow2",
            Box::new(move |f| write_at(f, l2 + 8, &be64(1 << 63 | 1 << 40))),
            None,
            "past the end",
        ),
        (
            "subcluster-bits-on-v2-layout.qcow2",
            // Both allocated and... not applicable without extended L2: an L2 entry with the
            // zero flag and no offset is simply a zero cluster, so this one must succeed.
            Box::new(move |f| write_at(f, l2 + 16, &be64(1))),
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
    let d = tmp();
    let dir = d.path();
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

// ---------------------------------------------------------------------------------------------
// The driver through the library API: arbitrary (unaligned) map ranges

/// Open `files` with the library and return the opened set.
fn open_lib(dir: &Path, files: &[&str]) -> vmdisk::OpenedImage {
    let sources: Vec<std::rc::Rc<dyn vmdisk::Source>> = files
        .iter()
        .map(|f| {
            std::rc::Rc::new(vmdisk::native::FileSource::open(&path(dir, f)).unwrap())
                as std::rc::Rc<dyn vmdisk::Source>
        })
        .collect();
    vmdisk::native::block_on(vmdisk::open(vmdisk::ImageSet::new(sources))).unwrap()
}

/// The guest bytes `[start, start + len)` of a single-layer image, built from its map alone.
fn materialise(opened: &vmdisk::OpenedImage, start: u64, len: u64) -> Vec<u8> {
    use vmdisk::Mapping;
    let image = opened.image.as_deref().unwrap();
    let extents = vmdisk::native::block_on(image.map(start, len)).unwrap();
    let mut out = vec![];
    let mut pos = start;
    for e in &extents {
        assert_eq!(e.start, pos, "extents tile the range");
        assert!(e.len > 0);
        pos += e.len;
        match &e.mapping {
            Mapping::Zero | Mapping::Unallocated => out.resize(out.len() + e.len as usize, 0),
            Mapping::Data { file, offset } => {
                let mut buf = vec![0; e.len as usize];
                vmdisk::native::block_on(opened.set.file(*file).read_at(*offset, &mut buf))
                    .unwrap();
                out.extend(buf);
            }
            Mapping::Compressed {
                file,
                offset,
                len,
                codec,
                unit,
                skip,
            } => {
                let mut input = vec![0; *len as usize];
                vmdisk::native::block_on(opened.set.file(*file).read_at(*offset, &mut input))
                    .unwrap();
                let mut whole = vec![0; *unit as usize];
                vmdisk::codec::decompress(*codec, &input, &mut whole).unwrap();
                out.extend(&whole[*skip as usize..(*skip + e.len) as usize]);
            }
        }
    }
    assert_eq!(pos, start + len, "extents cover the range");
    out
}

#[test]
fn unaligned_map_ranges_match_qemu_content() {
    let d = tmp();
    let dir = d.path();
    let size = 1024 * 1024 + 2560;
    let mut data = text(size, 11);
    data[300_000..400_000].copy_from_slice(&noise(100_000, 12));
    data[600_000..700_000].fill(0);
    convert_from_raw(dir, "cz.qcow2", &data, &["-c", "-o", "cluster_size=16k"]);
    convert_from_raw(
        dir,
        "zs.qcow2",
        &data,
        &["-c", "-o", "compression_type=zstd"],
    );
    create(
        dir,
        "ex.qcow2",
        "extended_l2=on,cluster_size=32k",
        &size.to_string(),
        &[],
    );
    qemu_io(
        "ex.qcow2",
        &[
            "write -P 0x11 1k 3k",
            "write -z 40k 5k",
            "write -P 0x12 70k 40k",
        ],
        dir,
    );
    for img in ["cz.qcow2", "zs.qcow2", "ex.qcow2"] {
        qemu_img(&["convert", "-O", "raw", img, "ref.raw"], dir);
        let reference = std::fs::read(path(dir, "ref.raw")).unwrap();
        let opened = open_lib(dir, &[img]);
        let image = opened.image.as_deref().unwrap();
        assert_eq!(image.virtual_size(), size as u64);
        for (start, len) in [
            (0u64, size as u64),
            (1, 1),
            (5000, 70_000),
            (16_383, 2),
            (299_999, 100_002),
            (size as u64 - 3000, 3000),
            (size as u64 - 1, 1),
        ] {
            let got = materialise(&opened, start, len);
            assert!(
                got == reference[start as usize..(start + len) as usize],
                "{img}: bytes {start}+{len} differ"
            );
        }
        // Outside the disk is an error, not a panic.
        assert!(vmdisk::native::block_on(image.map(size as u64 - 1, 2)).is_err());
    }
}

#[test]
fn data_cluster_cut_by_end_of_file_reads_zeros_like_qemu() {
    let d = tmp();
    let dir = d.path();
    create(dir, "base.qcow2", "", "1M", &[]);
    qemu_io("base.qcow2", &["write -P 0x77 0 1M"], dir);
    create(
        dir,
        "top.qcow2",
        "",
        "1M",
        &["-b", "base.qcow2", "-F", "qcow2"],
    );
    qemu_io("top.qcow2", &["write -P 0x78 512k 64k"], dir);
    // The data cluster is the last one in the file: cut it in half. qemu reads zeros past the
    // end of the file (not the backing file's data), and so must vmdisk.
    let f = path(dir, "top.qcow2");
    let len = std::fs::metadata(&f).unwrap().len();
    truncate(&f, len - 32 * 1024);
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "o.raw",
            "top.qcow2",
            "base.qcow2",
        ],
        dir,
    );
    assert_same("top.qcow2", "o.raw", dir);
    let raw = std::fs::read(path(dir, "o.raw")).unwrap();
    assert_eq!(
        (raw[512 * 1024], raw[544 * 1024], raw[600 * 1024]),
        (0x78, 0, 0x77)
    );
}

#[test]
fn compressed_cluster_whose_last_sector_is_short() {
    let d = tmp();
    let dir = d.path();
    let size = 256 * 1024;
    convert_from_raw(dir, "short.qcow2", &text(size, 21), &["-c"]);
    // Drop the zero padding after the last compressed stream: the descriptor's sector count
    // now runs past the end of the file, which qemu tolerates (qcow2.txt: the data need not
    // fill the last sector).
    let f = path(dir, "short.qcow2");
    let bytes = std::fs::read(&f).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    assert!(end < bytes.len() as u64, "the file has padding to drop");
    assert!(!end.is_multiple_of(512), "the stream ends inside a sector");
    let l1 = read_be64(&f, 40);
    let l2 = read_be64(&f, l1) & 0x00ff_ffff_ffff_fe00;
    let last = read_be64(&f, l2 + 3 * 8);
    assert!(last & 1 << 62 != 0 && (last & ((1 << 54) - 1)) < end);
    truncate(&f, end);
    vmdisk(
        &["convert", "-O", "raw", "--output", "o.raw", "short.qcow2"],
        dir,
    );
    assert_same("short.qcow2", "o.raw", dir);
    let opened = open_lib(dir, &["short.qcow2"]);
    let got = materialise(&opened, 0, size as u64);
    assert!(got == text(size, 21));
}
