//! Comparing vmdisk's view of an image with qemu-img's: maps, converted content, info basics.

use super::{assert_same, info_json, json, path, qemu_img, vmdisk};
use serde_json::Value;
use std::path::Path;

/// One row of a map, reduced to what both tools must agree on; each test file says what `kind`
/// holds (allocation state, host offset...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRow<K> {
    pub start: u64,
    pub length: u64,
    pub depth: u64,
    pub kind: K,
}

/// Normalise `qemu-img map --output=json` or `vmdisk map --json`: each row's kind from `kind`,
/// a row merged into the one before where `joins(last, row)` says it continues it. Rows must
/// tile the disk (`tile_msg` is the assertion's message).
pub fn normalise_map<K>(
    map: &Value,
    tile_msg: &str,
    kind: impl Fn(&Value) -> K,
    joins: impl Fn(&MapRow<K>, &MapRow<K>) -> bool,
) -> Vec<MapRow<K>> {
    let mut rows: Vec<MapRow<K>> = vec![];
    for r in map.as_array().expect("map is an array") {
        let row = MapRow {
            kind: kind(r),
            start: r["start"].as_u64().unwrap(),
            length: r["length"].as_u64().unwrap(),
            depth: r["depth"].as_u64().unwrap(),
        };
        if let Some(last) = rows.last_mut() {
            assert_eq!(last.start + last.length, row.start, "{tile_msg}");
            if joins(last, &row) {
                last.length += row.length;
                continue;
            }
        }
        rows.push(row);
    }
    rows
}

/// qemu's map of `img` and vmdisk's of `files` are equal once normalised.
pub fn assert_map_like_qemu<R: PartialEq + std::fmt::Debug>(
    dir: &Path,
    img: &str,
    files: &[&str],
    normalise: impl Fn(&Value) -> R,
) {
    let theirs = normalise(&json(&qemu_img(&["map", "--output=json", img], dir)));
    let mut args = vec!["map", "--json"];
    args.extend(files);
    let ours = normalise(&json(&vmdisk(&args, dir)));
    assert_eq!(ours, theirs, "map of {img}");
}

/// vmdisk's raw conversion of `files` is what qemu reads from `img`, `size` bytes long
/// (`len_msg`: the length assertion's message, None for none).
pub fn assert_raw_like_qemu(
    dir: &Path,
    img: &str,
    files: &[&str],
    size: u64,
    len_msg: Option<&str>,
) {
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.raw", dir);
    let out_len = std::fs::metadata(path(dir, "vmdisk-out.raw"))
        .unwrap()
        .len();
    match len_msg {
        Some(msg) => assert_eq!(out_len, size, "{msg}"),
        None => assert_eq!(out_len, size),
    }
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
}

/// vmdisk's info on `files`: checked to name `format`, `size` and to be convertible.
pub fn info_checked(dir: &Path, files: &[&str], format: &str, size: u64) -> Value {
    let info = info_json(files, dir);
    assert_eq!(info["format"], format, "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");
    info
}

/// What vmdisk reads from `files` (the first being the image), as bytes.
pub fn vmdisk_raw(dir: &Path, files: &[&str]) -> Vec<u8> {
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    let data = std::fs::read(path(dir, "vmdisk-out.raw")).unwrap();
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
    data
}

/// `qemu-img create -q -f FMT [-o OPTS] EXTRA... NAME SIZE` (no `-o` when `opts` is empty).
pub fn create_image(dir: &Path, fmt: &str, opts: &str, extra: &[&str], name: &str, size: &str) {
    let mut args = vec!["create", "-q", "-f", fmt];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend(extra);
    args.extend([name, size]);
    qemu_img(&args, dir);
}

/// An overlay: `create_image` with `-b BACKING -F BACKING_FMT`, `backing` being (file, format).
pub fn create_overlay(
    dir: &Path,
    fmt: &str,
    opts: &str,
    name: &str,
    size: &str,
    backing: (&str, &str),
) {
    create_image(
        dir,
        fmt,
        opts,
        &["-b", backing.0, "-F", backing.1],
        name,
        size,
    );
}
