//! What every fuzz target does with its input: open the bytes as an image set and, when they
//! open as the target's format, inspect, map and convert the whole disk to raw in memory.

use std::rc::Rc;
use vmdisk::codec::Serial;
use vmdisk::native::block_on;
use vmdisk::sink::MemSink;
use vmdisk::source::{ImageSet, MemSource, Source};
use vmdisk::writer::{OutputFormat, WriteOptions};

/// Larger disks are skipped: converting one allocates its whole size in the memory sink.
const MAX_VIRTUAL_SIZE: u64 = 64 << 20;

/// Run the whole pipeline over `files` (name, bytes) when they open as `format`. Errors are
/// fine; panics, hangs and huge allocations are what the fuzzer looks for.
pub fn exercise(files: &[(&str, &[u8])], format: vmdisk::Format) {
    let sources: Vec<Rc<dyn Source>> = files
        .iter()
        .map(|(name, data)| Rc::new(MemSource::new(*name, data.to_vec())) as Rc<dyn Source>)
        .collect();
    let Ok(opened) = block_on(vmdisk::open(ImageSet::new(sources))) else {
        return;
    };
    if opened.probe.primary().format != format {
        return;
    }
    // The report must build for anything that opens.
    let _ = vmdisk::inspect(&opened);
    // A package converts its default disk; anything else, itself.
    let Ok(image) = opened.target(None) else {
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
        assert_eq!(
            sink.data.len() as u64,
            size,
            "raw output has the virtual size"
        );
    }
}
