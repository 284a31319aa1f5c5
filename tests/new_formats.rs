//! Bochs, cloop and Apple DMG (UDIF): images built here byte by byte (no tool writes them),
//! read by vmdisk and by qemu-img, which must agree on the format, the virtual size and every
//! byte; damaged copies must fail cleanly or be flagged, never be taken for raw.
mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "new_formats/bochs.rs"]
mod bochs;
#[path = "new_formats/cloop.rs"]
mod cloop;
#[path = "new_formats/dmg.rs"]
mod dmg;

/// vmdisk names `img` as qemu-img does (format, virtual size), advises converting it before an
/// upload, and converts it to the bytes qemu-img reads. Returns vmdisk's info report.
fn like_qemu(dir: &Path, img: &str, format: &str) -> Value {
    let q = qemu_info(img, dir);
    assert_eq!(q["format"], format, "qemu-img: {q}");
    let size = q["virtual-size"].as_u64().unwrap();
    let info = info_checked(dir, &[img], format, size);
    assert_eq!(info["detected"][0], format, "{info}");
    // Readable, so not `unsupported-format`; but no cloud takes it.
    assert!(
        has_finding(&info, "convert-before-upload", "warning"),
        "{info}"
    );
    assert!(
        !codes(&info).contains(&"unsupported-format".into()),
        "{info}"
    );
    assert_raw_like_qemu(dir, img, &[img], size, Some(img));
    info
}

/// A damaged `file`: `info` names `format` with a Critical finding (or fails with one line), and
/// `convert` fails with one line, writing nothing. Returns the conversion's error.
fn refused(dir: &Path, file: &str, format: &str) -> String {
    let out = run(vmdisk_bin(), &["info", "--json", file], dir);
    if out.status.success() {
        let info = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            info["format"], format,
            "{file} taken for another format: {info}"
        );
        assert_eq!(info["convertible"], false, "{info}");
        assert!(
            codes_and_severities(&info)
                .iter()
                .any(|(_, s)| s == "critical"),
            "{file} has no critical finding: {info}"
        );
    } else {
        let err = vmdisk_fails(&["info", file], dir);
        assert!(!err.contains("raw"), "{err}");
    }
    convert_fails(dir, &[file])
}

/// `file` of `len` bytes (a copy of `from`, cut or padded).
fn cut(dir: &Path, from: &str, file: &str, len: usize) {
    let mut b = read(dir, from);
    b.resize(len, 0);
    write(dir, file, &b);
}

/// `good` written as `good.<format>`, and copies cut to each of `lens` bytes: each copy is
/// refused as `format`, not read as raw.
fn refused_when_cut(dir: &Path, format: &str, good: &[u8], lens: &[usize]) {
    let from = format!("good.{format}");
    write(dir, &from, good);
    for len in lens {
        let file = format!("cut-{len}.{format}");
        cut(dir, &from, &file, *len);
        refused(dir, &file, format);
    }
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// zlib-compress `data` (level 6, as cloop's and hdiutil's writers do).
fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(vec![], flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `data` compressed by the `bzip2` command-line tool (level 9, as hdiutil's UDBZ writes).
fn bzip2(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("bzip2")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the bzip2 tool");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let feed = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap();
    assert!(out.status.success(), "bzip2 failed");
    out.stdout
}

/// `len` bytes of guest content: text, noise and zeros by turns (`seed` varies it).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut v = text(len / 3, seed);
    v.extend(vec![0; len / 3]);
    v.extend(noise(len - v.len(), seed + 1));
    v
}
