//! Fuzz the VHDX driver: open arbitrary bytes as an image set of one file and, when they open
//! as VHDX, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vhdx` from `crate/` (seed the corpus with small images
//! from `qemu-img create -f vhdx` and `qemu-io` writes, see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.vhdx", data)], vmdisk::Format::Vhdx));
