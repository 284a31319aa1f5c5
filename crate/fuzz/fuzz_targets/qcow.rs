//! Fuzz the qcow driver: open arbitrary bytes as an image set of one file and, when they open
//! as qcow, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run qcow` from `crate/` (seed the corpus with small images
//! such as `qemu-img create -f qcow a.qcow 1M && qemu-io -c 'write -c -P 1 0 4k' a.qcow`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.qcow", data)], vmdisk::Format::Qcow));
