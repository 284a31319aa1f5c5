//! qcow (version 1), QED and Parallels: differential tests against qemu-img on images it makes,
//! hand-built fixtures for what it cannot make, and damaged images that must fail cleanly.
mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// One row of a map, reduced to what both tools must agree on (see tests/qcow2_read.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    start: u64,
    length: u64,
    depth: u64,
    present: bool,
    zero: bool,
    data: bool,
}

/// Normalise `qemu-img map --output=json` or `vmdisk map --json`: merge equal neighbours.
fn normalise(map: &Value) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![];
    for r in map.as_array().expect("map is an array") {
        let b = |k: &str| r[k].as_bool().unwrap_or_else(|| panic!("{k} in {r}"));
        let row = Row {
            start: r["start"].as_u64().unwrap(),
            length: r["length"].as_u64().unwrap(),
            depth: r["depth"].as_u64().unwrap(),
            present: b("present"),
            zero: b("zero") && !b("data"),
            data: b("data"),
        };
        if let Some(last) = rows.last_mut() {
            assert_eq!(last.start + last.length, row.start, "rows tile the disk");
            let (mut a, mut b) = (last.clone(), row.clone());
            (a.start, a.length, b.start, b.length) = (0, 0, 0, 0);
            if a == b {
                last.length += row.length;
                continue;
            }
        }
        rows.push(row);
    }
    rows
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

fn has(info: &Value, code: &str, severity: &str) -> bool {
    codes(info).contains(&(code.to_string(), severity.to_string()))
}

/// vmdisk and qemu-img agree on `img` (handed over with `files`): converted content, virtual
/// size and map. Returns vmdisk's info report.
fn verify(dir: &Path, img: &str, files: &[&str], format: &str) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.raw", dir);
    let out_len = std::fs::metadata(path(dir, "vmdisk-out.raw"))
        .unwrap()
        .len();
    assert_eq!(out_len, size, "raw output length of {img}");
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();

    let info = info_json(files, dir);
    assert_eq!(info["format"], format, "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");
    if let Some(cs) = q["cluster-size"].as_u64() {
        assert_eq!(info["format-specific"]["cluster-size"], cs, "{info}");
    }

    let theirs = normalise(&json(&qemu_img(&["map", "--output=json", img], dir)));
    let mut args = vec!["map", "--json"];
    args.extend(files);
    let ours = normalise(&json(&vmdisk(&args, dir)));
    assert_eq!(ours, theirs, "map of {img}");
    info
}

/// A raw file `name` of `size` bytes with text, noise and holes, data in the last sector.
fn raw_file(dir: &Path, name: &str, size: u64, seed: u64) {
    let p = path(dir, name);
    write_at(&p, 0, &text(70_000, seed));
    write_at(&p, size / 3, &noise(50_000, seed));
    write_at(&p, size / 2 + 1234, &text(300_000, seed + 1));
    write_at(&p, size - 700, &noise(700, seed + 2));
}

/// `vmdisk info` either fails cleanly or reports the image unconvertible, and `convert` fails
/// with one line and leaves no output.
fn fails_cleanly(dir: &Path, file: &str) -> String {
    let out = run(vmdisk_bin(), &["info", "--json", file], dir);
    if out.status.success() {
        let info = json(&String::from_utf8_lossy(&out.stdout));
        let critical = codes(&info).iter().any(|(_, s)| s == "critical");
        assert!(
            info["convertible"] == false || critical,
            "damaged {file} looks fine: {info}"
        );
    } else {
        let err = vmdisk_fails(&["info", file], dir);
        assert!(!err.is_empty());
    }
    let before: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "bad-out.raw", file],
        dir,
    );
    let names: Vec<&str> = before.iter().map(String::as_str).collect();
    assert_only_files(dir, &names);
    err
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(path(dir, name)).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(path(dir, name), data).unwrap();
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

// ---- qcow (version 1) ------------------------------------------------------------------------

#[test]
fn qcow_made_by_qemu_img() {
    let d = tmp();
    let dir = d.path();
    for (i, size) in ["5M", "3000k"].iter().enumerate() {
        let img = format!("a{i}.qcow");
        qemu_img(&["create", "-q", "-f", "qcow", &img, size], dir);
        let vs = qemu_info(&img, dir)["virtual-size"].as_u64().unwrap();
        let last = format!("write -P 0xcd {} 512", vs - 512);
        qemu_io(
            &img,
            &["write -P 0xab 0 100k", "write -P 0x11 1M 3k", &last],
            dir,
        );
        let info = verify(dir, &img, &[&img], "qcow");
        let fs = &info["format-specific"];
        assert_eq!(fs["version"], 1, "{info}");
        assert_eq!(fs["encrypted"], false, "{info}");
        assert_eq!(fs["cluster-size"], 4096, "{info}");
        assert_eq!(info["safety"]["safe"], true, "{info}");
    }
    // An odd size: qemu-img rounds it up to whole sectors, and the last cluster is partial.
    // (qemu-io cannot write that last partial cluster, it fails with EIO: convert instead.)
    qemu_img(&["create", "-q", "-f", "qcow", "odd.qcow", "1000001"], dir);
    assert_eq!(qemu_info("odd.qcow", dir)["virtual-size"], 1000448);
    let p = path(dir, "odd.raw");
    write_at(&p, 0, &noise(1000448, 9));
    qemu_img(
        &[
            "convert", "-q", "-f", "raw", "-O", "qcow", "odd.raw", "odd.qcow",
        ],
        dir,
    );
    verify(dir, "odd.qcow", &["odd.qcow"], "qcow");
    assert_same("odd.raw", "odd.qcow", dir);
    // A header size that is not a multiple of 512: qemu keeps whole sectors only, as we do.
    let mut b = read(dir, "odd.qcow");
    put(&mut b, 24, &1000001u64.to_be_bytes());
    write(dir, "odd2.qcow", &b);
    assert_eq!(qemu_info("odd2.qcow", dir)["virtual-size"], 999936);
    verify(dir, "odd2.qcow", &["odd2.qcow"], "qcow");
}

#[test]
fn qcow_compressed_clusters() {
    let d = tmp();
    let dir = d.path();
    // `qemu-img convert -c -O qcow` fails (exit 1, no message) in qemu 10, so compressed
    // clusters are written one by one with qemu-io, between plain ones.
    qemu_img(&["create", "-q", "-f", "qcow", "c.qcow", "2M"], dir);
    let mut cmds = vec![];
    for k in 0..40u64 {
        let flag = if k % 3 == 2 { "" } else { "-c " };
        cmds.push(format!("write {flag}-P {:#x} {} 4k", 0x10 + k, k * 12288));
    }
    cmds.push("write -c -P 0xee 2093056 4k".into());
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io("c.qcow", &cmds, dir);
    verify(dir, "c.qcow", &["c.qcow"], "qcow");
    let map = json(&vmdisk(&["map", "--json", "c.qcow"], dir));
    let compressed = map
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["compressed"] == true)
        .count();
    assert!(
        compressed >= 27,
        "compressed clusters are mapped as such: {map}"
    );
    let theirs = json(&qemu_img(&["map", "--output=json", "c.qcow"], dir));
    let theirs = theirs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["compressed"] == true)
        .count();
    assert_eq!(compressed, theirs);
}

#[test]
fn qcow_backing_files() {
    let d = tmp();
    let dir = d.path();
    qemu_img(&["create", "-q", "-f", "qcow", "base.qcow", "4M"], dir);
    qemu_io(
        "base.qcow",
        &["write -P 0x22 0 2M", "write -P 0x33 3M 1M"],
        dir,
    );
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow",
            "-b",
            "base.qcow",
            "-F",
            "qcow",
            "top.qcow",
            "4M",
        ],
        dir,
    );
    qemu_io(
        "top.qcow",
        &["write -P 0x44 64k 64k", "write -P 0x55 4095k 1k"],
        dir,
    );
    // Any order of files.
    let info = verify(dir, "top.qcow", &["base.qcow", "top.qcow"], "qcow");
    assert!(has(&info, "backing-file", "critical"), "{info}");
    assert_eq!(info["safety"]["safe"], false);
    assert_eq!(info["format-specific"]["backing-file"], "base.qcow");
    let roles: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["backing", "image"]);

    // A raw backing file.
    raw_file(dir, "base.raw", 2 << 20, 3);
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow",
            "-b",
            "base.raw",
            "-F",
            "raw",
            "over.qcow",
            "3M",
        ],
        dir,
    );
    qemu_io("over.qcow", &["write -P 0x66 1M 8k"], dir);
    verify(dir, "over.qcow", &["over.qcow", "base.raw"], "qcow");

    // The backing file not supplied: info works, convert fails naming it, writes nothing.
    let sub = tmp();
    std::fs::copy(path(dir, "top.qcow"), path(sub.path(), "top.qcow")).unwrap();
    let info = info_json(&["top.qcow"], sub.path());
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has(&info, "backing-file", "critical"), "{info}");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "top.qcow"],
        sub.path(),
    );
    assert!(err.contains("base.qcow"), "{err}");
    assert_only_files(sub.path(), &["top.qcow"]);
}

#[test]
fn qcow_backing_path_resolves_by_base_name_only() {
    let d = tmp();
    let dir = d.path();
    qemu_img(&["create", "-q", "-f", "qcow", "base.qcow", "1M"], dir);
    qemu_io("base.qcow", &["write -P 0x77 0 512k"], dir);
    let abs = path(dir, "base.qcow").to_string_lossy().into_owned();
    qemu_img(
        &[
            "create", "-q", "-f", "qcow", "-b", &abs, "-F", "qcow", "top.qcow", "1M",
        ],
        dir,
    );
    let info = verify(dir, "top.qcow", &["top.qcow", "base.qcow"], "qcow");
    let f = info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "backing-file")
        .expect("backing-file finding");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("is a path"), "{msg}");
    // Without the supplied file nothing is read from the host path.
    let sub = tmp();
    std::fs::copy(path(dir, "top.qcow"), path(sub.path(), "top.qcow")).unwrap();
    let info = info_json(&["top.qcow"], sub.path());
    assert_eq!(info["convertible"], false, "{info}");
}

#[test]
fn qcow_encrypted_is_reported_and_not_read() {
    let d = tmp();
    let dir = d.path();
    qemu_img(&["create", "-q", "-f", "qcow", "e.qcow", "1M"], dir);
    qemu_io("e.qcow", &["write -P 0x12 0 4k"], dir);
    let mut b = read(dir, "e.qcow");
    put(&mut b, 36, &1u32.to_be_bytes());
    write(dir, "e.qcow", &b);
    let info = info_json(&["e.qcow"], dir);
    assert!(has(&info, "encrypted", "critical"), "{info}");
    assert_eq!(info["convertible"], false);
    assert_eq!(info["format-specific"]["encryption-format"], "aes");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "e.qcow"],
        dir,
    );
    assert!(err.contains("encrypted"), "{err}");
    assert_only_files(dir, &["e.qcow"]);
}

#[test]
fn qcow_damaged() {
    let d = tmp();
    let dir = d.path();
    qemu_img(&["create", "-q", "-f", "qcow", "ok.qcow", "2M"], dir);
    qemu_io(
        "ok.qcow",
        &["write -P 0x12 0 8k", "write -P 0x13 1M 8k"],
        dir,
    );
    let good = read(dir, "ok.qcow");
    let l1 = u64::from_be_bytes(good[40..48].try_into().unwrap()) as usize;
    let l2 = u64::from_be_bytes(good[l1..l1 + 8].try_into().unwrap()) as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", Box::new(|b| b.truncate(b.len() / 2))),
        ("header-cut", Box::new(|b| b.truncate(30))),
        ("cluster-bits", Box::new(|b| b[32] = 40)),
        ("l2-bits", Box::new(|b| b[33] = 0)),
        ("size-zero", Box::new(|b| put(b, 24, &0u64.to_be_bytes()))),
        (
            "size-huge",
            Box::new(|b| put(b, 24, &(u64::MAX - 4).to_be_bytes())),
        ),
        (
            "l1-past-eof",
            Box::new(|b| put(b, 40, &(1u64 << 40).to_be_bytes())),
        ),
        (
            "l1-header",
            Box::new(move |b| put(b, l1, &8u64.to_be_bytes())),
        ),
        (
            "l2-over-l1",
            Box::new(move |b| put(b, l1, &(l1 as u64).to_be_bytes())),
        ),
        (
            "l1-past-eof-entry",
            Box::new(move |b| put(b, l1, &(1u64 << 50).to_be_bytes())),
        ),
        (
            "l2-header",
            Box::new(move |b| put(b, l2, &16u64.to_be_bytes())),
        ),
        (
            "l2-past-eof",
            Box::new(move |b| put(b, l2, &(1u64 << 44).to_be_bytes())),
        ),
        (
            "compressed-zero",
            Box::new(move |b| put(b, l2, &(1u64 << 63).to_be_bytes())),
        ),
        ("crypt", Box::new(|b| put(b, 36, &9u32.to_be_bytes()))),
        (
            "backing-long",
            Box::new(|b| {
                put(b, 8, &48u64.to_be_bytes());
                put(b, 16, &5000u32.to_be_bytes());
            }),
        ),
        // The image names itself (by base name) as its backing file.
        (
            "self",
            Box::new(|b| {
                let at = b.len() as u64;
                b.extend_from_slice(b"dir/self.qcow");
                put(b, 8, &at.to_be_bytes());
                put(b, 16, &13u32.to_be_bytes());
            }),
        ),
    ];
    for (name, damage) in cases {
        let mut b = good.clone();
        damage(&mut b);
        let file = format!("{name}.qcow");
        write(dir, &file, &b);
        fails_cleanly(dir, &file);
        std::fs::remove_file(path(dir, &file)).unwrap();
    }
}

// ---- QED -------------------------------------------------------------------------------------

#[test]
fn qed_made_by_qemu_img() {
    let d = tmp();
    let dir = d.path();
    let variants: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "5M"),
        (vec!["-o", "cluster_size=4096,table_size=2"], "3000001"),
        (vec!["-o", "cluster_size=65536,table_size=16"], "7M"),
        (vec!["-o", "cluster_size=1M"], "2500k"),
    ];
    for (i, (opts, size)) in variants.into_iter().enumerate() {
        let img = format!("a{i}.qed");
        let mut args = vec!["create", "-q", "-f", "qed"];
        args.extend(opts);
        args.extend([img.as_str(), size]);
        qemu_img(&args, dir);
        let vs = qemu_info(&img, dir)["virtual-size"].as_u64().unwrap();
        let last = format!("write -P 0xcd {} 512", vs - 512);
        qemu_io(
            &img,
            &[
                "write -P 0xab 0 100k",
                "write -z 1M 1M",
                "write -P 0x11 1M 3k",
                &last,
            ],
            dir,
        );
        let info = verify(dir, &img, &[&img], "qed");
        assert!(has(&info, "unsupported-format", "warning"), "{info}");
        assert_eq!(info["safety"]["safe"], true, "{info}");
        let fs = &info["format-specific"];
        assert!(fs["table-size"].as_u64().unwrap() >= 1, "{info}");
        assert_eq!(fs["dirty"], false, "{info}");
    }
}

/// qemu cannot open the QED images with one-cluster tables that it creates (its table offset
/// check wants a table to end after it starts: "QED table offset is invalid"); the spec allows
/// table_size 1, and vmdisk reads them.
#[test]
fn qed_one_cluster_tables_qemu_cannot_open() {
    let d = tmp();
    let dir = d.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qed",
            "-o",
            "cluster_size=4096,table_size=1",
            "t1.qed",
            "1M",
        ],
        dir,
    );
    assert!(!run("qemu-img", &["info", "t1.qed"], dir).status.success());
    let info = info_json(&["t1.qed"], dir);
    assert_eq!(info["virtual-size"], 1 << 20);
    assert_eq!(info["format-specific"]["table-size"], 1);
    assert_eq!(info["format-specific"]["table-entries"], 512);
    // Hand-allocate guest cluster 5: L2 table in cluster 2, data in cluster 3.
    let mut b = read(dir, "t1.qed");
    assert_eq!(b.len(), 8192);
    b.resize(16384, 0);
    put(&mut b, 4096, &8192u64.to_le_bytes());
    put(&mut b, 8192 + 5 * 8, &12288u64.to_le_bytes());
    put(&mut b, 8192 + 6 * 8, &1u64.to_le_bytes());
    b[12288..].copy_from_slice(&noise(4096, 4));
    write(dir, "t1.qed", &b);
    vmdisk(
        &["convert", "-O", "raw", "--output", "o.raw", "t1.qed"],
        dir,
    );
    let out = read(dir, "o.raw");
    assert_eq!(out.len(), 1 << 20);
    assert_eq!(&out[5 * 4096..6 * 4096], &noise(4096, 4)[..]);
    assert!(
        out[..5 * 4096]
            .iter()
            .chain(&out[6 * 4096..])
            .all(|&x| x == 0)
    );
    let map = json(&vmdisk(&["map", "--json", "t1.qed"], dir));
    let rows: Vec<(u64, u64, bool, bool)> = map
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().unwrap(),
                r["length"].as_u64().unwrap(),
                r["present"].as_bool().unwrap(),
                r["data"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, 20480, false, false),
            (20480, 4096, true, true),
            (24576, 4096, true, false),
            (28672, (1 << 20) - 28672, false, false)
        ]
    );
}

#[test]
fn qed_zero_clusters_hide_the_backing_file() {
    let d = tmp();
    let dir = d.path();
    raw_file(dir, "base.raw", 4 << 20, 11);
    // -F raw sets the no-probe feature: the backing file is read as raw.
    qemu_img(
        &[
            "create", "-q", "-f", "qed", "-b", "base.raw", "-F", "raw", "top.qed", "4M",
        ],
        dir,
    );
    qemu_io("top.qed", &["write -z 0 1M", "write -P 0x5a 2M 64k"], dir);
    let info = verify(dir, "top.qed", &["top.qed", "base.raw"], "qed");
    assert!(has(&info, "backing-file", "critical"), "{info}");
    assert_eq!(info["format-specific"]["backing-file"], "base.raw");
    assert_eq!(info["format-specific"]["backing-file-format"], "raw");

    // A qcow2 backing file, probed.
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "3M"], dir);
    qemu_io("base.qcow2", &["write -P 0x31 0 3M"], dir);
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qed",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "t2.qed",
            "3M",
        ],
        dir,
    );
    qemu_io("t2.qed", &["write -P 0x32 1M 4k"], dir);
    verify(dir, "t2.qed", &["base.qcow2", "t2.qed"], "qed");

    // Missing backing file.
    let sub = tmp();
    std::fs::copy(path(dir, "t2.qed"), path(sub.path(), "t2.qed")).unwrap();
    let info = info_json(&["t2.qed"], sub.path());
    assert_eq!(info["convertible"], false);
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "t2.qed"],
        sub.path(),
    );
    assert!(err.contains("base.qcow2"), "{err}");
    assert_only_files(sub.path(), &["t2.qed"]);
}

#[test]
fn qed_need_check_is_reported() {
    let d = tmp();
    let dir = d.path();
    qemu_img(&["create", "-q", "-f", "qed", "a.qed", "1M"], dir);
    qemu_io("a.qed", &["write -P 0x12 0 64k"], dir);
    let mut b = read(dir, "a.qed");
    b[16] |= 2;
    write(dir, "a.qed", &b);
    let info = info_json(&["a.qed"], dir);
    assert!(has(&info, "dirty", "warning"), "{info}");
    assert_eq!(info["format-specific"]["dirty"], true);
    vmdisk(&["convert", "-O", "raw", "--output", "o.raw", "a.qed"], dir);
    // qemu-img would repair the image on open; compare with a clean copy instead.
    b[16] &= !2;
    write(dir, "clean.qed", &b);
    assert_same("clean.qed", "o.raw", dir);
}

#[test]
fn qed_damaged() {
    let d = tmp();
    let dir = d.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qed",
            "-o",
            "cluster_size=4096,table_size=2",
            "ok.qed",
            "4M",
        ],
        dir,
    );
    qemu_io(
        "ok.qed",
        &["write -P 0x12 0 8k", "write -P 0x13 1M 8k"],
        dir,
    );
    let good = read(dir, "ok.qed");
    let l1 = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    let l2 = u64::from_le_bytes(good[l1..l1 + 8].try_into().unwrap()) as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", Box::new(|b| b.truncate(b.len() - 6000))),
        ("header-cut", Box::new(|b| b.truncate(40))),
        ("cluster", Box::new(|b| put(b, 4, &3000u32.to_le_bytes()))),
        (
            "cluster-huge",
            Box::new(|b| put(b, 4, &(1u32 << 31).to_le_bytes())),
        ),
        ("table", Box::new(|b| put(b, 8, &3u32.to_le_bytes()))),
        ("header-size", Box::new(|b| put(b, 12, &0u32.to_le_bytes()))),
        ("feature", Box::new(|b| b[17] = 0x80)),
        (
            "size-huge",
            Box::new(|b| put(b, 48, &(1u64 << 60).to_le_bytes())),
        ),
        (
            "size-odd",
            Box::new(|b| put(b, 48, &4000001u64.to_le_bytes())),
        ),
        (
            "l1-past-eof",
            Box::new(|b| put(b, 40, &(1u64 << 40).to_le_bytes())),
        ),
        ("l1-header", Box::new(|b| put(b, 40, &0u64.to_le_bytes()))),
        (
            "l2-over-l1",
            Box::new(move |b| put(b, l1, &(l1 as u64).to_le_bytes())),
        ),
        (
            "l1-entry-past",
            Box::new(move |b| put(b, l1, &(1u64 << 40).to_le_bytes())),
        ),
        (
            "l2-unaligned",
            Box::new(move |b| put(b, l2, &(l2 as u64 + 7).to_le_bytes())),
        ),
        (
            "l2-past",
            Box::new(move |b| put(b, l2, &(1u64 << 40).to_le_bytes())),
        ),
        (
            "backing-outside",
            Box::new(|b| {
                b[16] |= 1;
                put(b, 56, &4090u32.to_le_bytes());
                put(b, 60, &100u32.to_le_bytes());
            }),
        ),
    ];
    for (name, damage) in cases {
        let mut b = good.clone();
        damage(&mut b);
        let file = format!("{name}.qed");
        write(dir, &file, &b);
        fails_cleanly(dir, &file);
        std::fs::remove_file(path(dir, &file)).unwrap();
    }
}

// ---- Parallels -------------------------------------------------------------------------------

#[test]
fn parallels_made_by_qemu_img() {
    let d = tmp();
    let dir = d.path();
    let variants: Vec<(&str, &str)> = vec![("1M", "5M"), ("64k", "3000001"), ("4k", "1M")];
    for (i, (cs, size)) in variants.into_iter().enumerate() {
        let img = format!("a{i}.hdd");
        let opt = format!("cluster_size={cs}");
        qemu_img(
            &["create", "-q", "-f", "parallels", "-o", &opt, &img, size],
            dir,
        );
        let vs = qemu_info(&img, dir)["virtual-size"].as_u64().unwrap();
        let last = format!("write -P 0xcd {} 512", vs - 512);
        qemu_io(
            &img,
            &["write -P 0xab 0 100k", "write -P 0x11 700k 3k", &last],
            dir,
        );
        let info = verify(dir, &img, &[&img], "parallels");
        assert!(has(&info, "unsupported-format", "warning"), "{info}");
        let fs = &info["format-specific"];
        assert_eq!(fs["magic"], "WithouFreSpacExt", "{info}");
        assert_eq!(fs["dirty"], false, "{info}");
    }
    // qemu-img convert to Parallels.
    raw_file(dir, "src.raw", 3 << 20, 5);
    qemu_img(
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "parallels",
            "-o",
            "cluster_size=256k",
            "src.raw",
            "c.hdd",
        ],
        dir,
    );
    verify(dir, "c.hdd", &["c.hdd"], "parallels");
    assert_same("src.raw", "c.hdd", dir);
}

/// A "WithoutFreeSpace" image (BAT in sectors, 32-bit sector count) built by hand: 8-sector
/// clusters, 5 guest clusters, clusters 0, 2 and 4 stored out of order at sector offsets.
fn old_parallels(sectors_high: u32) -> Vec<u8> {
    let tracks = 8u32;
    let entries = 5u32;
    let mut b = vec![0u8; 512];
    put(&mut b, 0, b"WithoutFreeSpace");
    put(&mut b, 16, &2u32.to_le_bytes());
    put(&mut b, 20, &16u32.to_le_bytes());
    put(&mut b, 24, &1u32.to_le_bytes());
    put(&mut b, 28, &tracks.to_le_bytes());
    put(&mut b, 32, &entries.to_le_bytes());
    // 38 sectors (the last cluster is partial), garbage in the high half qemu ignores.
    put(&mut b, 36, &38u32.to_le_bytes());
    put(&mut b, 40, &sectors_high.to_le_bytes());
    // Data at sectors 1, 9 and 17 (not cluster aligned: entries count sectors).
    put(&mut b, 64, &17u32.to_le_bytes());
    put(&mut b, 72, &1u32.to_le_bytes());
    put(&mut b, 80, &9u32.to_le_bytes());
    b.resize(512 * 25, 0);
    b[512..512 * 9].copy_from_slice(&noise(4096, 1));
    b[512 * 9..512 * 17].copy_from_slice(&text(4096, 2));
    b[512 * 17..512 * 25].copy_from_slice(&noise(4096, 3));
    b
}

#[test]
fn parallels_original_format_by_hand() {
    let d = tmp();
    let dir = d.path();
    write(dir, "old.hdd", &old_parallels(0xdead));
    let info = verify(dir, "old.hdd", &["old.hdd"], "parallels");
    assert_eq!(info["virtual-size"], 38 * 512);
    let fs = &info["format-specific"];
    assert_eq!(fs["magic"], "WithoutFreeSpace", "{info}");
    assert_eq!(fs["bat-unit"], "sector", "{info}");
    // The expected guest content, independently of qemu.
    vmdisk(
        &["convert", "-O", "raw", "--output", "o.raw", "old.hdd"],
        dir,
    );
    let out = read(dir, "o.raw");
    assert_eq!(&out[..4096], &noise(4096, 3)[..]);
    assert!(out[4096..8192].iter().all(|&x| x == 0));
    assert_eq!(&out[8192..12288], &noise(4096, 1)[..]);
    assert_eq!(&out[16384..], &text(4096, 2)[..38 * 512 - 16384]);
}

#[test]
fn parallels_dirty_and_format_extension() {
    let d = tmp();
    let dir = d.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "parallels",
            "-o",
            "cluster_size=64k",
            "a.hdd",
            "2M",
        ],
        dir,
    );
    qemu_io("a.hdd", &["write -P 0x42 0 64k"], dir);
    let mut b = read(dir, "a.hdd");
    put(&mut b, 44, &0x746f_6e59u32.to_le_bytes());
    // A format extension cluster appended at the end, with one dirty bitmap feature.
    let at = b.len();
    b.resize(at + 65536, 0);
    put(&mut b, at, &0xab23_4cef_23dc_ea87u64.to_le_bytes());
    put(&mut b, at + 24, &0x2038_5fae_252c_b34au64.to_le_bytes());
    put(&mut b, at + 40, &40u32.to_le_bytes());
    put(&mut b, 56, &((at / 512) as u64).to_le_bytes());
    write(dir, "a.hdd", &b);
    let info = info_json(&["a.hdd"], dir);
    assert!(has(&info, "dirty", "warning"), "{info}");
    assert!(has(&info, "dirty-bitmap", "info"), "{info}");
    let fs = &info["format-specific"];
    assert_eq!(fs["dirty"], true);
    assert_eq!(fs["format-extension"]["dirty-bitmaps"], 1, "{info}");
    vmdisk(&["convert", "-O", "raw", "--output", "o.raw", "a.hdd"], dir);
    let out = read(dir, "o.raw");
    assert_eq!(out.len(), 2 << 20);
    assert!(out[..65536].iter().all(|&x| x == 0x42));
    assert!(out[65536..].iter().all(|&x| x == 0));
}

#[test]
fn parallels_damaged() {
    let d = tmp();
    let dir = d.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "parallels",
            "-o",
            "cluster_size=64k",
            "ok.hdd",
            "2M",
        ],
        dir,
    );
    qemu_io(
        "ok.hdd",
        &["write -P 0x12 0 8k", "write -P 0x13 1M 8k"],
        dir,
    );
    let good = read(dir, "ok.hdd");
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", Box::new(|b| b.truncate(b.len() - 70000))),
        ("header-cut", Box::new(|b| b.truncate(50))),
        ("tracks-zero", Box::new(|b| put(b, 28, &0u32.to_le_bytes()))),
        (
            "tracks-huge",
            Box::new(|b| put(b, 28, &u32::MAX.to_le_bytes())),
        ),
        ("version", Box::new(|b| put(b, 16, &3u32.to_le_bytes()))),
        (
            "bat-huge",
            Box::new(|b| put(b, 32, &u32::MAX.to_le_bytes())),
        ),
        (
            "size-huge",
            Box::new(|b| put(b, 36, &u64::MAX.to_le_bytes())),
        ),
        (
            "entry-past",
            Box::new(|b| put(b, 64, &0x00ff_ffffu32.to_le_bytes())),
        ),
    ];
    for (name, damage) in cases {
        let mut b = good.clone();
        damage(&mut b);
        let file = format!("{name}.hdd");
        write(dir, &file, &b);
        fails_cleanly(dir, &file);
        std::fs::remove_file(path(dir, &file)).unwrap();
    }
    // A BAT entry pointing into the header and allocation table (original format: sectors).
    let mut b = old_parallels(0);
    put(&mut b, 32, &300u32.to_le_bytes()); // BAT of 300 entries ends at byte 1264
    put(&mut b, 64, &1u32.to_le_bytes()); // sector 1 = byte 512: inside the BAT
    b.resize(b.len().max(64 + 300 * 4), 0);
    write(dir, "into-bat.hdd", &b);
    fails_cleanly(dir, "into-bat.hdd");
}
