//! Fuzz the VDI driver: open arbitrary bytes as an image set of one file and, when they open
//! as VDI, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vdi` from `crate/` (seed the corpus with small images
//! from `qemu-img create -f vdi`, see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.vdi", data)], vmdisk::Format::Vdi));
