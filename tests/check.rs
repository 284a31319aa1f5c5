//! `vmdisk check` against `qemu-img check`: images made with qemu-img and qemu-io at test
//! time, damaged with qemu-io and by byte edits; both tools must agree on the corruptions,
//! the leaks and the exit status. What qemu-img does not check (compressed data, formats it
//! cannot check) gets assertions of its own.

#[path = "common/mod.rs"]
mod common;
#[path = "check/compare.rs"]
mod compare;
#[path = "check/formats.rs"]
mod formats;
#[path = "check/hostile.rs"]
mod hostile;
#[path = "check/packages.rs"]
mod packages;
#[path = "check/qcow2_edit.rs"]
mod qcow2_edit;

use common::{path, qemu_img_line, qemu_io, scratch, truncate};
use compare::{agree, agree_clean, ours};
use qcow2_edit::Qcow2File;
use std::path::Path;

/// A 64 MiB qcow2 image with data in a few places (`opts` for qemu-img create -o).
fn qcow2(dir: &Path, name: &str, opts: &str) {
    qemu_img_line(&format!("create -q -f qcow2 -o {opts} {name} 64M"), dir);
    qemu_io(
        name,
        &[
            "write -P 0x11 0 1M",
            "write -P 0x22 8M 256k",
            "write -z 16M 64k",
        ],
        dir,
    );
}

/// A compressed qcow2 image (`-c`, `codec` zlib or zstd) of text-like data.
fn compressed(dir: &Path, name: &str, codec: &str) {
    qemu_img_line("create -q -f raw src.raw 8M", dir);
    qemu_io(
        "src.raw",
        &["write -P 0x41 0 3M", "write -P 0x42 5M 64k"],
        dir,
    );
    qemu_img_line(
        &format!("convert -q -c -O qcow2 -o compression_type={codec} src.raw {name}"),
        dir,
    );
}

fn edit(dir: &Path, name: &str, f: impl FnOnce(&mut Qcow2File)) {
    let mut q = Qcow2File::read(&path(dir, name));
    f(&mut q);
    q.write(&path(dir, name));
}

#[test]
fn clean_qcow2_images_agree() {
    let dir = &scratch();
    qcow2(dir, "v3.qcow2", "compat=1.1");
    qcow2(dir, "v2.qcow2", "compat=0.10");
    qcow2(dir, "small.qcow2", "cluster_size=4k");
    qcow2(dir, "rc1.qcow2", "refcount_bits=1");
    qcow2(dir, "rc64.qcow2", "refcount_bits=64");
    qcow2(dir, "ext.qcow2", "extended_l2=on");
    compressed(dir, "zlib.qcow2", "zlib");
    compressed(dir, "zstd.qcow2", "zstd");
    qcow2(dir, "snap.qcow2", "compat=1.1");
    qemu_img_line("snapshot -c one snap.qcow2", dir);
    qemu_io("snap.qcow2", &["write -P 0x33 0 128k"], dir);
    qemu_img_line("snapshot -c two snap.qcow2", dir);
    qemu_io("snap.qcow2", &["write -P 0x44 64k 64k"], dir);
    // Persistent bitmaps: their directory, tables and dirty data clusters have refcounts, so
    // a check that did not count them would report leaks.
    qemu_img_line("create -q -f qcow2 bitmaps.qcow2 64M", dir);
    qemu_img_line("bitmap --add bitmaps.qcow2 b0", dir);
    qemu_img_line("bitmap --add -g 65536 bitmaps.qcow2 b1", dir);
    qemu_io(
        "bitmaps.qcow2",
        &["write -P 1 0 4M", "write -P 2 40M 1M"],
        dir,
    );
    for name in [
        "bitmaps.qcow2",
        "v3.qcow2",
        "v2.qcow2",
        "small.qcow2",
        "rc1.qcow2",
        "rc64.qcow2",
        "ext.qcow2",
        "zlib.qcow2",
        "zstd.qcow2",
        "snap.qcow2",
    ] {
        agree_clean(dir, name);
    }
    // The statistics are really there (a check that counted nothing would agree on nothing).
    let v = ours(dir, "zstd.qcow2");
    assert!(v.count("compressed-clusters") > 10, "{}", v.json);
}

#[test]
fn a_raised_refcount_is_a_leak() {
    let dir = &scratch();
    qcow2(dir, "leak.qcow2", "compat=1.1");
    // Two clusters appended to the file with refcount 1 that nothing uses.
    let file = path(dir, "leak.qcow2");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len + 2 * 65536);
    edit(dir, "leak.qcow2", |q| {
        let first = len / q.cluster_size();
        q.set_refcount(first, 1);
        q.set_refcount(first + 1, 1);
    });
    let (q, v) = agree(dir, "leak.qcow2");
    assert_eq!(
        (q.code, q.count("leaks"), q.count("corruptions")),
        (3, 2, 0)
    );
    assert_eq!(v.count("image-end-offset"), q.count("image-end-offset"));
}

#[test]
fn a_zeroed_refcount_is_a_corruption() {
    let dir = &scratch();
    qcow2(dir, "zero.qcow2", "compat=1.1");
    edit(dir, "zero.qcow2", |q| {
        let host = q.host_offset(3) / q.cluster_size();
        q.set_refcount(host, 0);
    });
    let (q, _) = agree(dir, "zero.qcow2");
    assert_eq!(q.code, 2);
    assert!(q.count("corruptions") >= 1);
}

#[test]
fn two_l2_entries_on_one_cluster_are_a_corruption() {
    let dir = &scratch();
    qcow2(dir, "twice.qcow2", "compat=1.1");
    edit(dir, "twice.qcow2", |q| {
        let first = q.be64(q.l2_entry_at(0));
        let at = q.l2_entry_at(1);
        q.set_be64(at, first);
    });
    let (q, v) = agree(dir, "twice.qcow2");
    // The shared cluster is used twice (a corruption); guest cluster 1's own is now leaked.
    assert_eq!((q.code, q.count("leaks")), (2, 1));
    assert!(
        v.json["problems"].to_string().contains("used 2 times"),
        "{}",
        v.json
    );
}

#[test]
fn unaligned_and_past_the_end_entries_are_corruptions() {
    let dir = &scratch();
    qcow2(dir, "unaligned.qcow2", "compat=1.1");
    edit(dir, "unaligned.qcow2", |q| {
        let at = q.l2_entry_at(2);
        let e = q.be64(at);
        q.set_be64(at, e + 512);
    });
    let (q, _) = agree(dir, "unaligned.qcow2");
    assert_eq!(q.code, 2);

    qcow2(dir, "far.qcow2", "compat=1.1");
    edit(dir, "far.qcow2", |q| {
        let at = q.l2_entry_at(4);
        q.set_be64(at, (1 << 63) | (1 << 40));
    });
    let (q, _) = agree(dir, "far.qcow2");
    assert_eq!(q.code, 2);

    // Cut inside the data: clusters the tables use are gone.
    qcow2(dir, "cut.qcow2", "compat=1.1");
    let file = path(dir, "cut.qcow2");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len - 5 * 65536);
    let (q, _) = agree(dir, "cut.qcow2");
    assert_eq!(q.code, 2);
}

#[test]
fn damage_in_a_snapshot_image_agrees() {
    let dir = &scratch();
    qcow2(dir, "snap.qcow2", "compat=1.1");
    qemu_img_line("snapshot -c one snap.qcow2", dir);
    qemu_io("snap.qcow2", &["write -P 0x33 0 64k"], dir);
    // Guest cluster 5 is shared by the snapshot and the active layer (refcount 2): drop it to 1.
    edit(dir, "snap.qcow2", |q| {
        let host = q.host_offset(5) / q.cluster_size();
        q.set_refcount(host, 1);
    });
    let (q, _) = agree(dir, "snap.qcow2");
    assert_eq!(q.code, 2);
}

#[test]
fn a_damaged_compressed_cluster_is_a_corruption_qemu_img_check_does_not_see() {
    let dir = &scratch();
    for codec in ["zlib", "zstd"] {
        let name = format!("{codec}.qcow2");
        compressed(dir, &name, codec);
        edit(dir, &name, |q| {
            let entry = q.be64(q.l2_entry_at(1));
            let x = 62 - (q.cluster_bits() - 8);
            let offset = entry & ((1 << x) - 1);
            // Inside this cluster's own bytes (zstd clusters of repeated bytes are ~20 bytes).
            for b in &mut q.bytes[offset as usize + 4..offset as usize + 12] {
                *b ^= 0x5a;
            }
        });
        // qemu-img check does not decode clusters: it finds nothing.
        let q = compare::qemu(dir, &name);
        assert_eq!(q.code, 0, "{}", q.json);
        let v = ours(dir, &name);
        assert_eq!((v.code, v.count("corruptions")), (2, 1), "{}", v.json);
        assert!(
            v.json["problems"][0]
                .as_str()
                .unwrap()
                .contains("does not decode")
        );
        // qemu-img itself cannot read the cluster back.
        let read = common::run("qemu-img", &["convert", "-O", "raw", &name, "x.raw"], dir);
        assert!(!read.status.success());
    }
}

#[test]
fn text_output_reads_like_qemu_img() {
    let dir = &scratch();
    qcow2(dir, "clean.qcow2", "compat=1.1");
    let ours = common::vmdisk_line("check clean.qcow2", dir);
    let theirs = qemu_img_line("check clean.qcow2", dir);
    assert_eq!(ours, theirs);
}
