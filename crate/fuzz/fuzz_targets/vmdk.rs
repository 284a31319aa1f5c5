//! Fuzz the VMDK driver: the input is one to three files separated by the line `--8<--\n`,
//! named `fuzz.vmdk`, `fuzz-s001.vmdk` and `fuzz-flat.vmdk` (so a descriptor in the first can
//! name the others as extents or parent). When the set opens as VMDK, inspect, map and convert
//! the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vmdk` from `crate/` (seed the corpus as README.md says).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::rc::Rc;
use vmdisk::codec::Serial;
use vmdisk::native::block_on;
use vmdisk::sink::MemSink;
use vmdisk::source::{ImageSet, MemSource, Source};
use vmdisk::writer::{OutputFormat, WriteOptions};

/// Larger disks are skipped: converting one allocates its whole size in the memory sink.
const MAX_VIRTUAL_SIZE: u64 = 64 << 20;
const SEPARATOR: &[u8] = b"--8<--\n";
const NAMES: [&str; 3] = ["fuzz.vmdk", "fuzz-s001.vmdk", "fuzz-flat.vmdk"];

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = vec![];
    let mut rest = data;
    while parts.len() < NAMES.len() - 1 {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let files: Vec<Rc<dyn Source>> = split(data)
        .into_iter()
        .zip(NAMES)
        .map(|(bytes, name)| Rc::new(MemSource::new(name, bytes.to_vec())) as Rc<dyn Source>)
        .collect();
    let Ok(opened) = block_on(vmdisk::open(ImageSet::new(files))) else {
        return;
    };
    if opened.probe.primary().format != vmdisk::Format::Vmdk {
        return;
    }
    let _ = vmdisk::inspect(&opened);
    let Some(image) = opened.image.as_deref() else {
        return;
    };
    let size = image.virtual_size();
    if size > MAX_VIRTUAL_SIZE {
        return;
    }
    let _ = block_on(vmdisk::engine::map(&opened.set, image, &mut |row| {
        assert!(row.length > 0);
    }));
    let opts = WriteOptions {
        format: OutputFormat::Raw,
        ..WriteOptions::default()
    };
    let mut writer = vmdisk::writer::new_writer(&opts, size).expect("raw writer");
    let mut sink = MemSink::default();
    let converted = block_on(vmdisk::engine::convert(
        &opened.set,
        image,
        &mut *writer,
        &mut sink,
        &Serial,
        &mut |_, _| true,
    ));
    if converted.is_ok() {
        assert_eq!(sink.data.len() as u64, size, "raw output has the virtual size");
    }
});
