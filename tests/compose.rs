//! Composed outputs (what the browser downloads: a Blob of input slices, generated tables and
//! zero runs) driven through the real engine and writers on images qemu-img makes, then
//! written out part by part and checked with `qemu-img compare` and `qemu-img check`: every
//! cluster size, an odd size with data in the last sector, zero runs, compressed input
//! (its bytes spilled), and a fragmented image past the part budget.

mod common;
use async_trait::async_trait;
use common::*;
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use vmdisk::compose::{Composed, ComposedSink, Part};
use vmdisk::native::{FileSource, TempScratch, ThreadPool, block_on};
use vmdisk::source::{HostFile, ImageSet, Source};
use vmdisk::writer::{OutputFormat, WriteOptions};

const K: u64 = 1024;
const M: u64 = 1024 * 1024;

/// A picked file as the browser sees it: it says where its bytes are, and counts what is read.
struct Picked {
    inner: FileSource,
    host: HostFile,
    read: Cell<u64>,
    /// Every range read: `(offset, length)`.
    reads: std::cell::RefCell<Vec<(u64, u64)>>,
}

#[async_trait(?Send)]
impl Source for Picked {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> vmdisk::Result<()> {
        self.read.set(self.read.get() + buf.len() as u64);
        self.reads.borrow_mut().push((offset, buf.len() as u64));
        self.inner.read_at(offset, buf).await
    }
    fn host_range(&self, at: u64, _len: u64) -> Option<(HostFile, u64)> {
        Some((self.host.clone(), at))
    }
}

struct Converted {
    parts: usize,
    inputs: usize,
    spilled: u64,
    read: u64,
    reads: Vec<(u64, u64)>,
}

/// Convert `input` in `dir` to `out` through a [`ComposedSink`] of at most `max_parts` parts,
/// then write the parts out as the browser's Blob would read them.
fn compose(dir: &Path, input: &str, out: &str, opts: WriteOptions, max_parts: usize) -> Converted {
    compose_with(dir, input, out, opts, max_parts, 32 << 20)
}

/// [`compose`] keeping at most `memory` written bytes in memory.
fn compose_with(
    dir: &Path,
    input: &str,
    out: &str,
    opts: WriteOptions,
    max_parts: usize,
    memory: usize,
) -> Converted {
    let p = path(dir, input);
    let picked = Rc::new(Picked {
        inner: FileSource::open(&p).unwrap(),
        host: Rc::new(p.clone()),
        read: Cell::new(0),
        reads: Default::default(),
    });
    let sources: Vec<Rc<dyn Source>> = vec![picked.clone()];
    let opened = block_on(vmdisk::image::open_with(
        ImageSet::new(sources),
        &Default::default(),
    ))
    .unwrap();
    let image = opened.target(None).unwrap();
    // What opening read (detection reads the head and tail) is not the conversion's.
    picked.read.set(0);
    picked.reads.borrow_mut().clear();
    let mut writer = vmdisk::writer::new_writer(&opts, image.virtual_size()).unwrap();
    let mut sink = ComposedSink::new(Box::new(TempScratch), "spill", max_parts).with_memory(memory);
    block_on(async {
        vmdisk::engine::convert(
            &opened.set,
            image,
            &mut *writer,
            &mut sink,
            &ThreadPool::new(),
            &mut |_, _| true,
        )
        .await
        .unwrap();
        vmdisk::Sink::finish(&mut sink).await.unwrap();
    });
    let read = picked.read.get();
    let reads = picked.reads.take();
    let composed = sink.into_composed();
    let (parts, inputs, spilled) = write_out(composed, &path(dir, out));
    Converted {
        parts,
        inputs,
        spilled,
        read,
        reads,
    }
}

/// Write the parts to `out`; returns the part count, the input parts and the spilled bytes.
fn write_out(c: Composed, out: &Path) -> (usize, usize, u64) {
    use std::io::Write;
    let spill = c.spill.map(|s| s.into_source("spill").unwrap());
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let (mut inputs, mut spilled) = (0, 0);
    let parts = c.parts.len();
    for (len, part) in c.parts {
        let mut buf = vec![0; len as usize];
        match part {
            Part::Bytes(b) => buf = b,
            Part::Zero => {}
            Part::Input { file, at } => {
                inputs += 1;
                let p = file.downcast_ref::<std::path::PathBuf>().unwrap();
                let src = FileSource::open(p).unwrap();
                block_on(src.read_at(at, &mut buf)).unwrap();
            }
            Part::Spill { at } => {
                spilled += len;
                block_on(spill.as_ref().unwrap().read_at(at, &mut buf)).unwrap();
            }
        }
        assert_eq!(buf.len() as u64, len);
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    (parts, inputs, spilled)
}

/// A raw disk of `size` bytes: data runs, zero runs between them, data in the last sector.
fn disk(dir: &Path, name: &str, size: u64) {
    let p = path(dir, name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    write_at(&p, 0, &noise(300 * K as usize, 1));
    write_at(&p, 700 * K, &text(1100 * K as usize, 2));
    write_at(&p, 3 * M + 512, &noise(5000, 3));
    write_at(&p, size - 512, &noise(512, 4));
}

fn qcow2(cluster_size: u32) -> WriteOptions {
    WriteOptions {
        cluster_size,
        ..WriteOptions::default()
    }
}

fn raw() -> WriteOptions {
    WriteOptions {
        format: OutputFormat::Raw,
        ..WriteOptions::default()
    }
}

#[test]
fn qcow2_to_raw_reads_only_tables() {
    let dir = &scratch();
    let size = 6 * M + 3 * 512;
    disk(dir, "d.raw", size);
    for cs in ["512", "4k", "64k", "2M"] {
        let q = format!("d-{cs}.qcow2");
        qemu_img_line(
            &format!("convert -O qcow2 -o cluster_size={cs} d.raw {q}"),
            dir,
        );
        let c = compose(dir, &q, "out.raw", raw(), 100_000);
        assert_same("d.raw", "out.raw", dir);
        assert_eq!(std::fs::metadata(path(dir, "out.raw")).unwrap().len(), size);
        assert_eq!(c.spilled, 0, "{cs}: nothing to produce");
        assert!(
            c.inputs >= 2,
            "{cs}: data runs referenced, {} parts",
            c.inputs
        );
        // No data cluster was read: what was read is tables.
        let map = json(&qemu_img(&["map", "--output=json", &q], dir));
        for row in map.as_array().unwrap() {
            let Some(at) = row["offset"].as_u64() else {
                continue;
            };
            let len = row["length"].as_u64().unwrap();
            for &(o, n) in &c.reads {
                assert!(
                    o + n <= at || o >= at + len,
                    "{cs}: read {o}+{n} of data at {at}+{len}"
                );
            }
        }
        // `c.read` may be 0: the integrity walk at open already read the L2 tables into the
        // table cache (formats/common/intact.rs), so the conversion reads none of them again.
        assert!(c.read < size / 4, "{cs}: read {} bytes", c.read);
    }
}

#[test]
fn raw_to_qcow2_writes_only_tables_at_every_cluster_size() {
    let dir = &scratch();
    disk(dir, "d.raw", 6 * M + 3 * 512);
    for cs in [512u32, 4096, 65536, 2 << 20] {
        let c = compose(dir, "d.raw", "out.qcow2", qcow2(cs), 100_000);
        assert_check_clean("out.qcow2", dir);
        assert_same("d.raw", "out.qcow2", dir);
        assert_eq!(c.spilled, 0, "{cs}: data referenced, not copied");
        assert!(c.inputs >= 2, "{cs}");
        // Clusters of consecutive data join: parts stay few.
        assert!(
            c.parts < 64 + 4 * (6 * M / 512 / (u64::from(cs) / 8)) as usize,
            "{cs}: {} parts",
            c.parts
        );
    }
}

#[test]
fn compressed_input_is_produced_into_the_spill_file() {
    let dir = &scratch();
    disk(dir, "d.raw", 6 * M + 3 * 512);
    qemu_img(&["convert", "-c", "-O", "qcow2", "d.raw", "c.qcow2"], dir);
    let c = compose_with(dir, "c.qcow2", "out.raw", raw(), 100_000, 64 << 10);
    assert_same("d.raw", "out.raw", dir);
    assert!(c.spilled > M, "inflated data spilled: {}", c.spilled);
    let c = compose(dir, "c.qcow2", "mem.raw", raw(), 100_000);
    assert_same("d.raw", "mem.raw", dir);
    assert_eq!(c.spilled, 0, "1.4 MiB fits in memory");
    let c = compose_with(dir, "c.qcow2", "out.qcow2", qcow2(65536), 100_000, 64 << 10);
    assert_check_clean("out.qcow2", dir);
    assert_same("d.raw", "out.qcow2", dir);
    assert!(c.spilled > M);
}

#[test]
fn a_fragmented_image_stays_within_the_part_budget() {
    let dir = &scratch();
    // 512-byte clusters written back to front: each guest cluster is a run of its own.
    let n = 4000u64;
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            "f.qcow2",
            &format!("{}", n * 1024),
        ],
        dir,
    );
    let cmds: Vec<String> = (0..n)
        .rev()
        .map(|i| format!("write -P {} {} 512", i % 250 + 1, i * 1024))
        .collect();
    let cmds: Vec<&str> = cmds.iter().map(|s| s.as_str()).collect();
    for batch in cmds.chunks(500) {
        qemu_io("f.qcow2", batch, dir);
    }
    let c = compose(dir, "f.qcow2", "all.raw", raw(), 100_000);
    assert_same("f.qcow2", "all.raw", dir);
    assert!(c.inputs >= n as usize, "one part a run: {}", c.inputs);
    let c = compose(dir, "f.qcow2", "few.raw", raw(), 1001);
    assert_same("f.qcow2", "few.raw", dir);
    assert!(c.parts <= 1001, "{} parts", c.parts);
    assert!(c.spilled > 0);
    let c = compose(dir, "f.qcow2", "few.qcow2", qcow2(512), 1001);
    assert_check_clean("few.qcow2", dir);
    assert_same("f.qcow2", "few.qcow2", dir);
    assert!(c.parts <= 1001, "{} parts", c.parts);
}
