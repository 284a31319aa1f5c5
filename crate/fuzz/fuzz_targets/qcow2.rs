//! Fuzz the qcow2 driver: open arbitrary bytes as an image set of one file and, when they open
//! as qcow2, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run qcow2` from `crate/` (seed the corpus with small images
//! from `qemu-img create -f qcow2` / `qemu-img convert -c`, see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.qcow2", data)], vmdisk::Format::Qcow2));
