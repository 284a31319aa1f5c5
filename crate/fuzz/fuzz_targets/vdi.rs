//! Fuzz the VDI driver: open arbitrary bytes as an image set of one file and, when they open
//! as VDI, inspect, map and convert the whole disk to raw in memory.
//!
//! Run with `cargo +nightly fuzz run vdi` from `crate/` (seed the corpus with small images
//! from `qemu-img create -f vdi`, see README.md).
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

fuzz_target!(|data: &[u8]| {
    let file: Rc<dyn Source> = Rc::new(MemSource::new("fuzz.vdi", data.to_vec()));
    let set = ImageSet::new(vec![file]);
    let Ok(opened) = block_on(vmdisk::open(set)) else {
        return;
    };
    if opened.probe.primary().format != vmdisk::Format::Vdi {
        return;
    }
    // The report must build for anything that opens.
    let _ = vmdisk::inspect(&opened);
    let Some(image) = opened.image.as_deref() else {
        return;
    };
    let size = image.virtual_size();
    if size > MAX_VIRTUAL_SIZE {
        return;
    }
    let mut rows = 0u64;
    let _ = block_on(vmdisk::engine::map(&opened.set, image, &mut |row| {
        assert!(row.length > 0);
        rows += 1;
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
