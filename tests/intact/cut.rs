//! Images cut to 60% of their length.

use super::*;
use std::path::Path;

const MIB: u64 = 1 << 20;
/// Where the test writes data: 4 MiB at each of these MiB offsets of a 1 GiB disk.
const SPOTS: [u64; 6] = [0, 100, 300, 500, 700, 900];

/// A 1 GiB image of qemu format `fmt` (with `opts`): a small write at every spot first, so the
/// tables sit at the front of the file, then 4 MiB at each.
pub fn spread(dir: &Path, name: &str, fmt: &str, opts: &[&str]) {
    let mut args = vec!["create", "-q", "-f", fmt];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[name, "1G"]);
    qemu_img(&args, dir);
    let small: Vec<String> = SPOTS
        .iter()
        .map(|s| format!("write -P 0x11 {s}M 64k"))
        .collect();
    let big: Vec<String> = SPOTS
        .iter()
        .map(|s| format!("write -P 0x5a {s}M 4M"))
        .collect();
    let cmds: Vec<&str> = small.iter().chain(&big).map(String::as_str).collect();
    let mut io = vec!["-f", fmt];
    io.extend(cmds.iter().flat_map(|c| ["-c", *c]));
    io.push(name);
    ok("qemu-io", &io, dir);
}

/// Bytes of mapped guest data `qemu-img map` places at or past `cut` in the file.
pub fn stored_past(dir: &Path, name: &str, cut: u64) -> u64 {
    let map = json(&qemu_img(&["map", "--output=json", name], dir));
    map.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let off = e["offset"].as_u64()?;
            let len = e["length"].as_u64().unwrap();
            (e["data"] == true).then(|| (off + len).saturating_sub(cut).min(len))
        })
        .sum()
}

/// The findings of `code` in `vmdisk info`.
pub fn with_code(dir: &Path, name: &str, code: &str) -> Vec<serde_json::Value> {
    with_code_in(dir, &[name], code)
}

/// The findings of `code` in `vmdisk info` of an image made of `files`.
pub fn with_code_in(dir: &Path, files: &[&str], code: &str) -> Vec<serde_json::Value> {
    let info = info_json(files, dir);
    let all = info["safety"]["findings"].as_array().unwrap().clone();
    all.into_iter().filter(|f| f["code"] == code).collect()
}

/// The message of the one critical `code` finding of `files`.
pub fn the_one(dir: &Path, files: &[&str], code: &str) -> String {
    let found = with_code_in(dir, files, code);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "critical", "{found:?}");
    found[0]["message"].as_str().unwrap().to_string()
}

/// The byte count a `truncated` finding states ("(... in all, N bytes)").
pub fn lost_bytes(f: &serde_json::Value) -> u64 {
    let m = f["message"].as_str().unwrap();
    let at = m
        .find(" bytes)")
        .unwrap_or_else(|| panic!("no byte count in {m}"));
    let digits = m[..at].rsplit(' ').next().unwrap();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no byte count in {m}"))
}

pub fn cut_copy(dir: &Path, from: &str, to: &str) -> u64 {
    std::fs::copy(path(dir, from), path(dir, to)).unwrap();
    let len = std::fs::metadata(path(dir, to)).unwrap().len();
    let cut = len * 6 / 10;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path(dir, to))
        .unwrap();
    f.set_len(cut).unwrap();
    cut
}

/// `fmt` cut to 60%: one critical `truncated` finding stating the bytes past the cut within
/// one allocation unit (`unit`) of what qemu-img map says; the uncut image has none.
fn cut_case(fmt: &str, opts: &[&str], unit: u64) {
    let dir = &scratch();
    spread(dir, "whole", fmt, opts);
    assert!(with_code(dir, "whole", "truncated").is_empty(), "{fmt}");
    assert!(with_code(dir, "whole", "corrupt").is_empty(), "{fmt}");
    let cut = cut_copy(dir, "whole", "cut");
    let expected = stored_past(dir, "whole", cut);
    assert!(
        expected > 0,
        "{fmt}: the cut at {cut} leaves all data inside"
    );
    let found = with_code(dir, "cut", "truncated");
    assert_eq!(found.len(), 1, "{fmt}: {found:?}");
    assert_eq!(found[0]["severity"], "critical", "{fmt}");
    let lost = lost_bytes(&found[0]);
    assert!(
        lost.abs_diff(expected) <= unit,
        "{fmt}: vmdisk says {lost} bytes past the end, qemu-img map {expected}"
    );
    assert_eq!(info_json(&["cut"], dir)["convertible"], false, "{fmt}");
    let err = vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "cut"], dir);
    assert!(err.contains("past the end"), "{fmt}: {err}");
}

#[test]
fn qcow2_v3() {
    cut_case("qcow2", &[], 64 << 10);
}

#[test]
fn qcow2_v2() {
    cut_case("qcow2", &["-o", "compat=0.10"], 64 << 10);
}

#[test]
fn qcow() {
    cut_case("qcow", &[], 4 << 10);
}

#[test]
fn qed() {
    cut_case("qed", &[], 64 << 10);
}

#[test]
fn vmdk_monolithic_sparse() {
    cut_case("vmdk", &[], 64 << 10);
}

#[test]
fn vpc_dynamic() {
    cut_case("vpc", &[], 2 * MIB);
}

#[test]
fn vdi_dynamic() {
    cut_case("vdi", &[], MIB);
}

/// Dynamic VHDX with 1 MiB blocks, so that "within one block" is a close bound. qemu-img map
/// gives no host offsets for VHDX (qemu 10.0 has no block status for it), so the reference is
/// the uncut image's BAT read here ([MS-VHDX] 2.5: state 6 = fully present, offset in MiB
/// from bit 20; one sector bitmap entry after every `chunk ratio` payload entries, which a
/// 1 GiB disk of 1 MiB blocks with 512-byte sectors (ratio 4096) never reaches).
#[test]
fn vhdx_dynamic() {
    let dir = &scratch();
    spread(dir, "whole", "vhdx", &["-o", "block_size=1M"]);
    assert!(with_code(dir, "whole", "truncated").is_empty());
    assert!(with_code(dir, "whole", "corrupt").is_empty());
    let cut = cut_copy(dir, "whole", "cut");
    let f = std::fs::read(path(dir, "whole")).unwrap();
    let bat = super::tables::vhdx_bat(&f) as usize;
    let expected: u64 = (0..1024)
        .map(|i| u64::from_le_bytes(f[bat + i * 8..bat + i * 8 + 8].try_into().unwrap()))
        .filter(|e| e & 7 == 6)
        .map(|e| ((e >> 20 << 20) + MIB).saturating_sub(cut).min(MIB))
        .sum();
    assert!(expected > 0, "the cut at {cut} leaves all data inside");
    let found = with_code(dir, "cut", "truncated");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "critical");
    let lost = lost_bytes(&found[0]);
    assert!(
        lost.abs_diff(expected) <= MIB,
        "vmdisk says {lost} bytes past the end, the BAT {expected}"
    );
    let err = vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "cut"], dir);
    assert!(err.contains("past the end"), "{err}");
}

#[test]
fn parallels() {
    cut_case("parallels", &[], MIB);
}

/// qemu-img map gives no offsets for compressed grains: the bound is the data written.
#[test]
fn vmdk_stream_optimized() {
    let dir = &scratch();
    spread(dir, "src.qcow2", "qcow2", &[]);
    qemu_img(
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "src.qcow2",
            "whole",
        ],
        dir,
    );
    assert!(with_code(dir, "whole", "truncated").is_empty());
    cut_copy(dir, "whole", "cut");
    let found = with_code(dir, "cut", "truncated");
    assert_eq!(found.len(), 1, "{found:?}");
    let lost = lost_bytes(&found[0]);
    assert!(lost > 0 && lost <= SPOTS.len() as u64 * 4 * MIB, "{lost}");
    assert_eq!(lost % (64 << 10), 0, "{lost}: whole grains");
    // qemu-img check sees the cut too.
    let check = run("qemu-img", &["check", "cut"], dir);
    assert!(!check.status.success());
}

/// A VDI block map entry far past the end of the file: one block of guest data lost.
#[test]
fn vdi_entry_far_past_the_end() {
    let dir = &scratch();
    spread(dir, "far.vdi", "vdi", &[]);
    let hdr = std::fs::read(path(dir, "far.vdi")).unwrap();
    // VDICore.h VDIHEADER1PLUS: offBlocks at 0x154 (after the 0x48 pre-header... as qemu).
    let map = u32::from_le_bytes(hdr[0x154..0x158].try_into().unwrap()) as u64;
    write_at(&path(dir, "far.vdi"), map, &0x00ff_0000u32.to_le_bytes());
    let found = with_code(dir, "far.vdi", "truncated");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(lost_bytes(&found[0]), MIB);
}
