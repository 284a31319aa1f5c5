//! Fuzz the compressed-file container (gzip, xz, zstd: members, padding, stated sizes, the
//! decoders' limits): the input is one file, `fuzz.img.gz`. When it opens as a compressed image
//! its inner disk is reported, mapped and converted to raw in memory.
//!
//! Seed: `gzip`, `xz` and `zstd` outputs of small raw and qcow2 images, `cat a.gz b.gz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vmdisk_fuzz::exercise(&[("fuzz.img.gz", data)], vmdisk::Format::Compressed);
});
