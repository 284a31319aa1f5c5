//! Fuzz the parallels driver: open arbitrary bytes as an image set of one file and, when they open
//! as parallels, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run parallels` from `crate/` (seed the corpus with small images
//! such as `qemu-img create -f parallels -o cluster_size=64k a.hdd 1M && qemu-io -c 'write -P 1 0 4k' a.hdd`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.hdd", data)], vmdisk::Format::Parallels));
