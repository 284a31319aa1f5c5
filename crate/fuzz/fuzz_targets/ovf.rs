//! Fuzz the OVF descriptor parser directly, then as an unpacked OVF package whose descriptor
//! names `disk.vmdk` (a 1 MiB raw companion, so disk layout code runs too).
//!
//! Seed with the descriptors of tests/packages.rs (ovftool 1.0, VirtualBox 2.0, a collection).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmdisk::package::ovf::parse(data);
    let disk = vec![0u8; 1 << 20];
    vmdisk_fuzz::exercise(&[("fuzz.ovf", data), ("disk.vmdk", &disk)], vmdisk::Format::Ovf);
});
