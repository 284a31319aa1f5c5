//! Fuzz the VHD driver: open arbitrary bytes as an image set of one file and, when they open
//! as VHD, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vhd` from `crate/` (seed the corpus with small images
//! from `qemu-img create -f vpc`, see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vmdisk_fuzz::exercise(&[("fuzz.vhd", data)], vmdisk::Format::Vhd));
