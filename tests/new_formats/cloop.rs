//! cloop V2.0 images: the shell-script preamble, block size and count, the offsets table and
//! one zlib stream a block (the layout qemu `block/cloop.c` reads).

use super::*;

const PREAMBLE: &[u8] =
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\nexit $?\n";
const BLOCK: usize = 16384;

/// A cloop image of `blocks` blocks of text, zeros and noise.
fn cloop_image(blocks: usize) -> Vec<u8> {
    let mut h = vec![0u8; 128];
    put(&mut h, 0, PREAMBLE);
    h.extend(be32(BLOCK as u32));
    h.extend(be32(blocks as u32));
    let streams: Vec<Vec<u8>> = (0..blocks)
        .map(|i| zlib(&content(BLOCK, i as u64 * 7)))
        .collect();
    let mut at = (h.len() + (blocks + 1) * 8) as u64;
    for s in &streams {
        h.extend(be64(at));
        at += s.len() as u64;
    }
    h.extend(be64(at));
    h.extend(streams.concat());
    h
}

#[test]
fn cloop_images_read_as_qemu_reads_them() {
    let dir = &scratch();
    write(dir, "disk.cloop", &cloop_image(21));
    let info = like_qemu(dir, "disk.cloop", "cloop");
    assert_eq!(info["format-specific"]["block-size"], BLOCK, "{info}");
    let map = json(&vmdisk(&["map", "--json", "disk.cloop"], dir));
    assert!(map.to_string().contains("compressed"), "{map}");
}

#[test]
fn damaged_cloop_images_are_refused_not_raw() {
    let dir = &scratch();
    let good = cloop_image(5);
    // Cut inside the last block, inside the offsets table, inside the header.
    refused_when_cut(dir, "cloop", &good, &[good.len() - 10, 150, 130]);
    let mut bad = good.clone();
    put(&mut bad, 136 + 16, &be64(10)); // offsets going backwards
    write(dir, "backwards.cloop", &bad);
    refused(dir, "backwards.cloop", "cloop");
    let mut bad = good.clone();
    put(&mut bad, 128, &be32(1000)); // a block size that is no multiple of 512
    write(dir, "odd-block.cloop", &bad);
    refused(dir, "odd-block.cloop", "cloop");
    // A damaged zlib stream fails the conversion, with nothing written.
    let mut bad = good;
    let first = u64::from_be_bytes(bad[136..144].try_into().unwrap()) as usize;
    put(&mut bad, first + 2, &[0xff; 8]);
    write(dir, "bad-stream.cloop", &bad);
    convert_fails(dir, &["bad-stream.cloop"]);
    // Another cloop version is named, not read.
    let mut v4 = read(dir, "good.cloop");
    put(&mut v4, 12, b"4");
    write(dir, "v4.cloop", &v4);
    let err = refused(dir, "v4.cloop", "cloop");
    assert!(err.contains("4.0"), "{err}");
}
