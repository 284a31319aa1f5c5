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

/// `qemu-io -f FMT -c ...` (explicit format: qemu probes a fixed VHD as raw).
fn io(dir: &Path, fmt: &str, image: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(image);
    ok("qemu-io", &args, dir);
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

fn messages(info: &Value) -> String {
    info["safety"]["findings"].to_string()
}

fn patch(dir: &Path, name: &str, offset: u64, bytes: &[u8]) {
    write_at(&path(dir, name), offset, bytes);
}
