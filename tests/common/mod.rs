//! Shared helpers for the end-to-end tests: run `vmdisk` and `qemu-img` on images made at test time.
#![allow(dead_code)]

mod boot;
mod files;
mod findings;
mod map;
mod rng;
// Each test binary uses its own share of these.
#[allow(unused_imports)]
pub use {boot::*, files::*, findings::*, map::*, rng::*};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn vmdisk_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vmdisk")
}

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A fresh temporary directory that reads as its path, removed when dropped: a test holds it
/// with `let dir = &scratch();`.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

pub fn scratch() -> Scratch {
    Scratch(tmp())
}

/// Run a command, returning its output whatever the exit status.
pub fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Run a command that must succeed; returns stdout.
pub fn ok(cmd: &str, args: &[&str], dir: &Path) -> String {
    let out = run(cmd, args, dir);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn qemu_img(args: &[&str], dir: &Path) -> String {
    ok("qemu-img", args, dir)
}

/// `qemu-io -c CMD ...` on an image (e.g. `write -P 0xab 0 64k`).
pub fn qemu_io(image: &str, cmds: &[&str], dir: &Path) {
    let mut args = vec![];
    for c in cmds {
        args.push("-c");
        args.push(*c);
    }
    args.push(image);
    ok("qemu-io", &args, dir);
}

pub fn vmdisk(args: &[&str], dir: &Path) -> String {
    ok(vmdisk_bin(), args, dir)
}

/// The words of a command line written as one string (for arguments without spaces).
fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// `vmdisk` with its arguments written as one line: `vmdisk_line("convert -O raw ...", dir)`.
pub fn vmdisk_line(line: &str, dir: &Path) -> String {
    vmdisk(&words(line), dir)
}

/// `qemu-img` with its arguments written as one line.
pub fn qemu_img_line(line: &str, dir: &Path) -> String {
    qemu_img(&words(line), dir)
}

/// `vmdisk` expected to fail: returns stderr, asserting a non-zero exit and a one-line message.
pub fn vmdisk_fails(args: &[&str], dir: &Path) -> String {
    let out = run(vmdisk_bin(), args, dir);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "vmdisk {args:?} should fail but succeeded"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error must be one line: {err:?}"
    );
    assert!(!err.contains("panicked"), "vmdisk panicked: {err}");
    err
}

/// `vmdisk_fails` with its arguments written as one line.
pub fn vmdisk_fails_line(line: &str, dir: &Path) -> String {
    vmdisk_fails(&words(line), dir)
}

/// `f` of each element of the JSON array `list`.
pub fn each<'a, T>(
    list: &'a serde_json::Value,
    f: impl FnMut(&'a serde_json::Value) -> T,
) -> Vec<T> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(f)
        .collect()
}

/// `vmdisk_fails_line(line)` names `needle`, and no `out` is left behind.
pub fn fails_naming(dir: &Path, line: &str, needle: &str, out: &str) {
    let err = vmdisk_fails_line(line, dir);
    assert!(err.contains(needle), "{err}");
    assert!(!path(dir, out).exists());
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

pub fn info_json(files: &[&str], dir: &Path) -> serde_json::Value {
    let mut args = vec!["info", "--json"];
    args.extend(files);
    json(&vmdisk(&args, dir))
}

pub fn qemu_info(file: &str, dir: &Path) -> serde_json::Value {
    json(&qemu_img(&["info", "--output=json", file], dir))
}

/// Assert `qemu-img compare` finds the two images identical in content. Files named `*.raw` are
/// opened as raw: a converted disk may itself begin with another format's header.
pub fn assert_same(a: &str, b: &str, dir: &Path) {
    let mut args = vec!["compare"];
    if a.ends_with(".raw") {
        args.extend(["-f", "raw"]);
    }
    if b.ends_with(".raw") {
        args.extend(["-F", "raw"]);
    }
    args.extend([a, b]);
    let out = run("qemu-img", &args, dir);
    assert!(
        out.status.success(),
        "qemu-img compare {a} {b}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assert `qemu-img check` finds no errors and no leaks in a qcow2 image.
pub fn assert_check_clean(image: &str, dir: &Path) {
    let out = run("qemu-img", &["check", "--output=json", image], dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu-img check {image} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&text);
    for key in ["corruptions", "leaks", "check-errors"] {
        assert_eq!(
            v.get(key).and_then(|x| x.as_u64()).unwrap_or(0),
            0,
            "{key} in {image}: {text}"
        );
    }
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text-like, compressible bytes.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "disk ", "image ", "qcow2 ", "cluster ", "sector ", "the ", "of ", "zero\n", "data ",
        "vmdisk ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut i = seed as usize;
    while out.len() < len {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(i >> 33) % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Write `data` at `offset` of an existing or new file (sparse elsewhere).
pub fn write_at(file: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(file)
        .expect("open");
    f.write_all_at(data, offset).expect("write");
}

/// Assert `dir` holds exactly the `expected` files: no output and no partial temporary file
/// left behind by a failed conversion.
pub fn assert_only_files(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "unexpected files in {}", dir.display());
}

mod written;
#[allow(unused_imports)]
pub use written::*;

/// `vmdisk info FILES...` fails with a one-line message naming `needle`; returns it.
pub fn info_fails_naming(dir: &Path, files: &[&str], needle: &str) -> String {
    let mut args = vec!["info"];
    args.extend(files);
    let err = vmdisk_fails(&args, dir);
    assert!(err.contains(needle), "{err}");
    err
}
