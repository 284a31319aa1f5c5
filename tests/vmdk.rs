//! VMDK reader: differential tests against qemu-img for every layout it creates, hand-built
//! fixtures (checked against the VMware spec and qemu's reader) for what it cannot create
//! (streams with a footer, vmfs, vmfsSparse/COWD, seSparse, mixed descriptors), and damaged
//! images that must fail cleanly.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use vmdisk::codec::{Codec, compress};

// ---------------------------------------------------------------------------------------------
// Helpers

/// One map row reduced to what both tools must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    start: u64,
    length: u64,
    depth: u64,
    /// "unallocated", "zero", "data" or "compressed".
    kind: &'static str,
}

/// Normalise `qemu-img map` / `vmdisk map` JSON and merge neighbours of the same kind.
fn normalise(map: &Value) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![];
    for r in map.as_array().expect("map is an array") {
        let b = |k: &str| r[k].as_bool().unwrap_or(false);
        let kind = if !b("present") {
            "unallocated"
        } else if b("compressed") {
            "compressed"
        } else if b("data") {
            "data"
        } else {
            "zero"
        };
        let row = Row {
            start: r["start"].as_u64().unwrap(),
            length: r["length"].as_u64().unwrap(),
            depth: r["depth"].as_u64().unwrap(),
            kind,
        };
        if let Some(last) = rows.last_mut() {
            assert_eq!(last.start + last.length, row.start, "rows must tile");
            if last.depth == row.depth && last.kind == row.kind {
                last.length += row.length;
                continue;
            }
        }
        rows.push(row);
    }
    rows
}

/// vmdisk and qemu agree on `img` (handed to vmdisk with `files`, in that order): content,
/// virtual size and, when `map` is set, the extent map. Returns vmdisk's info.
fn verify(dir: &Path, img: &str, files: &[&str], map: bool) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.raw", dir);
    assert_eq!(
        std::fs::metadata(path(dir, "vmdisk-out.raw"))
            .unwrap()
            .len(),
        size
    );
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
    let info = info_json(files, dir);
    assert_eq!(info["format"], "vmdk", "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");
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
        let theirs = normalise(&json(&qemu_img(&["map", "--output=json", img], dir)));
        let mut args = vec!["map", "--json"];
        args.extend(files);
        let ours = normalise(&json(&vmdisk(&args, dir)));
        assert_eq!(ours, theirs, "map of {img}");
    }
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

fn has_finding(info: &Value, code: &str, severity: &str) -> String {
    findings(info)
        .into_iter()
        .find(|f| f.0 == code && f.1 == severity)
        .unwrap_or_else(|| panic!("no {severity} {code} finding in {info}"))
        .2
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `vmdisk convert` must fail with one line and leave nothing behind.
fn convert_fails(dir: &Path, files: &[&str]) -> String {
    let before = listing(dir);
    let mut args = vec!["convert", "-O", "raw", "--output", "out.raw"];
    args.extend(files);
    let err = vmdisk_fails(&args, dir);
    assert_eq!(listing(dir), before, "convert left files behind: {err}");
    err
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
    let mut args = vec!["create", "-q", "-f", "vmdk"];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend(extra);
    args.extend([name, size]);
    qemu_img(&args, dir);
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
    let dir = tmp();
    let d = dir.path();
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
    let dir = tmp();
    let d = dir.path();
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
    let dir = tmp();
    let d = dir.path();
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
    let dir = tmp();
    let d = dir.path();
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
            qemu_img(
                &[
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vmdk",
                    "-o",
                    &format!("subformat={sub}"),
                    "src.raw",
                    &out,
                ],
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
    let dir = tmp();
    let d = dir.path();
    create(d, "base.vmdk", "", "2M", &[]);
    qemu_io(
        "base.vmdk",
        &["write -P 0xb0 0 1M", "write -P 0xb1 2096640 512"],
        d,
    );
    create(
        d,
        "delta.vmdk",
        "",
        "2M",
        &["-b", "base.vmdk", "-F", "vmdk"],
    );
    qemu_io("delta.vmdk", &["write -P 0xd0 512k 64k"], d);
    let info = verify(d, "delta.vmdk", &["base.vmdk", "delta.vmdk"], true);
    assert_eq!(info["format-specific"]["parent"], "base.vmdk");
    has_finding(&info, "backing-file", "critical");
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
        roles.contains(&("base.vmdk".into(), "backing".into())),
        "{roles:?}"
    );

    // Missing parent: info works, convert fails naming it.
    let info = info_json(&["delta.vmdk"], d);
    assert_eq!(info["convertible"], false);
    has_finding(&info, "backing-file", "critical");
    let err = convert_fails(d, &["delta.vmdk"]);
    assert!(err.contains("base.vmdk"), "{err}");

    // The parent changed after the delta was made (its CID differs from the delta's
    // parentCID): a warning (qemu refuses to read through such a parent).
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "before.raw",
            "delta.vmdk",
            "base.vmdk",
        ],
        d,
    );
    edit_descriptor(d, "base.vmdk", |t| {
        let at = t.find("\nCID=").unwrap() + 5;
        format!("{}0badc0de{}", &t[..at], &t[at + 8..])
    });
    let info = info_json(&["delta.vmdk", "base.vmdk"], d);
    has_finding(&info, "parent-mismatch", "warning");
}

/// A parent given as a path is resolved by its base name only, with a Critical finding; a delta
/// naming itself as its parent fails cleanly.
#[test]
fn parent_path_and_self_parent() {
    let dir = tmp();
    let d = dir.path();
    create(d, "base.vmdk", "", "1M", &[]);
    qemu_io("base.vmdk", &["write -P 0xb0 0 64k"], d);
    create(
        d,
        "delta.vmdk",
        "",
        "1M",
        &["-b", "base.vmdk", "-F", "vmdk"],
    );
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
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "o.raw",
            "abs.vmdk",
            "base.vmdk",
        ],
        d,
    );
    assert_same("base.vmdk", "o.raw", d);

    std::fs::copy(path(d, "delta.vmdk"), path(d, "self.vmdk")).unwrap();
    edit_descriptor(d, "self.vmdk", |t| {
        t.replace("\"base.vmdk\"", "\"self.vmdk\"")
    });
    let err = vmdisk_fails(&["info", "self.vmdk"], d);
    assert!(err.contains("own files"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Hand-built fixtures (qemu reads them but cannot create them)

/// A hosted sparse extent built per the spec. `grains`: (grain index, 64 KiB of data) with
/// `None` data for a zeroed grain (GTE 1).
struct SparseSpec<'a> {
    capacity: u64,
    grains: &'a [(u64, Option<Vec<u8>>)],
    compressed: bool,
    /// streamOptimized written in one pass: the grain directory is found through the footer.
    footer: bool,
    descriptor: Option<&'a str>,
}

const GRAIN: u64 = 65536;

fn sector_pad(v: &mut Vec<u8>) {
    let n = v.len().div_ceil(512) * 512;
    v.resize(n, 0);
}

fn kdmv_header(
    capacity_sectors: u64,
    flags: u32,
    gd: u64,
    rgd: u64,
    desc: (u64, u64),
    compress: u16,
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    put(&mut h, 0, b"KDMV");
    put(&mut h, 4, &le32(if compress != 0 { 3 } else { 1 }));
    put(&mut h, 8, &le32(flags));
    put(&mut h, 12, &le64(capacity_sectors));
    put(&mut h, 20, &le64(GRAIN / 512));
    put(&mut h, 28, &le64(desc.0));
    put(&mut h, 36, &le64(desc.1));
    put(&mut h, 44, &le32(512));
    put(&mut h, 48, &le64(rgd));
    put(&mut h, 56, &le64(gd));
    put(&mut h, 64, &le64(128));
    put(&mut h, 73, b"\n \r\n");
    put(&mut h, 77, &compress.to_le_bytes());
    h
}

fn build_sparse(s: &SparseSpec) -> Vec<u8> {
    let cap_sectors = s.capacity / 512;
    let gts = s.capacity.div_ceil(GRAIN * 512);
    let mut flags = 1 | 4; // newline detection, zeroed grains
    if s.compressed {
        flags |= (1 << 16) | (1 << 17);
    }
    let desc_at = (1u64, 20u64);
    let mut f = vec![0u8; 128 * 512];
    if let Some(t) = s.descriptor {
        put(&mut f, 512, t.as_bytes());
    }
    let mut gt = vec![0u32; (gts * 512) as usize];
    for (idx, data) in s.grains {
        match data {
            None => gt[*idx as usize] = 1,
            Some(bytes) => {
                sector_pad(&mut f);
                gt[*idx as usize] = (f.len() / 512) as u32;
                if s.compressed {
                    let z = compress(Codec::Zlib, bytes, usize::MAX).unwrap().unwrap();
                    f.extend_from_slice(&le64(idx * GRAIN / 512));
                    f.extend_from_slice(&le32(z.len() as u32));
                    f.extend_from_slice(&z);
                } else {
                    f.extend_from_slice(bytes);
                }
            }
        }
    }
    sector_pad(&mut f);
    // Grain tables (each behind a metadata marker in a stream), then the directory.
    let mut gd = vec![];
    for t in 0..gts as usize {
        if s.compressed {
            let mut m = vec![0u8; 512];
            put(&mut m, 0, &le64(4));
            put(&mut m, 12, &le32(1));
            f.extend_from_slice(&m);
        }
        gd.push((f.len() / 512) as u32);
        for e in &gt[t * 512..(t + 1) * 512] {
            f.extend_from_slice(&le32(*e));
        }
    }
    if s.compressed {
        let mut m = vec![0u8; 512];
        put(&mut m, 0, &le64(gd.len().div_ceil(128) as u64));
        put(&mut m, 12, &le32(2));
        f.extend_from_slice(&m);
    }
    let gd_at = (f.len() / 512) as u64;
    for e in &gd {
        f.extend_from_slice(&le32(*e));
    }
    sector_pad(&mut f);
    let compress_alg = u16::from(s.compressed);
    if s.footer {
        let mut m = vec![0u8; 512];
        put(&mut m, 0, &le64(1));
        put(&mut m, 12, &le32(3));
        f.extend_from_slice(&m);
        f.extend_from_slice(&kdmv_header(
            cap_sectors,
            flags,
            gd_at,
            0,
            desc_at,
            compress_alg,
        ));
        f.extend_from_slice(&[0u8; 512]); // end-of-stream marker
        let h = kdmv_header(cap_sectors, flags, u64::MAX, 0, desc_at, compress_alg);
        f[..512].copy_from_slice(&h);
    } else {
        let h = kdmv_header(cap_sectors, flags, gd_at, 0, desc_at, compress_alg);
        f[..512].copy_from_slice(&h);
    }
    f
}

fn grain_data(seed: u64) -> Vec<u8> {
    if seed.is_multiple_of(2) {
        noise(GRAIN as usize, seed)
    } else {
        text(GRAIN as usize, seed)
    }
}

/// streamOptimized as VMware writes it in one pass: the header's GD offset is GD_AT_END and
/// the real header is in the footer; grain markers, metadata markers, zeroed grains, grains
/// out of guest order.
#[test]
fn stream_with_footer() {
    let dir = tmp();
    let d = dir.path();
    let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\nRW 1026 SPARSE \"s.vmdk\"\n\nddb.adapterType = \"lsilogic\"\nddb.uuid.image = \"3b1c1b8c-1111-2222-3333-444455556666\"\n";
    let grains = vec![
        (5, Some(grain_data(1))),
        (0, Some(grain_data(2))),
        (2, None),
        // The last grain is only partly inside the disk but stored whole, as VMware does.
        (8, Some(grain_data(3))),
    ];
    let img = build_sparse(&SparseSpec {
        capacity: 8 * GRAIN + 1024,
        grains: &grains,
        compressed: true,
        footer: true,
        descriptor: Some(desc),
    });
    std::fs::write(path(d, "s.vmdk"), &img).unwrap();
    let info = verify(d, "s.vmdk", &["s.vmdk"], true);
    let fs = &info["format-specific"];
    assert_eq!(fs["extents"][0]["sparse"]["footer"], true, "{fs}");
    assert_eq!(fs["adapter-type"], "lsilogic");
    assert_eq!(fs["uuid"], "3b1c1b8c-1111-2222-3333-444455556666");
    assert_eq!(fs["cid"], "12345678");

    // A damaged footer fails cleanly.
    let mut bad = img.clone();
    let n = bad.len();
    bad[n - 1024] = b'X';
    std::fs::write(path(d, "bad.vmdk"), &bad).unwrap();
    let err = vmdisk_fails(&["info", "bad.vmdk"], d);
    assert!(err.contains("footer"), "{err}");
}

/// Uncompressed hand-built sparse extent with zeroed grains (GTE 1) and an odd capacity.
#[test]
fn hand_built_sparse_with_zeroed_grains() {
    let dir = tmp();
    let d = dir.path();
    let grains = vec![
        (0, Some(grain_data(4))),
        (1, None),
        (3, Some(grain_data(5))),
    ];
    let img = build_sparse(&SparseSpec {
        capacity: 3 * GRAIN + 4096,
        grains: &grains,
        compressed: false,
        footer: false,
        descriptor: Some(
            "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n",
        ),
    });
    std::fs::write(path(d, "h.vmdk"), &img).unwrap();
    verify(d, "h.vmdk", &["h.vmdk"], true);
}

/// An ESX sparse (COWD) extent: 4096 entries per grain table, 32-bit fields.
fn build_cowd(capacity_sectors: u32, grain_sectors: u32, grains: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let span = 4096 * grain_sectors as u64;
    let gd_entries = (capacity_sectors as u64).div_ceil(span);
    let mut f = vec![0u8; 2048];
    put(&mut f, 0, b"COWD");
    put(&mut f, 4, &le32(1));
    put(&mut f, 8, &le32(3));
    put(&mut f, 12, &le32(capacity_sectors));
    put(&mut f, 16, &le32(grain_sectors));
    put(&mut f, 20, &le32(4));
    put(&mut f, 24, &le32(gd_entries as u32));
    let gd_at = 2048;
    let gt_at = gd_at + (gd_entries as usize * 4).div_ceil(512) * 512;
    f.resize(gt_at + gd_entries as usize * 16384, 0);
    for i in 0..gd_entries as usize {
        put(
            &mut f,
            gd_at + i * 4,
            &le32(((gt_at + i * 16384) / 512) as u32),
        );
    }
    for (idx, data) in grains {
        sector_pad(&mut f);
        let sector = (f.len() / 512) as u32;
        let (t, e) = (*idx / 4096, *idx % 4096);
        put(
            &mut f,
            gt_at + t as usize * 16384 + e as usize * 4,
            &le32(sector),
        );
        f.extend_from_slice(data);
    }
    sector_pad(&mut f);
    f
}

#[test]
fn vmfs_sparse_cowd() {
    let dir = tmp();
    let d = dir.path();
    let g = 8 * 512;
    let grains = vec![
        (0, noise(g, 1)),
        (4095, text(g, 2)),
        (4096, noise(g, 3)),
        (5000, text(g, 4)),
    ];
    std::fs::write(path(d, "c-delta.vmdk"), build_cowd(40960 + 3, 8, &grains)).unwrap();
    std::fs::write(
        path(d, "c.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\n# Extent description\nRW 40963 VMFSSPARSE \"c-delta.vmdk\"\n",
    )
    .unwrap();
    let info = verify(d, "c.vmdk", &["c-delta.vmdk", "c.vmdk"], true);
    assert_eq!(
        info["format-specific"]["extents"][0]["sparse"]["kind"],
        "cowd"
    );
    // The COWD file alone is an image too (qemu refuses it: it looks for a CID at sector 1).
    let alone = info_json(&["c-delta.vmdk"], d);
    assert_eq!(alone["format-specific"]["create-type"], "vmfsSparse");
    assert_eq!(alone["virtual-size"], 40963 * 512);
}

/// seSparse (qemu reads it, cannot create it): 64-bit entries, allocated / zero / unmapped
/// grain kinds.
fn build_sesparse(capacity_sectors: u64, grains: &[(u64, Option<Vec<u8>>)]) -> Vec<u8> {
    let gts = capacity_sectors.div_ceil(4096 * 8);
    let gd_sectors = (gts * 8).div_ceil(512).max(1);
    let gd_at = 2u64;
    let gt_at = gd_at + gd_sectors;
    let grains_at = gt_at + gts * 64;
    let mut h = vec![0u8; 512];
    let fields: [(usize, u64); 18] = [
        (0, 0xcafe_babe),
        (1, 0x2_0000_0001),
        (2, capacity_sectors),
        (3, 8),
        (4, 64),
        (10, 1),
        (11, 1),
        (16, gd_at),
        (17, gd_sectors),
        (18, gt_at),
        (19, gts * 64),
        (24, grains_at),
        (25, grains.len() as u64 * 8),
        (12, 0),
        (13, 0),
        (14, 0),
        (15, 0),
        (20, 0),
    ];
    for (i, v) in fields {
        put(&mut h, i * 8, &le64(v));
    }
    let mut f = h;
    let mut vol = vec![0u8; 512];
    put(&mut vol, 0, &le64(0xcafe_cafe));
    f.extend_from_slice(&vol);
    f.resize((grains_at * 512) as usize, 0);
    for t in 0..gts {
        put(
            &mut f,
            (gd_at * 512 + t * 8) as usize,
            &le64(0x1000_0000_0000_0000 | t),
        );
    }
    let mut next = 0u64;
    for (idx, data) in grains {
        let (t, e) = (idx / 4096, idx % 4096);
        let at = ((gt_at + t * 64) * 512 + e * 8) as usize;
        let entry = match data {
            None if idx % 2 == 0 => 0x2000_0000_0000_0000,
            None => 0x1000_0000_0000_0000,
            Some(bytes) => {
                let c = next;
                next += 1;
                put(&mut f, ((grains_at + c * 8) * 512) as usize, bytes);
                0x3000_0000_0000_0000 | ((c & 0xfff) << 48) | (c >> 12)
            }
        };
        put(&mut f, at, &le64(entry));
    }
    f
}

#[test]
fn sesparse_fixture() {
    let dir = tmp();
    let d = dir.path();
    let g = 4096;
    let grains = vec![
        (3, Some(noise(g, 1))),
        (0, Some(text(g, 2))),
        (4, None),
        (5, None),
        (4097, Some(noise(g, 3))),
        (8199, Some(text(g, 4))),
    ];
    std::fs::write(
        path(d, "se-sesparse.vmdk"),
        build_sesparse(65536 + 64, &grains),
    )
    .unwrap();
    std::fs::write(
        path(d, "se.vmdk"),
        "# Disk DescriptorFile\r\nversion=1\r\nCID=1\r\nparentCID=ffffffff\r\ncreateType=\"seSparse\"\r\nRW 65600 SESPARSE \"se-sesparse.vmdk\"\r\n",
    )
    .unwrap();
    let info = verify(d, "se.vmdk", &["se.vmdk", "se-sesparse.vmdk"], true);
    assert_eq!(
        info["format-specific"]["extents"][0]["sparse"]["kind"],
        "sesparse"
    );
    // A journal to replay is refused, like qemu.
    let mut dirty = build_sesparse(65536 + 64, &grains);
    put(&mut dirty, 512 + 24, &le64(1));
    std::fs::write(path(d, "se-sesparse.vmdk"), &dirty).unwrap();
    let err = vmdisk_fails(&["info", "se.vmdk", "se-sesparse.vmdk"], d);
    assert!(err.contains("journal"), "{err}");
}

/// createType="vmfs": a descriptor with one VMFS (flat) extent.
#[test]
fn vmfs_flat() {
    let dir = tmp();
    let d = dir.path();
    let mut data = noise(1 << 20, 9);
    data.extend(text(4096, 3));
    std::fs::write(path(d, "v-flat.vmdk"), &data).unwrap();
    std::fs::write(
        path(d, "v.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=abcdef01\nparentCID=ffffffff\ncreateType=\"vmfs\"\n# Extent description\nRW 2056 VMFS \"v-flat.vmdk\"\n\nddb.geometry.cylinders = \"1\"\nddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n",
    )
    .unwrap();
    let info = verify(d, "v.vmdk", &["v.vmdk", "v-flat.vmdk"], false);
    assert_eq!(info["format-specific"]["geometry"]["heads"], 255);
    assert_eq!(info["format-specific"]["extents"][0]["type"], "VMFS");
}

/// One descriptor mixing FLAT (with an offset into its file), SPARSE (hosted), VMFSSPARSE
/// (COWD) and VMFS extents; written with CRLF, comments, odd spacing, lower-case keywords.
/// All extents are RW, so qemu reads it too.
#[test]
fn mixed_extents_descriptor() {
    let dir = tmp();
    let d = dir.path();
    let mut flat = text(4096, 1);
    flat.extend(noise(256 * 1024, 2));
    std::fs::write(path(d, "m-a.bin"), &flat).unwrap();
    create(d, "m-b.vmdk", "", "512k", &[]);
    qemu_io(
        "m-b.vmdk",
        &["write -P 0x66 64k 64k", "write -P 0x67 523776 512"],
        d,
    );
    std::fs::write(
        path(d, "m-c.vmdk"),
        build_cowd(64, 1, &[(0, noise(512, 5)), (63, text(512, 6))]),
    )
    .unwrap();
    std::fs::write(path(d, "m-d.bin"), noise(8192, 7)).unwrap();
    let desc = "# Disk DescriptorFile\r\nversion=1\r\nCID=0000abcd\r\nparentCID=ffffffff\r\n# a comment\r\ncreateType=\"monolithicFlat\"\r\n# Extent description\r\nRW 512 FLAT \"m-a.bin\" 8\r\nRW  1024  SPARSE  \"m-b.vmdk\"\r\nRW 64 VMFSSPARSE \"m-c.vmdk\"\r\nRW 16 VMFS \"m-d.bin\"\r\n\r\nddb.adapterType=\"buslogic\"\r\n";
    std::fs::write(path(d, "m.vmdk"), desc).unwrap();
    let files = ["m-d.bin", "m-c.vmdk", "m.vmdk", "m-b.vmdk", "m-a.bin"];
    let info = verify(d, "m.vmdk", &files, false);
    let fs = &info["format-specific"];
    assert_eq!(fs["extent-count"], 4);
    assert_eq!(fs["extents"][0]["offset"], 8);
    assert_eq!(fs["extents"][1]["type"], "SPARSE");
    assert_eq!(fs["adapter-type"], "buslogic");
    assert_eq!(fs["cid"], "0000abcd");
    vmdisk(
        &[
            "convert", "-O", "raw", "--output", "m.raw", "m.vmdk", "m-a.bin", "m-b.vmdk",
            "m-c.vmdk", "m-d.bin",
        ],
        d,
    );
    let want = std::fs::read(path(d, "m.raw")).unwrap();

    // The same descriptor as other writers spell it: keywords in other cases, blank lines and
    // indented comments, quoted values with spaces around `=`, no trailing newline. qemu
    // matches keywords case-sensitively and counts an extent line after a blank line twice
    // (its line scanner skips the newline), so only vmdisk's reading is checked here.
    let loose = "# Disk DescriptorFile\n\n  version = 1\ncid = \"0000abcd\"\n\n   # a comment\ncreatetype = \"monolithicFlat\"\n\nrw 512 flat \"m-a.bin\" 8\n\nRW\t1024\tSparse\t\"m-b.vmdk\"\nRW 64 VMFSSPARSE \"m-c.vmdk\"\nRW 16 vmfs \"m-d.bin\"\nDDB.ADAPTERTYPE = \"buslogic\"";
    std::fs::write(path(d, "loose.vmdk"), loose).unwrap();
    let lfiles = ["m-a.bin", "m-b.vmdk", "loose.vmdk", "m-c.vmdk", "m-d.bin"];
    converts_to(d, &lfiles, &want);
    let info = info_json(&lfiles, d);
    assert_eq!(info["format-specific"]["create-type"], "monolithicFlat");
    assert_eq!(info["format-specific"]["cid"], "0000abcd");
    assert_eq!(info["format-specific"]["adapter-type"], "buslogic");
    assert_eq!(info["virtual-size"], want.len() as u64);
    assert_eq!(info["virtual-size"], (512 + 1024 + 64 + 16) * 512);
}

/// ZERO, RDONLY and NOACCESS extents. The spec makes every extent line part of the disk;
/// qemu skips lines that are not RW and ZERO extents, so its disk is shorter (qemu is wrong
/// here): we check the content against the expected bytes instead.
#[test]
fn zero_rdonly_noaccess_extents() {
    let dir = tmp();
    let d = dir.path();
    let a = noise(4096, 1);
    let b = text(8192, 2);
    std::fs::write(path(d, "z-a.bin"), &a).unwrap();
    std::fs::write(path(d, "z-b.bin"), &b).unwrap();
    std::fs::write(
        path(d, "z.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"z-a.bin\" 0\nRW 16 ZERO\nRDONLY 16 FLAT \"z-b.bin\" 0\nNOACCESS 4 FLAT \"z-a.bin\" 0\n",
    )
    .unwrap();
    let mut want = a.clone();
    want.extend(vec![0; 8192]);
    want.extend(&b);
    want.extend(vec![0; 2048]);
    converts_to(d, &["z.vmdk", "z-a.bin", "z-b.bin"], &want);
    let info = info_json(&["z.vmdk", "z-a.bin", "z-b.bin"], d);
    assert_eq!(info["virtual-size"], want.len() as u64);
    has_finding(&info, "noaccess-extent", "warning");
    let q = qemu_info("z.vmdk", d);
    assert_eq!(
        q["virtual-size"], 4096,
        "qemu counts only the RW non-ZERO extent"
    );
}

// ---------------------------------------------------------------------------------------------
// Companions: paths, missing files, order

#[test]
fn extent_paths_and_missing_extents() {
    let dir = tmp();
    let d = dir.path();
    create(d, "p.vmdk", "subformat=monolithicFlat", "1M", &[]);
    qemu_io("p.vmdk", &["write -P 0x70 0 4k"], d);
    let desc = std::fs::read_to_string(path(d, "p.vmdk")).unwrap();
    // A path: resolved by base name among the supplied files, Critical finding.
    std::fs::write(
        path(d, "abs.vmdk"),
        desc.replace("\"p-flat.vmdk\"", "\"/vmfs/volumes/ds/p-flat.vmdk\""),
    )
    .unwrap();
    let info = info_json(&["abs.vmdk", "p-flat.vmdk"], d);
    has_finding(&info, "external-extent", "critical");
    assert_eq!(info["safety"]["safe"], false);
    vmdisk(
        &[
            "convert",
            "-O",
            "raw",
            "--output",
            "o.raw",
            "abs.vmdk",
            "p-flat.vmdk",
        ],
        d,
    );
    assert_same("p.vmdk", "o.raw", d);
    std::fs::remove_file(path(d, "o.raw")).unwrap();
    std::fs::write(
        path(d, "dots.vmdk"),
        desc.replace("\"p-flat.vmdk\"", "\"..\\\\p-flat.vmdk\""),
    )
    .unwrap();
    has_finding(
        &info_json(&["dots.vmdk", "p-flat.vmdk"], d),
        "external-extent",
        "critical",
    );

    // Missing: info reports it, convert fails in one line naming the file.
    let info = info_json(&["p.vmdk"], d);
    assert_eq!(info["convertible"], false);
    let msg = has_finding(&info, "missing-extent", "warning");
    assert!(msg.contains("p-flat.vmdk"), "{msg}");
    let err = convert_fails(d, &["p.vmdk"]);
    assert!(err.contains("p-flat.vmdk"), "{err}");
    // The path case never reads the host file, even when it exists there.
    let err = convert_fails(d, &["abs.vmdk"]);
    assert!(err.contains("p-flat.vmdk"), "{err}");
}

/// A flat extent file shorter than its extent line reads as zeros past its end (as qemu), with
/// a warning.
#[test]
fn short_flat_extent() {
    let dir = tmp();
    let d = dir.path();
    create(d, "s.vmdk", "subformat=monolithicFlat", "1M", &[]);
    qemu_io("s.vmdk", &["write -P 0x71 0 8k"], d);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path(d, "s-flat.vmdk"))
        .unwrap();
    f.set_len(6000).unwrap();
    drop(f);
    let info = verify(d, "s.vmdk", &["s.vmdk", "s-flat.vmdk"], false);
    has_finding(&info, "truncated", "warning");
}

// ---------------------------------------------------------------------------------------------
// Damage

fn damaged(d: &Path, src: &str, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path(d, src)).unwrap();
    change(&mut b);
    std::fs::write(path(d, name), &b).unwrap();
}

#[test]
fn malformed_sparse_files() {
    let dir = tmp();
    let d = dir.path();
    create(d, "g.vmdk", "", "4M", &[]);
    qemu_io("g.vmdk", &["write -P 0x80 0 1M", "write -P 0x81 3M 64k"], d);
    let len = std::fs::metadata(path(d, "g.vmdk")).unwrap().len();
    let gd = u64::from_le_bytes(
        std::fs::read(path(d, "g.vmdk")).unwrap()[56..64]
            .try_into()
            .unwrap(),
    );

    // Truncated: grains past the end.
    damaged(d, "g.vmdk", "t.vmdk", |b| b.truncate(len as usize - 65536));
    let err = convert_fails(d, &["t.vmdk"]);
    assert!(
        err.contains("truncated") || err.contains("past the end"),
        "{err}"
    );
    // Cut inside the header.
    damaged(d, "g.vmdk", "h.vmdk", |b| b.truncate(60));
    convert_fails(d, &["h.vmdk"]);
    // Grain directory past the end of the file.
    damaged(d, "g.vmdk", "gd.vmdk", |b| put(b, 56, &le64(1 << 40)));
    convert_fails(d, &["gd.vmdk"]);
    // A grain table pointer past the end.
    damaged(d, "g.vmdk", "gt.vmdk", |b| {
        put(b, gd as usize * 512, &le32(0x7fff_ffff))
    });
    convert_fails(d, &["gt.vmdk"]);
    // A grain pointer past the end (in every grain table copy).
    damaged(d, "g.vmdk", "gr.vmdk", |b| {
        let gt = u32::from_le_bytes(
            b[gd as usize * 512..gd as usize * 512 + 4]
                .try_into()
                .unwrap(),
        );
        put(b, gt as usize * 512, &le32(0x7fff_0000));
    });
    convert_fails(d, &["gr.vmdk"]);
    // Zero / huge grain sizes, huge capacity, bad version, bad newline bytes, GT size.
    for (name, at, bytes) in [
        ("g0.vmdk", 20, le64(0).to_vec()),
        ("gh.vmdk", 20, le64(1 << 40).to_vec()),
        ("cap.vmdk", 12, le64(u64::MAX / 256).to_vec()),
        ("ver.vmdk", 4, le32(9).to_vec()),
        ("nl.vmdk", 73, b"\r\n\r\n".to_vec()),
        ("gte.vmdk", 44, le32(0).to_vec()),
        ("gte2.vmdk", 44, le32(100_000).to_vec()),
    ] {
        damaged(d, "g.vmdk", name, |b| put(b, at, &bytes));
        convert_fails(d, &[name]);
    }
    // Damaged compressed data.
    std::fs::write(path(d, "r.raw"), noise(200_000, 1)).unwrap();
    qemu_img(
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "r.raw",
            "so.vmdk",
        ],
        d,
    );
    damaged(d, "so.vmdk", "so-bad.vmdk", |b| {
        for x in &mut b[65536 + 12..65536 + 40] {
            *x ^= 0x55;
        }
    });
    convert_fails(d, &["so-bad.vmdk"]);
}

#[test]
fn malformed_descriptors() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(path(d, "x-flat.vmdk"), vec![1u8; 4096]).unwrap();
    let head = "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n";
    for (name, body) in [
        ("none.vmdk", ""),
        (
            "huge.vmdk",
            "RW 36028797018963967 FLAT \"x-flat.vmdk\" 0\nRW 36028797018963967 FLAT \"x-flat.vmdk\" 0\n",
        ),
        ("self.vmdk", "RW 8 FLAT \"self.vmdk\" 0\n"),
        ("nofile.vmdk", "RW 8 SPARSE\n"),
        ("rdm.vmdk", "RW 8 VMFSRDM \"x-flat.vmdk\"\n"),
        ("odd.vmdk", "RW 8 WEIRD \"x-flat.vmdk\"\n"),
        ("notsparse.vmdk", "RW 8 SPARSE \"x-flat.vmdk\"\n"),
    ] {
        std::fs::write(path(d, name), format!("{head}{body}")).unwrap();
        let err = convert_fails(d, &[name, "x-flat.vmdk"]);
        assert!(!err.is_empty());
    }
    // Overflowing offsets into a flat file read as zeros past the file (with a warning).
    std::fs::write(
        path(d, "far.vmdk"),
        format!("{head}RW 8 FLAT \"x-flat.vmdk\" 36028797018963967\n"),
    )
    .unwrap();
    converts_to(d, &["far.vmdk", "x-flat.vmdk"], &[0; 4096]);
    // A descriptor with an extent line qemu has never heard of still gets a one-line error.
    let info = info_json(&["rdm.vmdk", "x-flat.vmdk"], d);
    has_finding(&info, "external-extent", "critical");
    assert_eq!(info["convertible"], false);
}

/// Parents that loop (a -> b -> a) end at the chain depth limit, cleanly.
#[test]
fn parent_loop() {
    let dir = tmp();
    let d = dir.path();
    let desc = |parent: &str| {
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=2\ncreateType=\"monolithicFlat\"\nparentFileNameHint=\"{parent}\"\nRW 8 FLAT \"f.bin\" 0\n"
        )
    };
    std::fs::write(path(d, "f.bin"), vec![0u8; 4096]).unwrap();
    std::fs::write(path(d, "a.vmdk"), desc("b.vmdk")).unwrap();
    std::fs::write(path(d, "b.vmdk"), desc("a.vmdk")).unwrap();
    vmdisk_fails(&["info", "a.vmdk", "b.vmdk", "f.bin"], d);
}

/// A split disk handed over without its descriptor: each extent file opens on its own (qemu
/// does the same); with the descriptor, the descriptor is the main image.
#[test]
fn descriptor_is_main_in_any_order() {
    let dir = tmp();
    let d = dir.path();
    create(d, "o.vmdk", "subformat=twoGbMaxExtentSparse", "1M", &[]);
    qemu_io("o.vmdk", &["write -P 0x90 0 64k"], d);
    for files in [["o-s001.vmdk", "o.vmdk"], ["o.vmdk", "o-s001.vmdk"]] {
        let info = info_json(&files, d);
        let main = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["role"] == "image")
            .unwrap()["name"]
            .clone();
        assert_eq!(main, "o.vmdk", "{info}");
    }
    // qemu refuses the extent alone (no CID in its empty descriptor area); vmdisk reads it.
    let info = info_json(&["o-s001.vmdk"], d);
    assert_eq!(info["format-specific"]["descriptor-file"], false);
    vmdisk(
        &["convert", "-O", "raw", "--output", "s.raw", "o-s001.vmdk"],
        d,
    );
    assert_same("o.vmdk", "s.raw", d);
}

/// qemu counts an extent line that follows a blank line twice (its scanner skips the newline
/// and reads the next line from the blank one): its disk is twice as large as the descriptor
/// says. vmdisk follows the descriptor.
#[test]
fn extent_after_blank_line_counts_once() {
    let dir = tmp();
    let d = dir.path();
    let data = noise(8192, 4);
    std::fs::write(path(d, "b-flat.vmdk"), &data).unwrap();
    std::fs::write(
        path(d, "b.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 16 FLAT \"b-flat.vmdk\" 0\n",
    )
    .unwrap();
    assert_eq!(
        qemu_info("b.vmdk", d)["virtual-size"],
        16384,
        "qemu's reading"
    );
    let info = info_json(&["b.vmdk", "b-flat.vmdk"], d);
    assert_eq!(info["virtual-size"], 8192);
    converts_to(d, &["b.vmdk", "b-flat.vmdk"], &data);
}
