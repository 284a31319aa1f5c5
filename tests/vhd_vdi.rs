//! VHD and VDI readers: differential tests against qemu-img for every variant it can create,
//! hand-built differencing images (qemu cannot create them) checked byte for byte, and
//! malformed images that must fail cleanly or raise findings.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "vhd_vdi/vdi.rs"]
mod vdi;
#[path = "vhd_vdi/vhd.rs"]
mod vhd;

// ---------------------------------------------------------------------------------------------
// Helpers

fn create(dir: &Path, fmt: &str, opts: &str, name: &str, size: &str) {
    create_image(dir, fmt, opts, &[], name, size);
}

/// `create` an image, then qemu-io writes 64k of 0xab at `first_at`, 4k of 0xcd at 2M and 0xef
/// over its last sector; returns its virtual size as qemu reports it.
fn create_written(
    dir: &Path,
    fmt: &str,
    opts: &str,
    name: &str,
    size: &str,
    first_at: &str,
) -> u64 {
    create(dir, fmt, opts, name, size);
    let vsize = qemu_info(name, dir)["virtual-size"].as_u64().unwrap();
    io(
        dir,
        fmt,
        name,
        &[
            &format!("write -P 0xab {first_at} 64k"),
            "write -P 0xcd 2M 4k",
            &format!("write -P 0xef {} 512", vsize - 512),
        ],
    );
    vsize
}

/// `qemu-io -f FMT -c ...` (explicit format: qemu probes a fixed VHD as raw).
fn io(dir: &Path, fmt: &str, image: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(image);
    ok("qemu-io", &args, dir);
}

/// A 4 MiB parent `name` made by qemu-img and written by qemu-io `writes`; returns its content
/// as qemu reads it.
fn qemu_parent(dir: &Path, fmt: &str, opts: &str, name: &str, writes: &[&str]) -> Vec<u8> {
    create(dir, fmt, opts, name, "4M");
    io(dir, fmt, name, writes);
    let data = qemu_raw(dir, fmt, name, "parent-content.raw");
    std::fs::remove_file(path(dir, "parent-content.raw")).unwrap();
    data
}

/// What qemu reads from `img` as format `fmt`, as a raw file.
fn qemu_raw(dir: &Path, fmt: &str, img: &str, out: &str) -> Vec<u8> {
    qemu_img(&["convert", "-f", fmt, "-O", "raw", img, out], dir);
    std::fs::read(path(dir, out)).unwrap()
}

/// Map rows whose kind is the data offset, or None for zeros; neighbours merged.
/// qemu reports unallocated ranges of an image without backing as present zeros, vmdisk as
/// absent zeros: both read as zeros, so both count as zeros here.
fn normalise(map: &Value) -> Vec<MapRow<Option<u64>>> {
    let kind = |r: &Value| {
        let data = r["data"].as_bool().unwrap();
        data.then(|| r["offset"].as_u64().unwrap())
    };
    let joins = |last: &MapRow<Option<u64>>, row: &MapRow<Option<u64>>| {
        last.depth == row.depth
            && match (last.kind, row.kind) {
                (Some(a), Some(b)) => a + last.length == b,
                (None, None) => true,
                _ => false,
            }
    };
    normalise_map(map, "rows tile the disk", kind, joins)
}

/// vmdisk and qemu-img (reading `img` as `qfmt`) agree on content, virtual size and map.
fn verify(dir: &Path, img: &str, qfmt: &str, ours: &str) -> Value {
    let q = json(&qemu_img(&["info", "-f", qfmt, "--output=json", img], dir));
    let size = q["virtual-size"].as_u64().unwrap();
    let expected = qemu_raw(dir, qfmt, img, "qemu-out.raw");
    std::fs::remove_file(path(dir, "qemu-out.raw")).unwrap();
    let got = vmdisk_raw(dir, &[img]);
    assert_eq!(got.len() as u64, size, "raw output length of {img}");
    assert!(got == expected, "content of {img} differs from qemu's");

    let info = info_checked(dir, &[img], ours, size);

    // A fixed VHD: qemu -f vpc maps the whole data area as data without looking for holes;
    // vmdisk maps sparse holes as zeros like raw images, so compare with qemu's raw view of
    // the same bytes (without the footer).
    let fixed = info["format-specific"]["disk-type"] == "fixed";
    let theirs = if fixed {
        let mut rows = normalise(&json(&qemu_img_line(
            &format!("map -f raw --output=json {img}"),
            dir,
        )));
        rows.retain(|r| r.start < size);
        let last = rows.last_mut().unwrap();
        last.length = size - last.start;
        rows
    } else {
        normalise(&json(&qemu_img_line(
            &format!("map -f {qfmt} --output=json {img}"),
            dir,
        )))
    };
    let mine = normalise(&json(&vmdisk(&["map", "--json", img], dir)));
    assert_eq!(mine, theirs, "map of {img}");
    info
}

/// qemu-img converts `data` to `fmt` with each `-o` value of `variants`: vmdisk agrees with
/// qemu on each output (naming it `ours`) and reads `data` back from it.
fn assert_reads_qemu_conversions(
    dir: &Path,
    fmt: &str,
    ours: &str,
    variants: &[&str],
    data: &[u8],
) {
    std::fs::write(path(dir, "src.raw"), data).unwrap();
    let name = format!("c.{ours}");
    for opts in variants {
        qemu_img_line(
            &format!("convert -f raw -O {fmt} -o {opts} src.raw {name}"),
            dir,
        );
        verify(dir, &name, fmt, ours);
        assert!(
            vmdisk_raw(dir, &[&name]) == data,
            "{name} ({opts}) holds the source"
        );
        std::fs::remove_file(path(dir, &name)).unwrap();
    }
}

fn messages(info: &Value) -> String {
    info["safety"]["findings"].to_string()
}

fn patch(dir: &Path, name: &str, offset: u64, bytes: &[u8]) {
    write_at(&path(dir, name), offset, bytes);
}
