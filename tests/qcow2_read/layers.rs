//! Layers: the active layer of an image with internal snapshots, backing chains in any order,
//! declared backing formats, missing backing files and loops.

use super::*;

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn internal_snapshot_reads_active_layer() {
    let dir = &scratch();
    written_image(dir, "qcow2", "s.qcow2", "2M", &["write -P 0x01 0 1M"]);
    qemu_img(&["snapshot", "-c", "snap1", "s.qcow2"], dir);
    qemu_io(
        "s.qcow2",
        &["write -P 0x02 64k 128k", "discard 512k 64k"],
        dir,
    );
    qemu_img(&["snapshot", "-c", "second one", "s.qcow2"], dir);
    qemu_io("s.qcow2", &["write -P 0x03 1M 4k"], dir);
    let info = verify(dir, "s.qcow2", &["s.qcow2"]);
    let snaps = info["format-specific"]["snapshots"].as_array().unwrap();
    let names: Vec<&str> = snaps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["snap1", "second one"]);
    // The active layer, not the snapshot: byte 64k is 0x02 and 1M is 0x03.
    vmdisk_line("convert -O raw --output s.raw s.qcow2", dir);
    let raw = std::fs::read(path(dir, "s.raw")).unwrap();
    assert_eq!((raw[0], raw[65536], raw[1 << 20]), (1, 2, 3));
}

// ---------------------------------------------------------------------------------------------
// Backing files

#[test]
fn backing_chain_of_three_in_any_order() {
    let dir = &scratch();
    create(dir, "base.qcow2", "cluster_size=4096", "3M", &[]);
    qemu_io("base.qcow2", &["write -P 0x0b 0 3M"], dir);
    create_overlay(dir, "qcow2", "", "mid.qcow2", "3M", ("base.qcow2", "qcow2"));
    qemu_io(
        "mid.qcow2",
        &["write -P 0x0c 1M 512k", "write -z 2M 64k"],
        dir,
    );
    create_overlay(
        dir,
        "qcow2",
        "compat=0.10",
        "top.qcow2",
        "3M",
        ("mid.qcow2", "qcow2"),
    );
    qemu_io(
        "top.qcow2",
        &["write -P 0x0d 1200k 8k", "write -P 0x0e 0 4k"],
        dir,
    );
    for order in [
        ["top.qcow2", "mid.qcow2", "base.qcow2"],
        ["base.qcow2", "mid.qcow2", "top.qcow2"],
        ["mid.qcow2", "top.qcow2", "base.qcow2"],
    ] {
        let info = verify(dir, "top.qcow2", &order);
        let all = findings(&info);
        assert!(finding(&all, "backing-file").2.contains("mid.qcow2"));
        // The backing image's own finding is reported too, under its prefix.
        assert!(
            all.iter()
                .any(|f| f.0 == "backing-file" && f.2.contains("base.qcow2")),
            "{all:?}"
        );
        assert_eq!(info["safety"]["safe"], false);
        assert_has_role(&info, "top.qcow2", "image");
        assert_has_role(&info, "base.qcow2", "backing");
        assert_eq!(info["format-specific"]["backing-file-format"], "qcow2");
    }
}

#[test]
fn raw_base_and_overlay_larger_than_backing() {
    let dir = &scratch();
    // A raw base with no holes (so qemu's map of it is all data, like ours).
    std::fs::write(path(dir, "base.raw"), noise(1024 * 1024, 5)).unwrap();
    create_overlay(dir, "qcow2", "", "mid.qcow2", "2M", ("base.raw", "raw"));
    qemu_io(
        "mid.qcow2",
        &["write -P 0x21 512k 64k", "write -P 0x22 1536k 4k"],
        dir,
    );
    create_overlay(dir, "qcow2", "", "top.qcow2", "3M", ("mid.qcow2", "qcow2"));
    qemu_io(
        "top.qcow2",
        &["write -P 0x23 0 4k", "write -P 0x24 2900k 4k"],
        dir,
    );
    verify(dir, "top.qcow2", &["base.raw", "top.qcow2", "mid.qcow2"]);
    verify(dir, "mid.qcow2", &["mid.qcow2", "base.raw"]);
}

#[test]
fn declared_backing_format_is_honoured() {
    let dir = &scratch();
    written_image(dir, "qcow2", "inner.qcow2", "1M", &["write -P 0x31 0 64k"]);
    // The overlay says its backing file is raw: qemu reads the qcow2 file's bytes as the disk.
    create_overlay(dir, "qcow2", "", "over.qcow2", "1M", ("inner.qcow2", "raw"));
    // (No map comparison: qemu maps the holes of the sparse file inner.qcow2 as zeros, which a
    // raw layer cannot know.)
    let raw = raw_like_qemu(dir, &["over.qcow2", "inner.qcow2"]);
    assert_eq!(
        &raw[..4],
        b"QFI\xfb",
        "the disk starts with the backing file's header"
    );
    let info = info_json(&["over.qcow2", "inner.qcow2"], dir);
    assert_eq!(info["convertible"], true);
    let all = findings(&info);
    assert!(finding(&all, "backing-format").2.contains("raw"), "{all:?}");
}

#[test]
fn missing_backing_file() {
    let dir = &scratch();
    create(dir, "base.qcow2", "", "1M", &[]);
    create_overlay(dir, "qcow2", "", "top.qcow2", "1M", ("base.qcow2", "qcow2"));
    qemu_io("top.qcow2", &["write -P 0x41 0 4k"], dir);
    let info = info_json(&["top.qcow2"], dir);
    assert_eq!(info["convertible"], false);
    assert_eq!(info["safety"]["safe"], false);
    assert_eq!(info["format-specific"]["backing-file"], "base.qcow2");
    let all = findings(&info);
    let f = finding(&all, "backing-file");
    assert_eq!(f.1, "critical");
    assert!(
        f.2.contains("base.qcow2") && f.2.contains("not supplied"),
        "{f:?}"
    );
    let err = convert_fails(dir, &["top.qcow2"]);
    assert!(err.contains("base.qcow2"), "{err}");
    let err = vmdisk_fails(&["map", "--json", "top.qcow2"], dir);
    assert!(err.contains("base.qcow2"), "{err}");
}

#[test]
fn absolute_backing_path_resolves_by_base_name() {
    let dir = &scratch();
    written_image(dir, "qcow2", "base.qcow2", "1M", &["write -P 0x51 0 1M"]);
    let abs = path(dir, "base.qcow2").to_string_lossy().into_owned();
    create(dir, "top.qcow2", "", "1M", &["-b", &abs, "-F", "qcow2"]);
    qemu_io("top.qcow2", &["write -P 0x52 4k 4k"], dir);
    let info = verify(dir, "top.qcow2", &["top.qcow2", "base.qcow2"]);
    assert_eq!(info["format-specific"]["backing-file"], abs.as_str());
    let all = findings(&info);
    let f = finding(&all, "backing-file");
    assert_eq!(f.1, "critical");
    assert!(f.2.contains(&abs) && f.2.contains("path"), "{f:?}");
}

#[test]
fn backing_loops_fail_cleanly() {
    let dir = &scratch();
    // An image naming itself, and two images naming each other.
    // (qemu-img refuses to create that, so name "selg.qcow2" and patch the name.)
    create(
        dir,
        "self.qcow2",
        "",
        "1M",
        &["-u", "-b", "selg.qcow2", "-F", "qcow2"],
    );
    let f = path(dir, "self.qcow2");
    write_at(&f, read_be64(&f, 8), b"self.qcow2");
    assert_eq!(
        qemu_info("self.qcow2", dir)["backing-filename"],
        "self.qcow2"
    );
    info_fails_naming(dir, &["self.qcow2"], "itself");
    convert_fails(dir, &["self.qcow2"]);

    create(
        dir,
        "a.qcow2",
        "",
        "1M",
        &["-u", "-b", "b.qcow2", "-F", "qcow2"],
    );
    create(
        dir,
        "b.qcow2",
        "",
        "1M",
        &["-u", "-b", "a.qcow2", "-F", "qcow2"],
    );
    info_fails_naming(dir, &["a.qcow2", "b.qcow2"], "deeper than");
    convert_fails(dir, &["b.qcow2", "a.qcow2"]);
}
