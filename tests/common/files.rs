//! Files in a test directory: read, write and patch them, list them, run shell tools on them.

use super::{ok, path, vmdisk_fails};
use std::path::Path;

pub fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(path(dir, name)).unwrap()
}

pub fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(path(dir, name), data).unwrap();
}

/// Copy `bytes` over `buf` at `at` (which must hold them).
pub fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

pub fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub fn be64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// The big-endian u64 at byte `at` of `file`.
pub fn read_be64(file: &Path, at: u64) -> u64 {
    let b = std::fs::read(file).unwrap();
    u64::from_be_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

/// Cut (or extend) an existing `file` to `len` bytes.
pub fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `vmdisk convert` of `files` must fail with one line, leaving no file behind. Returns stderr.
pub fn convert_fails(dir: &Path, files: &[&str]) -> String {
    let before = listing(dir);
    let mut args = vec!["convert", "-O", "raw", "--output", "out.raw"];
    args.extend(files);
    let err = vmdisk_fails(&args, dir);
    assert_eq!(listing(dir), before, "convert left files behind: {err}");
    err
}

/// Whether `tool` is on PATH (optional tools gate some tests).
pub fn has_tool(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run a shell pipeline in `dir` (for gzip/xz/zstd/tar/cpio...).
pub fn sh(dir: &Path, script: &str) {
    ok("sh", &["-c", script], dir);
}
