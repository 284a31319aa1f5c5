//! Fuzz initramfs detection (newc/odc cpio, concatenated archives, what follows them): the input
//! is one file, `initrd.img`, reported when it is a ramdisk (ARI).
//!
//! Seed: hand-built newc archives (tests/boot_files.rs), early microcode + `gzip`ped archive.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vmdisk_fuzz::exercise(&[("initrd.img", data)], vmdisk::Format::Ari);
});
