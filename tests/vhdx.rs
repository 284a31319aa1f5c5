//! VHDX reader tests. Images qemu-img can make (dynamic, fixed; block sizes 1-256 MiB; log sizes;
//! block_state_zero) are compared with qemu's own reading. What qemu cannot make or read is
//! hand-built here from a qemu-made image, following [MS-VHDX] byte for byte: a dirty log to
//! replay, a differencing child of a qemu-made parent, 4096-byte logical sectors, and damage.
//!
//! qemu-img has no block status for VHDX: its map reports the whole disk as data, so maps are
//! checked against what the BAT says instead.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "vhdx/damage.rs"]
mod damage;
#[path = "vhdx/differencing.rs"]
mod differencing;
#[path = "vhdx/log.rs"]
mod log;

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Helpers

fn create(dir: &Path, name: &str, opts: &str, size: &str) {
    create_image(dir, "vhdx", opts, &[], name, size);
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Set the CRC-32C at bytes 4..8 of a structure (computed with the field as zero).
fn fix_crc(b: &mut [u8]) {
    b[4..8].fill(0);
    let c = crc32c::crc32c(b);
    put32(b, 4, c);
}

/// A GUID as the spec writes it, in its on-disk byte order (first three fields little-endian).
fn guid(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b.try_into().unwrap()
}

fn guid_text(b: &[u8]) -> String {
    let mut o = b.to_vec();
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    let h: String = o.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

const HEADERS: [usize; 2] = [64 << 10, 128 << 10];
const GUID_BAT: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const GUID_METADATA: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const GUID_FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const GUID_LOGICAL_SECTOR: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const GUID_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
const GUID_LOCATOR_TYPE: &str = "B04AEFB7-D19E-4A81-B789-25B8E9445913";

/// The current header's slot (higher sequence number).
fn current_header(d: &[u8]) -> usize {
    if le64(d, HEADERS[0] + 8) >= le64(d, HEADERS[1] + 8) {
        HEADERS[0]
    } else {
        HEADERS[1]
    }
}

/// File offset of the region `id` in the first region table.
fn region(d: &[u8], id: &str) -> usize {
    let t = 192 << 10;
    let n = le32(d, t + 8) as usize;
    (0..n)
        .map(|i| t + 16 + 32 * i)
        .find(|&e| d[e..e + 16] == guid(id))
        .map(|e| le64(d, e + 16) as usize)
        .unwrap_or_else(|| panic!("region {id}"))
}

/// File offset of metadata item `id`.
fn meta_item(d: &[u8], id: &str) -> usize {
    let m = region(d, GUID_METADATA);
    let n = u16::from_le_bytes([d[m + 10], d[m + 11]]) as usize;
    (0..n)
        .map(|i| m + 32 + 32 * i)
        .find(|&e| d[e..e + 16] == guid(id))
        .map(|e| m + le32(d, e + 16) as usize)
        .unwrap_or_else(|| panic!("metadata item {id}"))
}

/// qemu's reading of a VHDX as raw bytes.
fn qemu_raw(dir: &Path, img: &str) -> Vec<u8> {
    let out = format!("{img}.qemu.raw");
    qemu_img(&["convert", "-O", "raw", img, &out], dir);
    let d = read(dir, &out);
    std::fs::remove_file(path(dir, &out)).unwrap();
    d
}

/// vmdisk and qemu agree on `img`: content, virtual size, block size. Returns vmdisk's info.
fn verify(dir: &Path, img: &str) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    assert_raw_like_qemu(dir, img, &[img], size, None);
    // And to qcow2, through the compressed-free writer path.
    let args = [
        "convert",
        "-O",
        "qcow2",
        "--output",
        "vmdisk-out.qcow2",
        img,
    ];
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.qcow2", dir);
    std::fs::remove_file(path(dir, "vmdisk-out.qcow2")).unwrap();

    let info = info_checked(dir, &[img], "vhdx", size);
    assert_eq!(
        info["format-specific"]["block-size"], q["cluster-size"],
        "{info}"
    );
    assert_eq!(info["safety"]["safe"], true, "{info}");
    info
}

/// `vmdisk map --json` rows as (start, length, kind) with kind "data", "zero" or "unallocated",
/// suffixed "@DEPTH" for rows of a parent layer; equal neighbours merged.
fn map_rows(dir: &Path, files: &[&str]) -> Vec<(u64, u64, String)> {
    let mut args = vec!["map", "--json"];
    args.extend(files);
    let m = json(&vmdisk(&args, dir));
    let mut rows: Vec<(u64, u64, String)> = vec![];
    for r in m.as_array().unwrap() {
        let kind = if r["data"] == true {
            "data"
        } else if r["present"] == true {
            "zero"
        } else {
            "unallocated"
        };
        let kind = match r["depth"].as_u64().unwrap() {
            0 => kind.to_string(),
            depth => format!("{kind}@{depth}"),
        };
        let (s, l) = (r["start"].as_u64().unwrap(), r["length"].as_u64().unwrap());
        if let Some(last) = rows.last_mut()
            && last.2 == kind
        {
            last.1 += l;
            continue;
        }
        rows.push((s, l, kind));
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Images qemu makes

#[test]
fn qemu_dynamic_and_fixed_variants() {
    let d = &scratch();
    // (subformat, block size, extra options, size as given to qemu)
    let cases = [
        ("dynamic", "1M", "block_state_zero=on", "5000001"),
        ("dynamic", "8M", "block_state_zero=off", "20971520"),
        ("dynamic", "32M", "log_size=2M", "34603520"),
        ("dynamic", "256M", "block_state_zero=off", "3146240"),
        ("fixed", "1M", "block_state_zero=on", "3146240"),
        ("fixed", "2M", "block_state_zero=off", "5000001"),
        ("fixed", "16M", "log_size=3M", "17826304"),
    ];
    for (i, (sub, bs, extra, size)) in cases.iter().enumerate() {
        let img = format!("v{i}.vhdx");
        create(
            d,
            &img,
            &format!("subformat={sub},block_size={bs},{extra}"),
            size,
        );
        let vsize = qemu_info(&img, d)["virtual-size"].as_u64().unwrap();
        let last = vsize - 512;
        qemu_io(
            &img,
            &[
                "write -P 0x5a 0 4k",
                &format!("write -P 0x6b {} 64k", (vsize / 2) & !511),
                &format!("write -P 0x7c {last} 512"),
            ],
            d,
        );
        let info = verify(d, &img);
        let fs = &info["format-specific"];
        assert_eq!(fs["disk-type"], *sub, "{info}");
        assert_eq!(fs["logical-sector-size"], 512, "{info}");
        assert_eq!(fs["log-replayed"], false, "{info}");
        assert_eq!(fs["has-parent"], false, "{info}");
        assert!(fs["disk-uuid"].as_str().unwrap().len() == 36, "{info}");
        std::fs::remove_file(path(d, &img)).unwrap();
    }
}

#[test]
fn qemu_convert_to_vhdx_odd_sizes() {
    let d = &scratch();
    // 3 MiB + 1.5 KiB: noise, a zero hole, text, and data in the last sector.
    let size = 3 * MIB as usize + 1536;
    let mut data = vec![0u8; size];
    data[..700_000].copy_from_slice(&noise(700_000, 1));
    data[1_500_000..2_000_000].copy_from_slice(&text(500_000, 2));
    data[size - 300..].copy_from_slice(&noise(300, 3));
    write(d, "src.raw", &data);
    for (i, opts) in ["subformat=dynamic", "subformat=fixed,block_size=1M"]
        .iter()
        .enumerate()
    {
        let img = format!("c{i}.vhdx");
        qemu_img_line(
            &format!("convert -f raw -O vhdx -o {opts} src.raw {img}"),
            d,
        );
        verify(d, &img);
        assert_eq!(vmdisk_raw(d, &[&img]), data, "{img}");
    }
}

#[test]
fn map_follows_the_bat_states() {
    let d = &scratch();
    // block_state_zero=on: untouched blocks are PAYLOAD_BLOCK_ZERO, which reads as zeros.
    // block_state_zero=off: they are NOT_PRESENT (no parent: zeros, reported unallocated).
    for (img, zero_state, untouched) in [("z.vhdx", "on", "zero"), ("n.vhdx", "off", "unallocated")]
    {
        create(
            d,
            img,
            &format!("block_size=1M,block_state_zero={zero_state}"),
            "4M",
        );
        qemu_io(img, &["write -P 1 0 4k", "write -P 2 3M 512"], d);
        let want: Vec<(u64, u64, String)> = vec![
            (0, MIB, "data".into()),
            (MIB, 2 * MIB, untouched.into()),
            (3 * MIB, MIB, "data".into()),
        ];
        assert_eq!(map_rows(d, &[img]), want, "{img}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4096-byte logical sectors (qemu makes only 512)

#[test]
fn logical_sectors_of_4096_bytes() {
    let d = &scratch();
    create(d, "a.vhdx", "block_size=1M", "4M");
    qemu_io(
        "a.vhdx",
        &[
            "write -P 0x31 0 8k",
            "write -P 0x32 2M 4k",
            "write -P 0x33 4190208 4k",
        ],
        d,
    );
    let expected = qemu_raw(d, "a.vhdx");
    let mut img = read(d, "a.vhdx");
    let at = meta_item(&img, GUID_LOGICAL_SECTOR);
    assert_eq!(le32(&img, at), 512);
    put32(&mut img, at, 4096);
    write(d, "a.vhdx", &img);
    let info = info_json(&["a.vhdx"], d);
    assert_eq!(info["format-specific"]["logical-sector-size"], 4096);
    // Chunk ratio = 2^23 * 4096 / 1 MiB ([MS-VHDX] 2.5).
    assert_eq!(info["format-specific"]["chunk-ratio"], 32768);
    assert_eq!(vmdisk_raw(d, &["a.vhdx"]), expected);
}
