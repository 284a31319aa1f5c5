//! Fuzz the qed driver: open arbitrary bytes as an image set of one file and, when they open
//! as qed, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run qed` from `crate/` (seed the corpus with small images
//! such as `qemu-img create -f qed a.qed 1M && qemu-io -c 'write -z 0 64k' -c 'write -P 1 64k 4k' a.qed`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.qed", data)], vmdisk::Format::Qed));
