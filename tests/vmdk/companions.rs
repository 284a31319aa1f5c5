//! Companion files: extent paths, missing extents, short flat extents.

use super::*;

// ---------------------------------------------------------------------------------------------
// Companions: paths, missing files, order

#[test]
fn extent_paths_and_missing_extents() {
    let d = &scratch();
    create(d, "p.vmdk", "subformat=monolithicFlat", "1M", &[]);
    qemu_io("p.vmdk", &["write -P 0x70 0 4k"], d);
    let desc = std::fs::read_to_string(path(d, "p.vmdk")).unwrap();
    // A path: resolved by base name among the supplied files, Critical finding.
    std::fs::write(
        path(d, "abs.vmdk"),
        desc.replace("\"p-flat.vmdk\"", "\"/vmfs/volumes/ds/p-flat.vmdk\""),
    )
    .unwrap();
    let info = info_json(&["abs.vmdk", "p-flat.vmdk"], d);
    finding_message(&info, "external-extent", "critical");
    assert_eq!(info["safety"]["safe"], false);
    vmdisk_line("convert -O raw --output o.raw abs.vmdk p-flat.vmdk", d);
    assert_same("p.vmdk", "o.raw", d);
    std::fs::remove_file(path(d, "o.raw")).unwrap();
    std::fs::write(
        path(d, "dots.vmdk"),
        desc.replace("\"p-flat.vmdk\"", "\"..\\\\p-flat.vmdk\""),
    )
    .unwrap();
    finding_message(
        &info_json(&["dots.vmdk", "p-flat.vmdk"], d),
        "external-extent",
        "critical",
    );

    // Missing: info reports it, convert fails in one line naming the file.
    let info = info_json(&["p.vmdk"], d);
    assert_eq!(info["convertible"], false);
    let msg = finding_message(&info, "missing-extent", "warning");
    assert!(msg.contains("p-flat.vmdk"), "{msg}");
    let err = convert_fails(d, &["p.vmdk"]);
    assert!(err.contains("p-flat.vmdk"), "{err}");
    // The path case never reads the host file, even when it exists there.
    let err = convert_fails(d, &["abs.vmdk"]);
    assert!(err.contains("p-flat.vmdk"), "{err}");
}

/// A flat extent file shorter than its extent line is cut: qemu reads zeros past its end,
/// vmdisk reports the loss (a critical `truncated` finding, tests/intact/files.rs) and refuses
/// to convert.
#[test]
fn short_flat_extent() {
    let d = &scratch();
    create(d, "s.vmdk", "subformat=monolithicFlat", "1M", &[]);
    qemu_io("s.vmdk", &["write -P 0x71 0 8k"], d);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path(d, "s-flat.vmdk"))
        .unwrap();
    f.set_len(6000).unwrap();
    drop(f);
    let info = info_json(&["s.vmdk", "s-flat.vmdk"], d);
    finding_message(&info, "truncated", "critical");
    assert_eq!(info["convertible"], false);
    convert_fails(d, &["s.vmdk", "s-flat.vmdk"]);
}
