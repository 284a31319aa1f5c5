//! Differential tests of the CLI against qemu-img for raw input and output.

mod common;
use common::*;

#[test]
fn raw_to_raw_keeps_content_and_size() {
    let d = tmp();
    let dir = d.path();
    let size = 3 * 1024 * 1024 + 512; // not a multiple of any cluster size
    write_at(&path(dir, "in.raw"), 0, &noise(70000, 1));
    write_at(&path(dir, "in.raw"), size - 512, &[0xAB; 512]); // data in the last sector
    vmdisk(
        &["convert", "-O", "raw", "--output", "out.raw", "in.raw"],
        dir,
    );
    assert_same("in.raw", "out.raw", dir);
    assert_eq!(std::fs::metadata(path(dir, "out.raw")).unwrap().len(), size);
    let info = info_json(&["out.raw"], dir);
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], size);
    assert_eq!(qemu_info("out.raw", dir)["virtual-size"], size);
}

#[test]
fn empty_file_is_a_clean_error() {
    let d = tmp();
    std::fs::write(path(d.path(), "empty"), b"").unwrap();
    let err = vmdisk_fails(&["info", "empty"], d.path());
    assert!(err.contains("empty"), "{err}");
}
