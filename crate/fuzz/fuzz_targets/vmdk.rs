//! Fuzz the VMDK driver: the input is one to three files separated by the line `--8<--\n`,
//! named `fuzz.vmdk`, `fuzz-s001.vmdk` and `fuzz-flat.vmdk` (so a descriptor in the first can
//! name the others as extents or parent). When the set opens as VMDK, inspect, map and convert
//! the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vmdk` from `crate/` (seed the corpus as README.md says).
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"--8<--\n";
const NAMES: [&str; 3] = ["fuzz.vmdk", "fuzz-s001.vmdk", "fuzz-flat.vmdk"];

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = vec![];
    let mut rest = data;
    while parts.len() < NAMES.len() - 1 {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let files: Vec<(&str, &[u8])> = NAMES.into_iter().zip(split(data)).collect();
    vmdisk_fuzz::exercise(&files, vmdisk::Format::Vmdk);
});
