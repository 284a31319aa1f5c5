//! Differential tests of the CLI against qemu-img for raw input and output.

mod common;
use common::*;

#[test]
fn raw_to_raw_keeps_content_and_size() {
    let dir = &scratch();
    let size = 3 * 1024 * 1024 + 512; // not a multiple of any cluster size
    write_at(&path(dir, "in.raw"), 0, &noise(70000, 1));
    write_at(&path(dir, "in.raw"), size - 512, &[0xAB; 512]); // data in the last sector
    vmdisk_line("convert -O raw --output out.raw in.raw", dir);
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

#[test]
fn interrupted_conversion_leaves_nothing_behind() {
    let dir = &scratch();
    // Compressing 512 MiB of random data takes seconds, so the signal lands mid-copy.
    let block = noise(16 << 20, 7);
    for i in 0..32u64 {
        write_at(&path(dir, "big.raw"), i << 24, &block);
    }
    let child = std::process::Command::new(vmdisk_bin())
        .args([
            "convert",
            "-O",
            "qcow2",
            "-c",
            "--output",
            "out.qcow2",
            "big.raw",
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    ok("kill", &["-INT", &pid], dir);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "vmdisk: cancelled"
    );
    assert_only_files(dir, &["big.raw"]);
}

#[test]
fn sparse_raw_holes_map_as_zero_like_qemu() {
    let dir = &scratch();
    let f = std::fs::File::create(path(dir, "s.raw")).unwrap();
    f.set_len(10 << 20).unwrap();
    write_at(&path(dir, "s.raw"), 5 << 20, &noise(8192, 2));
    let ours = vmdisk(&["map", "--json", "s.raw"], dir);
    let theirs = qemu_img(&["map", "--output=json", "-f", "raw", "s.raw"], dir);
    let strip = |v: serde_json::Value| -> Vec<(u64, u64, bool, bool)> {
        each(&v, |r| {
            (
                r["start"].as_u64().unwrap(),
                r["length"].as_u64().unwrap(),
                r["zero"] == true,
                r["data"] == true,
            )
        })
    };
    assert_eq!(strip(json(&ours)), strip(json(&theirs)));
    vmdisk(&["convert", "-O", "raw", "--output", "o.raw", "s.raw"], dir);
    assert_same("s.raw", "o.raw", dir);
}

#[test]
fn bad_options_are_refused_before_writing() {
    let dir = &scratch();
    write_at(&path(dir, "in.raw"), 0, &noise(4096, 3));
    vmdisk_fails_line("convert -O raw -c --output o in.raw", dir);
    vmdisk_fails_line(
        "convert -O qcow2 --cluster-size 1000 --output o in.raw",
        dir,
    );
    vmdisk_fails_line("convert -O qcow2 --output o missing.raw", dir);
    vmdisk_fails_line("convert -O raw --output in.raw in.raw", dir);
    assert_only_files(dir, &["in.raw"]);
    assert_eq!(std::fs::read(path(dir, "in.raw")).unwrap(), noise(4096, 3));
}
