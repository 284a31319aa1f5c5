//! Fuzz the manifest parser and the signature check: the input's first half is a `.cert` file,
//! its second half the manifest it signs (split at the line `--8<--`).
//!
//! Seed: an ovftool-style `.cert` (signature line + PEM certificate) `--8<--` its `.mf`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"--8<--\n";

fuzz_target!(|data: &[u8]| {
    let (cert, mf) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(i) => (&data[..i], &data[i + SEPARATOR.len()..]),
        None => (data, data),
    };
    let _ = vmdisk::package::manifest::parse(mf);
    let _ = vmdisk::package::cert::verify(cert, mf, "fuzz.mf", Some(1_700_000_000));
});
