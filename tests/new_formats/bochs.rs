//! Bochs growing images (the redolog layout qemu `block/bochs.c` reads).

use super::*;

const EXTENT: u32 = 4096;
const EXTENTS: u32 = 64;

/// A Bochs growing image of `EXTENTS` extents (256 KiB) with three written extents in slots
/// out of guest order, each with some sectors marked written. `v1` writes the version 1 header.
fn bochs_image(v1: bool) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    put(&mut h, 0, b"Bochs Virtual HD Image");
    put(&mut h, 32, b"Redolog");
    put(&mut h, 48, b"Growing");
    put(&mut h, 64, &le32(if v1 { 0x1_0000 } else { 0x2_0000 }));
    put(&mut h, 68, &le32(512)); // the catalog follows the header
    put(&mut h, 72, &le32(EXTENTS));
    put(&mut h, 76, &le32(512)); // bitmap bytes
    put(&mut h, 80, &le32(EXTENT));
    let disk = u64::from(EXTENTS * EXTENT).to_le_bytes();
    put(&mut h, if v1 { 84 } else { 88 }, &disk);
    let mut catalog = vec![0xffu8; EXTENTS as usize * 4];
    // (guest extent, slot, bitmap byte 0): sectors whose bit is set are stored.
    let written = [
        (0u32, 2u32, 0xffu8),
        (5, 0, 0b1010_0101),
        (EXTENTS - 1, 1, 0x80),
    ];
    let slot_len = 512 + EXTENT as usize;
    let mut data = vec![0u8; slot_len * written.len()];
    for (i, &(extent, slot, bits)) in written.iter().enumerate() {
        put(&mut catalog, extent as usize * 4, &le32(slot));
        let at = slot as usize * slot_len;
        data[at] = bits;
        put(&mut data, at + 512, &content(EXTENT as usize, i as u64));
    }
    h.extend(catalog);
    h.extend(data);
    h
}

#[test]
fn bochs_images_read_as_qemu_reads_them() {
    let dir = &scratch();
    for (name, v1) in [("disk.bochs", false), ("v1.bochs", true)] {
        write(dir, name, &bochs_image(v1));
        let info = like_qemu(dir, name, "bochs");
        assert_eq!(info["format-specific"]["allocated-extents"], 3, "{info}");
    }
    // A sector whose bitmap bit is clear reads as zeros though its data slot holds bytes.
    let raw = vmdisk_raw(dir, &["disk.bochs"]);
    let extent5 = 5 * EXTENT as usize;
    assert!(raw[extent5 + 512..extent5 + 1024].iter().all(|&b| b == 0));
    assert!(raw[extent5..extent5 + 512].iter().any(|&b| b != 0));
}

#[test]
fn damaged_bochs_images_are_refused_not_raw() {
    let dir = &scratch();
    let good = bochs_image(false);
    // Cut inside the last written extent, inside the catalog, inside the header.
    refused_when_cut(dir, "bochs", &good, &[good.len() - 100, 600, 100]);
    let mut bad = good.clone();
    put(&mut bad, 80, &le32(3000)); // extent size not a power of two
    write(dir, "bad-extent.bochs", &bad);
    let err = refused(dir, "bad-extent.bochs", "bochs");
    assert!(err.contains("power of two"), "{err}");
    let mut bad = good.clone();
    put(&mut bad, 72, &le32(2)); // a catalog too small for the disk
    write(dir, "small-catalog.bochs", &bad);
    refused(dir, "small-catalog.bochs", "bochs");
    let mut bad = good;
    put(&mut bad, 512 + 4 * 5, &le32(1000)); // a slot far past the end of the file
    write(dir, "bad-slot.bochs", &bad);
    refused(dir, "bad-slot.bochs", "bochs");
}

/// Bochs variants qemu does not read either (another subtype, an unknown header version) are
/// named as Bochs and refused as `unsupported`, the subtype or version in the message.
#[test]
fn bochs_variants_qemu_does_not_read_are_unsupported() {
    let dir = &scratch();
    let mut undoable = bochs_image(false);
    put(&mut undoable, 48, b"Undoable\0");
    let mut v3 = bochs_image(false);
    put(&mut v3, 64, &le32(0x3_0000));
    for (name, img, named) in [
        ("undoable.bochs", undoable, "Undoable"),
        ("v3.bochs", v3, "0x30000"),
    ] {
        write(dir, name, &img);
        for err in [
            vmdisk_fails(&["info", name], dir),
            refused(dir, name, "bochs"),
        ] {
            assert!(
                err.contains("not supported: Bochs") && err.contains(named),
                "{err}"
            );
        }
    }
}
