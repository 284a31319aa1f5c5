//! Images whose data lives in other files (VMDK extents) or behind a footer (fixed VHD).

use super::cut::{cut_copy, lost_bytes, the_one, with_code_in};
use super::*;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// `qemu-img create -f fmt -o subformat=sub name size`.
fn create(dir: &Path, fmt: &str, sub: &str, name: &str, size: &str) {
    let sub = format!("subformat={sub}");
    qemu_img(&["create", "-q", "-f", fmt, "-o", &sub, name, size], dir);
}

/// The extent lines of a VMDK descriptor as (first guest byte, bytes, file name).
fn extents(dir: &Path, descriptor: &str) -> Vec<(u64, u64, String)> {
    let text = std::fs::read_to_string(path(dir, descriptor)).unwrap();
    let mut at = 0;
    let mut out = vec![];
    for line in text.lines().filter(|l| l.starts_with("RW ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let len = words[1].parse::<u64>().unwrap() * 512;
        out.push((at, len, words[3].trim_matches('"').to_string()));
        at += len;
    }
    out
}

/// Bytes qemu-img map puts in guest `[from, to)` at or past host offset `cut` of its file.
fn stored_past_in(dir: &Path, name: &str, (from, to): (u64, u64), cut: u64) -> u64 {
    let map = json(&qemu_img(&["map", "--output=json", name], dir));
    map.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"] == true)
        .filter(|e| (from..to).contains(&e["start"].as_u64().unwrap()))
        .map(|e| {
            let (off, len) = (e["offset"].as_u64().unwrap(), e["length"].as_u64().unwrap());
            (off + len).saturating_sub(cut).min(len)
        })
        .sum()
}

/// twoGbMaxExtentSparse: the second extent file cut to 60% after data was written there. One
/// critical `truncated` finding for the whole disk, counting what qemu-img map puts past the
/// cut of that file (within one grain).
#[test]
fn vmdk_split_sparse_one_extent_cut() {
    let dir = &scratch();
    create(dir, "vmdk", "twoGbMaxExtentSparse", "t.vmdk", "5G");
    let ext = extents(dir, "t.vmdk");
    assert!(ext.len() >= 3, "{ext:?}");
    let (start, len, name) = ext[1].clone();
    let spots: Vec<u64> = (0..6).map(|i| start + i * (len / 6)).collect();
    let cmds: Vec<String> = spots
        .iter()
        .map(|s| format!("write -P 0x5a {s} 4M"))
        .chain(std::iter::once("write -P 1 0 64k".to_string()))
        .collect();
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io("t.vmdk", &cmds, dir);
    let all: Vec<String> = std::iter::once("t.vmdk".to_string())
        .chain(ext.iter().map(|e| e.2.clone()))
        .collect();
    let files: Vec<&str> = all.iter().map(String::as_str).collect();
    assert!(with_code_in(dir, &files, "truncated").is_empty());
    assert!(with_code_in(dir, &files, "corrupt").is_empty());
    let expected = {
        let flen = std::fs::metadata(path(dir, &name)).unwrap().len();
        stored_past_in(dir, "t.vmdk", (start, start + len), flen * 6 / 10)
    };
    std::fs::rename(path(dir, &name), path(dir, "whole")).unwrap();
    cut_copy(dir, "whole", &name);
    assert!(expected > 0);
    let found = with_code_in(dir, &files, "truncated");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "critical");
    let lost = lost_bytes(&found[0]);
    assert!(
        lost.abs_diff(expected) <= 64 << 10,
        "vmdisk {lost}, qemu-img map {expected}"
    );
    let mut args = vec!["convert", "-O", "raw", "--output", "o.raw"];
    args.extend(&files);
    let err = vmdisk_fails(&args, dir);
    assert!(err.contains("past the end"), "{err}");
}

/// One critical `truncated` finding of `files`: `bytes` lost, first at host offset `host`.
fn lost_from(dir: &Path, files: &[&str], bytes: u64, host: u64) {
    let m = the_one(dir, files, "truncated");
    assert!(m.contains(&format!("{bytes} bytes)")), "{m}");
    assert!(
        m.contains(&format!("first at host offset {host:#x}")),
        "{m}"
    );
}

/// monolithicFlat whose flat file holds 6 of its 64 MiB: the other 58 MiB are lost, first at
/// host offset 6 MiB of the flat file.
#[test]
fn vmdk_short_flat_extent() {
    let dir = &scratch();
    create(dir, "vmdk", "monolithicFlat", "f.vmdk", "64M");
    qemu_io("f.vmdk", &["write -P 0x71 0 8M"], dir);
    let files = ["f.vmdk", "f-flat.vmdk"];
    assert!(with_code_in(dir, &files, "truncated").is_empty());
    truncate(&path(dir, "f-flat.vmdk"), 6 * MIB);
    lost_from(dir, &files, 58 * MIB, 6 * MIB);
}

/// A fixed VHD whose data area was cut to 40 of its 64 MiB, the footer put back after it.
#[test]
fn fixed_vhd_cut() {
    let dir = &scratch();
    create(dir, "vpc", "fixed", "x.vhd", "64M");
    qemu_io("x.vhd", &["write -P 0x33 0 1M"], dir);
    let f = std::fs::read(path(dir, "x.vhd")).unwrap();
    let footer = &f[f.len() - 512..];
    let size = f.len() as u64 - 512;
    let mut cut = f[..40 << 20].to_vec();
    cut.extend_from_slice(footer);
    std::fs::write(path(dir, "c.vhd"), cut).unwrap();
    assert!(with_code_in(dir, &["x.vhd"], "truncated").is_empty());
    lost_from(dir, &["c.vhd"], size - (40 << 20), 40 << 20);
    let err = vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "c.vhd"], dir);
    assert!(err.contains("past the end"), "{err}");
}
