//! Damaged sparse files and descriptors, parent loops, and descriptors that must be the main image
//! in any order.

use super::*;

// ---------------------------------------------------------------------------------------------
// Damage

fn damaged(d: &Path, src: &str, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path(d, src)).unwrap();
    change(&mut b);
    std::fs::write(path(d, name), &b).unwrap();
}

#[test]
fn malformed_sparse_files() {
    let d = &scratch();
    let writes = ["write -P 0x80 0 1M", "write -P 0x81 3M 64k"];
    written_image(d, "vmdk", "g.vmdk", "4M", &writes);
    let len = std::fs::metadata(path(d, "g.vmdk")).unwrap().len();
    let gd = u64::from_le_bytes(
        std::fs::read(path(d, "g.vmdk")).unwrap()[56..64]
            .try_into()
            .unwrap(),
    );

    // Truncated: grains past the end.
    damaged(d, "g.vmdk", "t.vmdk", |b| b.truncate(len as usize - 65536));
    let err = convert_fails(d, &["t.vmdk"]);
    assert!(
        err.contains("truncated") || err.contains("past the end"),
        "{err}"
    );
    // Cut inside the header.
    damaged(d, "g.vmdk", "h.vmdk", |b| b.truncate(60));
    convert_fails(d, &["h.vmdk"]);
    // Grain directory past the end of the file.
    damaged(d, "g.vmdk", "gd.vmdk", |b| put(b, 56, &le64(1 << 40)));
    convert_fails(d, &["gd.vmdk"]);
    // A grain table pointer past the end.
    damaged(d, "g.vmdk", "gt.vmdk", |b| {
        put(b, gd as usize * 512, &le32(0x7fff_ffff))
    });
    convert_fails(d, &["gt.vmdk"]);
    // A grain pointer past the end (in every grain table copy).
    damaged(d, "g.vmdk", "gr.vmdk", |b| {
        let gt = u32::from_le_bytes(
            b[gd as usize * 512..gd as usize * 512 + 4]
                .try_into()
                .unwrap(),
        );
        put(b, gt as usize * 512, &le32(0x7fff_0000));
    });
    convert_fails(d, &["gr.vmdk"]);
    // Zero / huge grain sizes, huge capacity, bad version, bad newline bytes, GT size.
    for (name, at, bytes) in [
        ("g0.vmdk", 20, le64(0).to_vec()),
        ("gh.vmdk", 20, le64(1 << 40).to_vec()),
        ("cap.vmdk", 12, le64(u64::MAX / 256).to_vec()),
        ("ver.vmdk", 4, le32(9).to_vec()),
        ("nl.vmdk", 73, b"\r\n\r\n".to_vec()),
        ("gte.vmdk", 44, le32(0).to_vec()),
        ("gte2.vmdk", 44, le32(100_000).to_vec()),
    ] {
        damaged(d, "g.vmdk", name, |b| put(b, at, &bytes));
        convert_fails(d, &[name]);
    }
    // Damaged compressed data.
    std::fs::write(path(d, "r.raw"), noise(200_000, 1)).unwrap();
    qemu_img_line(
        "convert -f raw -O vmdk -o subformat=streamOptimized r.raw so.vmdk",
        d,
    );
    damaged(d, "so.vmdk", "so-bad.vmdk", |b| {
        for x in &mut b[65536 + 12..65536 + 40] {
            *x ^= 0x55;
        }
    });
    convert_fails(d, &["so-bad.vmdk"]);
}

#[test]
fn malformed_descriptors() {
    let d = &scratch();
    std::fs::write(path(d, "x-flat.vmdk"), vec![1u8; 4096]).unwrap();
    let head = "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n";
    for (name, body) in [
        ("none.vmdk", ""),
        (
            "huge.vmdk",
            "RW 36028797018963967 FLAT \"x-flat.vmdk\" 0\nRW 36028797018963967 FLAT \"x-flat.vmdk\" 0\n",
        ),
        ("self.vmdk", "RW 8 FLAT \"self.vmdk\" 0\n"),
        ("nofile.vmdk", "RW 8 SPARSE\n"),
        ("rdm.vmdk", "RW 8 VMFSRDM \"x-flat.vmdk\"\n"),
        ("odd.vmdk", "RW 8 WEIRD \"x-flat.vmdk\"\n"),
        ("notsparse.vmdk", "RW 8 SPARSE \"x-flat.vmdk\"\n"),
    ] {
        std::fs::write(path(d, name), format!("{head}{body}")).unwrap();
        let err = convert_fails(d, &[name, "x-flat.vmdk"]);
        assert!(!err.is_empty());
    }
    // Overflowing offsets into a flat file lie past its end: a critical `truncated` finding
    // (qemu reads zeros there), and convert refuses.
    std::fs::write(
        path(d, "far.vmdk"),
        format!("{head}RW 8 FLAT \"x-flat.vmdk\" 36028797018963967\n"),
    )
    .unwrap();
    let info = info_json(&["far.vmdk", "x-flat.vmdk"], d);
    finding_message(&info, "truncated", "critical");
    convert_fails(d, &["far.vmdk", "x-flat.vmdk"]);
    // A descriptor with an extent line qemu has never heard of still gets a one-line error.
    let info = info_json(&["rdm.vmdk", "x-flat.vmdk"], d);
    finding_message(&info, "external-extent", "critical");
    assert_eq!(info["convertible"], false);
}

/// Parents that loop (a -> b -> a) end at the chain depth limit, cleanly.
#[test]
fn parent_loop() {
    let d = &scratch();
    let desc = |parent: &str| {
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=2\ncreateType=\"monolithicFlat\"\nparentFileNameHint=\"{parent}\"\nRW 8 FLAT \"f.bin\" 0\n"
        )
    };
    std::fs::write(path(d, "f.bin"), vec![0u8; 4096]).unwrap();
    std::fs::write(path(d, "a.vmdk"), desc("b.vmdk")).unwrap();
    std::fs::write(path(d, "b.vmdk"), desc("a.vmdk")).unwrap();
    vmdisk_fails(&["info", "a.vmdk", "b.vmdk", "f.bin"], d);
}

/// A split disk handed over without its descriptor: each extent file opens on its own (qemu
/// does the same); with the descriptor, the descriptor is the main image.
#[test]
fn descriptor_is_main_in_any_order() {
    let d = &scratch();
    create(d, "o.vmdk", "subformat=twoGbMaxExtentSparse", "1M", &[]);
    qemu_io("o.vmdk", &["write -P 0x90 0 64k"], d);
    for files in [["o-s001.vmdk", "o.vmdk"], ["o.vmdk", "o-s001.vmdk"]] {
        let info = info_json(&files, d);
        let main = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["role"] == "image")
            .unwrap()["name"]
            .clone();
        assert_eq!(main, "o.vmdk", "{info}");
    }
    // qemu refuses the extent alone (no CID in its empty descriptor area); vmdisk reads it.
    let info = info_json(&["o-s001.vmdk"], d);
    assert_eq!(info["format-specific"]["descriptor-file"], false);
    vmdisk_line("convert -O raw --output s.raw o-s001.vmdk", d);
    assert_same("o.vmdk", "s.raw", d);
}

/// qemu counts an extent line that follows a blank line twice (its scanner skips the newline
/// and reads the next line from the blank one): its disk is twice as large as the descriptor
/// says. vmdisk follows the descriptor.
#[test]
fn extent_after_blank_line_counts_once() {
    let d = &scratch();
    let data = noise(8192, 4);
    std::fs::write(path(d, "b-flat.vmdk"), &data).unwrap();
    std::fs::write(
        path(d, "b.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 16 FLAT \"b-flat.vmdk\" 0\n",
    )
    .unwrap();
    assert_eq!(
        qemu_info("b.vmdk", d)["virtual-size"],
        16384,
        "qemu's reading"
    );
    let info = info_json(&["b.vmdk", "b-flat.vmdk"], d);
    assert_eq!(info["virtual-size"], 8192);
    converts_to(d, &["b.vmdk", "b-flat.vmdk"], &data);
}
