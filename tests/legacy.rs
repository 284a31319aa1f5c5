//! qcow (version 1), QED and Parallels: differential tests against qemu-img on images it makes,
//! hand-built fixtures for what it cannot make, and damaged images that must fail cleanly.
mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "legacy/parallels.rs"]
mod parallels;
#[path = "legacy/qed.rs"]
mod qed;

/// A map row's kind: (present, zero, data), `zero` only where the range holds no data.
type Kind = (bool, bool, bool);

/// Normalise `qemu-img map --output=json` or `vmdisk map --json`: merge equal neighbours.
fn normalise(map: &Value) -> Vec<MapRow<Kind>> {
    let kind = |r: &Value| {
        let b = |k: &str| r[k].as_bool().unwrap_or_else(|| panic!("{k} in {r}"));
        (b("present"), b("zero") && !b("data"), b("data"))
    };
    let joins = |a: &MapRow<Kind>, b: &MapRow<Kind>| a.depth == b.depth && a.kind == b.kind;
    normalise_map(map, "rows tile the disk", kind, joins)
}

/// vmdisk and qemu-img agree on `img` (handed over with `files`): converted content, virtual
/// size and map. Returns vmdisk's info report.
fn verify(dir: &Path, img: &str, files: &[&str], format: &str) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    let len_msg = format!("raw output length of {img}");
    assert_raw_like_qemu(dir, img, files, size, Some(&len_msg));

    let info = info_checked(dir, files, format, size);
    if let Some(cs) = q["cluster-size"].as_u64() {
        assert_eq!(info["format-specific"]["cluster-size"], cs, "{info}");
    }
    assert_map_like_qemu(dir, img, files, normalise);
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
        let critical = codes_and_severities(&info)
            .iter()
            .any(|(_, s)| s == "critical");
        assert!(
            info["convertible"] == false || critical,
            "damaged {file} looks fine: {info}"
        );
    } else {
        let err = vmdisk_fails(&["info", file], dir);
        assert!(!err.is_empty());
    }
    let before = listing(dir);
    let err = vmdisk_fails_line(&format!("convert -O raw --output bad-out.raw {file}"), dir);
    let names: Vec<&str> = before.iter().map(String::as_str).collect();
    assert_only_files(dir, &names);
    err
}

/// Write to `img`: its first 100k, `middle`, its last sector.
fn fill(dir: &Path, img: &str, middle: &[&str]) {
    let vs = qemu_info(img, dir)["virtual-size"].as_u64().unwrap();
    let last = format!("write -P 0xcd {} 512", vs - 512);
    let mut cmds = vec!["write -P 0xab 0 100k"];
    cmds.extend(middle);
    cmds.push(&last);
    qemu_io(img, &cmds, dir);
}

/// `img` copied alone into a fresh directory (without its backing file), and its info there.
fn alone(dir: &Path, img: &str) -> (Scratch, Value) {
    let sub = scratch();
    std::fs::copy(path(dir, img), path(&sub, img)).unwrap();
    let info = info_json(&[img], &sub);
    (sub, info)
}

/// Converting `img` in `sub` fails naming the missing `backing` and writes nothing.
fn convert_fails_naming(sub: &Path, img: &str, backing: &str) {
    let err = vmdisk_fails_line(&format!("convert -O raw --output o.raw {img}"), sub);
    assert!(err.contains(backing), "{err}");
    assert_only_files(sub, &[img]);
}

/// How many rows of a map are compressed.
fn compressed_rows(map: &Value) -> usize {
    map.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["compressed"] == true)
        .count()
}

/// A change made to a copy of a good image.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// The image damaged copies start from: `qemu-img create -q ARGS NAME SIZE` with data in two
/// places. Returns its bytes.
fn victim(dir: &Path, args: &[&str], name: &str, size: &str) -> Vec<u8> {
    let mut a = vec!["create", "-q"];
    a.extend(args);
    a.extend([name, size]);
    qemu_img(&a, dir);
    qemu_io(name, &["write -P 0x12 0 8k", "write -P 0x13 1M 8k"], dir);
    read(dir, name)
}

/// Each damaged copy of `good` (written as `CASE.EXT`) fails cleanly.
fn each_damage_fails_cleanly(dir: &Path, good: &[u8], ext: &str, cases: Vec<(&str, Damage)>) {
    for (name, damage) in cases {
        let mut b = good.to_vec();
        damage(&mut b);
        let file = format!("{name}.{ext}");
        write(dir, &file, &b);
        fails_cleanly(dir, &file);
        std::fs::remove_file(path(dir, &file)).unwrap();
    }
}

// ---- qcow (version 1) ------------------------------------------------------------------------

#[test]
fn qcow_made_by_qemu_img() {
    let dir = &scratch();
    for (i, size) in ["5M", "3000k"].iter().enumerate() {
        let img = format!("a{i}.qcow");
        qemu_img(&["create", "-q", "-f", "qcow", &img, size], dir);
        fill(dir, &img, &["write -P 0x11 1M 3k"]);
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
    qemu_img_line("convert -q -f raw -O qcow odd.raw odd.qcow", dir);
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
    let dir = &scratch();
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
    let compressed = compressed_rows(&map);
    assert!(
        compressed >= 27,
        "compressed clusters are mapped as such: {map}"
    );
    let theirs = json(&qemu_img(&["map", "--output=json", "c.qcow"], dir));
    let theirs = compressed_rows(&theirs);
    assert_eq!(compressed, theirs);
}

#[test]
fn qcow_backing_files() {
    let dir = &scratch();
    let writes = ["write -P 0x22 0 2M", "write -P 0x33 3M 1M"];
    written_image(dir, "qcow", "base.qcow", "4M", &writes);
    qemu_img_line("create -q -f qcow -b base.qcow -F qcow top.qcow 4M", dir);
    qemu_io(
        "top.qcow",
        &["write -P 0x44 64k 64k", "write -P 0x55 4095k 1k"],
        dir,
    );
    // Any order of files.
    let info = verify(dir, "top.qcow", &["base.qcow", "top.qcow"], "qcow");
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    assert_eq!(info["safety"]["safe"], false);
    assert_eq!(info["format-specific"]["backing-file"], "base.qcow");
    let roles: Vec<&str> = each(&info["files"], |f| f["role"].as_str().unwrap());
    assert_eq!(roles, ["backing", "image"]);

    // A raw backing file.
    raw_file(dir, "base.raw", 2 << 20, 3);
    qemu_img_line("create -q -f qcow -b base.raw -F raw over.qcow 3M", dir);
    qemu_io("over.qcow", &["write -P 0x66 1M 8k"], dir);
    verify(dir, "over.qcow", &["over.qcow", "base.raw"], "qcow");

    // The backing file not supplied: info works, convert fails naming it, writes nothing.
    let (sub, info) = alone(dir, "top.qcow");
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    convert_fails_naming(&sub, "top.qcow", "base.qcow");
}

#[test]
fn qcow_backing_path_resolves_by_base_name_only() {
    let dir = &scratch();
    written_image(dir, "qcow", "base.qcow", "1M", &["write -P 0x77 0 512k"]);
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
    let dir = &scratch();
    written_image(dir, "qcow", "e.qcow", "1M", &["write -P 0x12 0 4k"]);
    let mut b = read(dir, "e.qcow");
    put(&mut b, 36, &1u32.to_be_bytes());
    write(dir, "e.qcow", &b);
    let info = info_json(&["e.qcow"], dir);
    assert!(has_finding(&info, "encrypted", "critical"), "{info}");
    assert_eq!(info["convertible"], false);
    assert_eq!(info["format-specific"]["encryption-format"], "aes");
    let err = vmdisk_fails_line("convert -O raw --output o.raw e.qcow", dir);
    assert!(err.contains("encrypted"), "{err}");
    assert_only_files(dir, &["e.qcow"]);
}

#[test]
fn qcow_damaged() {
    let dir = &scratch();
    let good = victim(dir, &["-f", "qcow"], "ok.qcow", "2M");
    let l1 = u64::from_be_bytes(good[40..48].try_into().unwrap()) as usize;
    let l2 = u64::from_be_bytes(good[l1..l1 + 8].try_into().unwrap()) as usize;
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
    each_damage_fails_cleanly(dir, &good, "qcow", cases);
}
