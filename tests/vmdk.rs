//! VMDK reader: differential tests against qemu-img for every layout it creates, hand-built
//! fixtures (checked against the VMware spec and qemu's reader) for what it cannot create
//! (streams with a footer, vmfs, vmfsSparse/COWD, seSparse, mixed descriptors), and damaged
//! images that must fail cleanly.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use vmdisk::codec::{Codec, compress};

#[path = "vmdk/companions.rs"]
mod companions;
#[path = "vmdk/damage.rs"]
mod damage;
#[path = "vmdk/hand_built.rs"]
mod hand_built;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Normalise `qemu-img map` / `vmdisk map` JSON and merge neighbours of the same kind:
/// "unallocated", "zero", "data" or "compressed".
fn normalise(map: &Value) -> Vec<MapRow<&'static str>> {
    let kind = |r: &Value| {
        let b = |k: &str| r[k].as_bool().unwrap_or(false);
        if !b("present") {
            "unallocated"
        } else if b("compressed") {
            "compressed"
        } else if b("data") {
            "data"
        } else {
            "zero"
        }
    };
    let joins = |a: &MapRow<&str>, b: &MapRow<&str>| a.depth == b.depth && a.kind == b.kind;
    normalise_map(map, "rows must tile", kind, joins)
}

/// vmdisk and qemu agree on `img` (handed to vmdisk with `files`, in that order): content,
/// virtual size and, when `map` is set, the extent map. Returns vmdisk's info.
fn verify(dir: &Path, img: &str, files: &[&str], map: bool) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    assert_raw_like_qemu(dir, img, files, size, None);
    let info = info_checked(dir, files, "vmdk", size);
    let qs = &q["format-specific"]["data"];
    assert_eq!(
        info["format-specific"]["create-type"], qs["create-type"],
        "{info}"
    );
    let main = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "image")
        .unwrap();
    assert_eq!(
        main["name"], img,
        "the descriptor is the main image: {info}"
    );
    for f in info["files"].as_array().unwrap() {
        assert_ne!(f["role"], "unused", "{info}");
    }
    if map {
        assert_map_like_qemu(dir, img, files, normalise);
    }
    info
}

/// The message of the `severity` finding `code`; panics when there is none.
fn finding_message(info: &Value, code: &str, severity: &str) -> String {
    findings(info)
        .into_iter()
        .find(|f| f.0 == code && f.1 == severity)
        .unwrap_or_else(|| panic!("no {severity} {code} finding in {info}"))
        .2
}

/// vmdisk's raw conversion of `files` equals `want`.
fn converts_to(dir: &Path, files: &[&str], want: &[u8]) {
    let mut args = vec!["convert", "-O", "raw", "--output", "want-check.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    let got = std::fs::read(path(dir, "want-check.raw")).unwrap();
    std::fs::remove_file(path(dir, "want-check.raw")).unwrap();
    assert_eq!(got.len(), want.len(), "size of {files:?}");
    assert!(got == want, "content of {files:?} differs");
}

fn create(dir: &Path, name: &str, opts: &str, size: &str, extra: &[&str]) {
    create_image(dir, "vmdk", opts, extra, name, size);
}

/// The extent files qemu made next to descriptor `name` (`x-flat.vmdk`, `x-s001.vmdk`, ...).
fn extents_of(dir: &Path, name: &str) -> Vec<String> {
    let stem = name.trim_end_matches(".vmdk");
    listing(dir)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{stem}-")) && f.ends_with(".vmdk"))
        .collect()
}

/// Rewrite the descriptor embedded in sparse file `name` (sectors 1-20, NUL-padded).
fn edit_descriptor(d: &Path, name: &str, f: impl FnOnce(&str) -> String) {
    let mut b = std::fs::read(path(d, name)).unwrap();
    let area = &b[512..512 * 21];
    let end = area.iter().position(|&x| x == 0).unwrap();
    let new = f(std::str::from_utf8(&area[..end]).unwrap());
    assert!(new.len() < 512 * 20);
    b[512..512 * 21].fill(0);
    b[512..512 + new.len()].copy_from_slice(new.as_bytes());
    std::fs::write(path(d, name), &b).unwrap();
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}
fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if buf.len() < at + bytes.len() {
        buf.resize(at + bytes.len(), 0);
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

// ---------------------------------------------------------------------------------------------
// What qemu-img creates

/// Every subformat qemu-img creates, with data in the first and last sectors and an odd size
/// (not a whole number of grains), handed to vmdisk with the extents first.
#[test]
fn subformats_created_by_qemu() {
    let d = &scratch();
    for sub in [
        "monolithicSparse",
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
        "streamOptimized",
    ] {
        let name = format!("{sub}.vmdk");
        create(d, &name, &format!("subformat={sub}"), "3146240", &[]);
        if sub != "streamOptimized" {
            // qemu writes streamOptimized only sequentially, through convert (below).
            qemu_io(
                &name,
                &[
                    "write -P 0x11 0 512",
                    "write -P 0x22 1000k 70k",
                    "write -P 0x33 3145728 512",
                ],
                d,
            );
        }
        let mut files = extents_of(d, &name);
        files.push(name.clone());
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let flat = sub.ends_with("Flat");
        let info = verify(d, &name, &refs, !flat);
        let fs = &info["format-specific"];
        assert_eq!(fs["create-type"], sub);
        assert_eq!(fs["descriptor-file"], sub.starts_with("twoGb") || flat);
        assert_eq!(fs["adapter-type"], "ide", "{fs}");
        assert_eq!(fs["geometry"]["heads"], 16, "{fs}");
        assert_eq!(fs["ddb"]["ddb.virtualHWVersion"], "4", "{fs}");
        assert_eq!(fs["parent-cid"], "ffffffff");
        assert_eq!(fs["compressed"], sub == "streamOptimized");
        if !flat {
            assert_eq!(fs["grain-size"], 65536, "{fs}");
        }
        let ext = fs["extents"].as_array().unwrap();
        assert_eq!(ext.len(), 1, "{fs}");
        assert_eq!(ext[0]["sectors"], 6145);
        for f in &files[..files.len() - 1] {
            let role = info["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == f.as_str())
                .unwrap()["role"]
                .clone();
            assert_eq!(role, "extent", "{info}");
        }
        assert_eq!(info["safety"]["safe"], true, "{info}");
    }
}

/// twoGbMaxExtentSparse over 2 GiB: three sparse extent files; data in each and at the end.
#[test]
fn split_sparse_with_several_extents() {
    let d = &scratch();
    create(
        d,
        "big.vmdk",
        "subformat=twoGbMaxExtentSparse",
        "4396974080",
        &[],
    );
    qemu_io(
        "big.vmdk",
        &[
            "write -P 0x41 2147418112 131072",
            "write -P 0x42 4294967296 65536",
            "write -P 0x43 4396973568 512",
        ],
        d,
    );
    let mut files = extents_of(d, "big.vmdk");
    assert_eq!(files.len(), 3, "{files:?}");
    files.reverse();
    files.push("big.vmdk".into());
    files.rotate_left(1);
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let info = verify(d, "big.vmdk", &refs, true);
    assert_eq!(info["format-specific"]["extent-count"], 3);
}

/// Options: zeroed grains (a zero write becomes GTE 1 = Zero), compat6 (hardware version 6),
/// hwversion, adapter type.
#[test]
fn create_options() {
    let d = &scratch();
    create(d, "z.vmdk", "zeroed_grain=on", "2M", &[]);
    qemu_io(
        "z.vmdk",
        &[
            "write -P 0x5a 0 1M",
            "write -z 64k 128k",
            "write -P 1 2096640 512",
        ],
        d,
    );
    let info = verify(d, "z.vmdk", &["z.vmdk"], true);
    assert_eq!(
        info["format-specific"]["extents"][0]["sparse"]["zeroed-grain"],
        true
    );
    let rows = normalise(&json(&vmdisk(&["map", "--json", "z.vmdk"], d)));
    assert!(
        rows.iter()
            .any(|r| r.kind == "zero" && r.start == 65536 && r.length == 131072),
        "{rows:?}"
    );

    create(d, "c6.vmdk", "compat6=on", "1M", &[]);
    qemu_io("c6.vmdk", &["write -P 7 4k 4k"], d);
    let info = verify(d, "c6.vmdk", &["c6.vmdk"], true);
    assert_eq!(info["format-specific"]["virtual-hw-version"], "6");

    create(
        d,
        "hw.vmdk",
        "hwversion=14,adapter_type=lsilogic",
        "1M",
        &[],
    );
    let info = verify(d, "hw.vmdk", &["hw.vmdk"], true);
    assert_eq!(info["format-specific"]["virtual-hw-version"], "14");
    assert_eq!(info["format-specific"]["adapter-type"], "lsilogic");

    create(
        d,
        "pv.vmdk",
        "subformat=monolithicFlat,adapter_type=buslogic",
        "1M",
        &[],
    );
    let info = verify(d, "pv.vmdk", &["pv-flat.vmdk", "pv.vmdk"], false);
    assert_eq!(info["format-specific"]["adapter-type"], "buslogic");
    assert_eq!(info["format-specific"]["extents"][0]["type"], "FLAT");
}

/// `qemu-img convert` to monolithicSparse and streamOptimized from raw files of odd sizes
/// (not sector multiples: qemu rounds the disk up) with mixed random and text data, zero runs
/// and data in the last sector.
#[test]
fn convert_from_raw_odd_sizes() {
    let d = &scratch();
    for (i, size) in [3_000_000u64, 1_048_577, 65_536 * 7 + 512, 200]
        .into_iter()
        .enumerate()
    {
        let raw = path(d, "src.raw");
        let _ = std::fs::remove_file(&raw);
        let half = (size / 2) as usize;
        write_at(&raw, 0, &noise(half.min(300_000), i as u64));
        write_at(&raw, half as u64, &text(size as usize - half, i as u64));
        if size > 700_000 {
            write_at(&raw, 400_000, &vec![0; 200_000]);
        }
        write_at(&raw, size - 1, &[0xee]);
        for sub in ["monolithicSparse", "streamOptimized"] {
            let out = format!("{sub}-{i}.vmdk");
            qemu_img_line(
                &format!("convert -f raw -O vmdk -o subformat={sub} src.raw {out}"),
                d,
            );
            let info = verify(d, &out, &[&out], true);
            assert_eq!(info["virtual-size"], size.div_ceil(512) * 512);
            // And as qcow2 (the benchmark path).
            vmdisk(&["convert", "-O", "qcow2", "--output", "o.qcow2", &out], d);
            assert_same(&out, "o.qcow2", d);
            std::fs::remove_file(path(d, "o.qcow2")).unwrap();
        }
    }
}

/// Delta disks (`qemu-img create -b base.vmdk -F vmdk`): the parent is found among the
/// supplied files in any order, is a Critical backing-file finding, and a missing one blocks
/// conversion with one line.
#[test]
fn delta_disk_and_parent() {
    let d = &scratch();
    let writes = ["write -P 0xb0 0 1M", "write -P 0xb1 2096640 512"];
    written_image(d, "vmdk", "base.vmdk", "2M", &writes);
    create_overlay(d, "vmdk", "", "delta.vmdk", "2M", ("base.vmdk", "vmdk"));
    qemu_io("delta.vmdk", &["write -P 0xd0 512k 64k"], d);
    let info = verify(d, "delta.vmdk", &["base.vmdk", "delta.vmdk"], true);
    assert_eq!(info["format-specific"]["parent"], "base.vmdk");
    finding_message(&info, "backing-file", "critical");
    assert_eq!(info["safety"]["safe"], false);
    assert_has_role(&info, "base.vmdk", "backing");

    // Missing parent: info works, convert fails naming it.
    let info = info_json(&["delta.vmdk"], d);
    assert_eq!(info["convertible"], false);
    finding_message(&info, "backing-file", "critical");
    let err = convert_fails(d, &["delta.vmdk"]);
    assert!(err.contains("base.vmdk"), "{err}");

    // The parent changed after the delta was made (its CID differs from the delta's
    // parentCID): a warning (qemu refuses to read through such a parent).
    vmdisk_line("convert -O raw --output before.raw delta.vmdk base.vmdk", d);
    edit_descriptor(d, "base.vmdk", |t| {
        let at = t.find("\nCID=").unwrap() + 5;
        format!("{}0badc0de{}", &t[..at], &t[at + 8..])
    });
    let info = info_json(&["delta.vmdk", "base.vmdk"], d);
    finding_message(&info, "parent-mismatch", "warning");
}

/// A parent given as a path is resolved by its base name only, with a Critical finding; a delta
/// naming itself as its parent fails cleanly.
#[test]
fn parent_path_and_self_parent() {
    let d = &scratch();
    written_image(d, "vmdk", "base.vmdk", "1M", &["write -P 0xb0 0 64k"]);
    create_overlay(d, "vmdk", "", "delta.vmdk", "1M", ("base.vmdk", "vmdk"));
    std::fs::copy(path(d, "delta.vmdk"), path(d, "abs.vmdk")).unwrap();
    edit_descriptor(d, "abs.vmdk", |t| {
        t.replace("\"base.vmdk\"", "\"/etc/base.vmdk\"")
    });
    let info = info_json(&["abs.vmdk", "base.vmdk"], d);
    assert!(
        findings(&info)
            .iter()
            .any(|f| f.0 == "backing-file" && f.1 == "critical" && f.2.contains("path")),
        "{info}"
    );
    assert_eq!(info["convertible"], true);
    vmdisk_line("convert -O raw --output o.raw abs.vmdk base.vmdk", d);
    assert_same("base.vmdk", "o.raw", d);

    std::fs::copy(path(d, "delta.vmdk"), path(d, "self.vmdk")).unwrap();
    edit_descriptor(d, "self.vmdk", |t| {
        t.replace("\"base.vmdk\"", "\"self.vmdk\"")
    });
    info_fails_naming(d, &["self.vmdk"], "own files");
}
