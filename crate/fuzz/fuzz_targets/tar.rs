//! Fuzz the tar walk and the OVA driver: the input is one file, `fuzz.ova`. When it opens as an
//! OVA, its report builds and its default disk is mapped and converted to raw in memory.
//!
//! Seed: `tar --format=ustar -cf a.ova a.ovf disk.vmdk a.mf` with a small streamOptimized VMDK,
//! `tar --format=gnu` with a long member name, `tar --format=oldgnu -S` with a sparse member.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vmdisk_fuzz::exercise(&[("fuzz.ova", data)], vmdisk::Format::Ova);
});
