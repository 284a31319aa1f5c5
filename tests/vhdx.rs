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

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Helpers

fn create(dir: &Path, name: &str, opts: &str, size: &str) {
    qemu_img(&["create", "-q", "-f", "vhdx", "-o", opts, name, size], dir);
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(path(dir, name)).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(path(dir, name), data).unwrap();
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

/// vmdisk's reading of an image set as raw bytes.
fn vmdisk_raw(dir: &Path, files: &[&str]) -> Vec<u8> {
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw"];
    args.extend(files);
    vmdisk(&args, dir);
    let d = read(dir, "vmdisk-out.raw");
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
    d
}

/// vmdisk and qemu agree on `img`: content, virtual size, block size. Returns vmdisk's info.
fn verify(dir: &Path, img: &str) -> Value {
    let q = qemu_info(img, dir);
    let size = q["virtual-size"].as_u64().unwrap();
    let mut args = vec!["convert", "-O", "raw", "--output", "vmdisk-out.raw", img];
    vmdisk(&args, dir);
    assert_same(img, "vmdisk-out.raw", dir);
    assert_eq!(
        std::fs::metadata(path(dir, "vmdisk-out.raw"))
            .unwrap()
            .len(),
        size
    );
    std::fs::remove_file(path(dir, "vmdisk-out.raw")).unwrap();
    // And to qcow2, through the compressed-free writer path.
    args = vec![
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

    let info = info_json(&[img], dir);
    assert_eq!(info["format"], "vhdx", "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["convertible"], true, "{info}");
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

fn codes(info: &Value) -> Vec<(String, String)> {
    info["safety"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_finding(info: &Value, code: &str, severity: &str) -> bool {
    codes(info).iter().any(|(c, s)| c == code && s == severity)
}

// ---------------------------------------------------------------------------------------------
// Images qemu makes

#[test]
fn qemu_dynamic_and_fixed_variants() {
    let dir = tmp();
    let d = dir.path();
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
    let dir = tmp();
    let d = dir.path();
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
        qemu_img(
            &[
                "convert", "-f", "raw", "-O", "vhdx", "-o", opts, "src.raw", &img,
            ],
            d,
        );
        verify(d, &img);
        assert_eq!(vmdisk_raw(d, &[&img]), data, "{img}");
    }
}

#[test]
fn map_follows_the_bat_states() {
    let dir = tmp();
    let d = dir.path();
    create(d, "z.vhdx", "block_size=1M,block_state_zero=on", "4M");
    create(d, "n.vhdx", "block_size=1M,block_state_zero=off", "4M");
    for img in ["z.vhdx", "n.vhdx"] {
        qemu_io(img, &["write -P 1 0 4k", "write -P 2 3M 512"], d);
    }
    // block_state_zero=on: untouched blocks are PAYLOAD_BLOCK_ZERO, which reads as zeros.
    assert_eq!(
        map_rows(d, &["z.vhdx"]),
        vec![
            (0, MIB, "data".into()),
            (MIB, 2 * MIB, "zero".into()),
            (3 * MIB, MIB, "data".into())
        ]
    );
    // block_state_zero=off: they are NOT_PRESENT (no parent: zeros, reported unallocated).
    assert_eq!(
        map_rows(d, &["n.vhdx"]),
        vec![
            (0, MIB, "data".into()),
            (MIB, 2 * MIB, "unallocated".into()),
            (3 * MIB, MIB, "data".into())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 4096-byte logical sectors (qemu makes only 512)

#[test]
fn logical_sectors_of_4096_bytes() {
    let dir = tmp();
    let d = dir.path();
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

// ---------------------------------------------------------------------------------------------
// The log ([MS-VHDX] 2.3)

enum Desc {
    /// A 4 KiB write of `sector` at `offset`.
    Data { offset: u64, sector: Vec<u8> },
    /// `len` zero bytes at `offset`.
    Zero { offset: u64, len: u64 },
}

/// One log entry, laid out per [MS-VHDX] 2.3.1: header, descriptors, data sectors.
fn log_entry(seq: u64, tail: u32, log_guid: &[u8], file_len: u64, descs: &[Desc]) -> Vec<u8> {
    let desc_sectors = (64 + 32 * descs.len()).div_ceil(4096);
    let data_count = descs
        .iter()
        .filter(|d| matches!(d, Desc::Data { .. }))
        .count();
    let len = (desc_sectors + data_count) * 4096;
    let mut e = vec![0u8; len];
    e[0..4].copy_from_slice(b"loge");
    put32(&mut e, 8, len as u32);
    put32(&mut e, 12, tail);
    put64(&mut e, 16, seq);
    put32(&mut e, 24, descs.len() as u32);
    e[32..48].copy_from_slice(log_guid);
    put64(&mut e, 48, file_len); // FlushedFileOffset
    put64(&mut e, 56, file_len); // LastFileOffset
    let mut data_at = desc_sectors * 4096;
    for (i, d) in descs.iter().enumerate() {
        let p = 64 + 32 * i;
        match d {
            Desc::Zero { offset, len } => {
                e[p..p + 4].copy_from_slice(b"zero");
                put64(&mut e, p + 8, *len);
                put64(&mut e, p + 16, *offset);
            }
            Desc::Data { offset, sector } => {
                e[p..p + 4].copy_from_slice(b"desc");
                e[p + 4..p + 8].copy_from_slice(&sector[4092..4096]); // trailing bytes
                e[p + 8..p + 16].copy_from_slice(&sector[0..8]); // leading bytes
                put64(&mut e, p + 16, *offset);
                let s = &mut e[data_at..data_at + 4096];
                s[0..4].copy_from_slice(b"data");
                put32(s, 4, (seq >> 32) as u32);
                s[8..4092].copy_from_slice(&sector[8..4092]);
                put32(s, 4092, seq as u32);
                data_at += 4096;
            }
        }
        put64(&mut e, p + 24, seq);
    }
    fix_crc(&mut e);
    e
}

const LOG_GUID: &str = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0";

/// A qemu-made 4 MiB dynamic VHDX with block 0 full of 0xab, and a dirty log of two entries
/// (sequence 10 at log offset 64 KiB, 11 right after) that rewrite the BAT (block 1 shares block
/// 0's payload, block 2 becomes ZERO) and payload sectors. `middle_leading` is the leading 8
/// bytes of the logged payload sector. Returns (image, expected guest content).
fn dirty_fixture(dir: &Path, name: &str, middle_leading: u8) -> (Vec<u8>, Vec<u8>) {
    create(dir, name, "block_size=1M,block_state_zero=off", "4M");
    qemu_io(name, &["write -P 0xab 0 1M"], dir);
    let mut img = read(dir, name);
    let bat = region(&img, GUID_BAT);
    let e0 = le64(&img, bat);
    assert_eq!(e0 & 7, 6, "block 0 is FULLY_PRESENT");
    let payload = (e0 >> 20) << 20;
    let mut bat_sector = img[bat..bat + 4096].to_vec();
    put64(&mut bat_sector, 8, payload | 6);
    put64(&mut bat_sector, 16, 2);
    let mut sector = vec![0x77u8; 4096];
    sector[..8].fill(middle_leading);
    sector[4092..].fill(0);
    let log_guid = guid(LOG_GUID);
    let h = current_header(&img);
    let log_off = le64(&img, h + 72) as usize;
    let flen = img.len() as u64;
    let a = log_entry(
        10,
        64 << 10,
        &log_guid,
        flen,
        &[Desc::Data {
            offset: bat as u64,
            sector: bat_sector,
        }],
    );
    let b_at = (64 << 10) + a.len();
    let b = log_entry(
        11,
        64 << 10,
        &log_guid,
        flen,
        &[
            Desc::Data {
                offset: payload + 4096,
                sector: sector.clone(),
            },
            Desc::Zero {
                offset: payload + 16384,
                len: 8192,
            },
        ],
    );
    let at = log_off + (64 << 10);
    img[at..at + a.len()].copy_from_slice(&a);
    img[log_off + b_at..log_off + b_at + b.len()].copy_from_slice(&b);
    for h in HEADERS {
        img[h + 48..h + 64].copy_from_slice(&log_guid);
        fix_crc(&mut img[h..h + 4096]);
    }
    write(dir, name, &img);

    let mut block = vec![0xabu8; MIB as usize];
    block[4096..8192].copy_from_slice(&sector);
    block[16384..24576].fill(0);
    let mut expected = block.clone();
    expected.extend_from_slice(&block);
    expected.resize(4 * MIB as usize, 0);
    (img, expected)
}

#[test]
fn dirty_log_is_replayed_in_memory() {
    let dir = tmp();
    let d = dir.path();
    let (img, expected) = dirty_fixture(d, "dirty.vhdx", 0xab);
    // qemu refuses to open a VHDX whose log needs replaying read-only.
    assert!(
        !run("qemu-img", &["info", "dirty.vhdx"], d).status.success(),
        "qemu-img reads a dirty VHDX"
    );
    let info = info_json(&["dirty.vhdx"], d);
    let fs = &info["format-specific"];
    assert_eq!(fs["log-replayed"], true, "{info}");
    assert_eq!(fs["log-entries"], 2, "{info}");
    assert_eq!(fs["log-head-sequence"], 11, "{info}");
    assert_eq!(fs["log-guid"], LOG_GUID, "{info}");
    assert!(has_finding(&info, "dirty", "warning"), "{info}");
    assert_eq!(info["convertible"], true);
    assert_eq!(vmdisk_raw(d, &["dirty.vhdx"]), expected);
    // The replay happened in memory only.
    assert_eq!(read(d, "dirty.vhdx"), img);
    // The BAT as replayed: block 1 shares block 0's payload, block 2 is ZERO, 3 NOT_PRESENT.
    let rows = map_rows(d, &["dirty.vhdx"]);
    assert_eq!(
        rows.last().unwrap(),
        &(3 * MIB, MIB, "unallocated".to_string())
    );
    assert!(
        rows.contains(&(2 * MIB, MIB, "zero".to_string())),
        "{rows:?}"
    );
}

#[test]
fn dirty_log_payload_bytes_that_cannot_be_mapped_are_refused() {
    let dir = tmp();
    let d = dir.path();
    // The logged sector's leading bytes are neither zero nor what the block already holds.
    dirty_fixture(d, "x.vhdx", 0x99);
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "out.raw", "x.vhdx"],
        d,
    );
    assert!(err.contains("log"), "{err}");
    assert_only_files(d, &["x.vhdx"]);
    // The leading bytes being zero maps them to zeros.
    let (_, expected) = dirty_fixture(d, "y.vhdx", 0);
    assert_eq!(vmdisk_raw(d, &["y.vhdx"]), expected);
}

#[test]
fn torn_and_corrupt_logs() {
    let dir = tmp();
    let d = dir.path();
    let (mut img, _) = dirty_fixture(d, "t.vhdx", 0xab);
    let h = current_header(&img);
    let log_off = le64(&img, h + 72) as usize;
    let a_at = log_off + (64 << 10);
    let a_len = le32(&img, a_at + 8) as usize;
    // Entry 11 torn (bad checksum): only entry 10 is replayed, the BAT change without the data.
    img[a_at + a_len + 4096 + 100] ^= 1;
    write(d, "t.vhdx", &img);
    let info = info_json(&["t.vhdx"], d);
    assert_eq!(info["format-specific"]["log-entries"], 1, "{info}");
    let mut block = vec![0xabu8; MIB as usize];
    let mut expected = block.clone();
    expected.append(&mut block);
    expected.resize(4 * MIB as usize, 0);
    assert_eq!(vmdisk_raw(d, &["t.vhdx"]), expected);
    // Entry 10 damaged as well: no valid sequence is left, a clean error.
    img[a_at + 200] ^= 1;
    write(d, "t.vhdx", &img);
    let err = vmdisk_fails(&["info", "t.vhdx"], d);
    assert!(err.contains("log"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Differencing disks (qemu can neither make nor read them)

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// The parent locator item ([MS-VHDX] 2.6.2.6) for `pairs`.
fn locator(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 12 * pairs.len()];
    b[0..16].copy_from_slice(&guid(GUID_LOCATOR_TYPE));
    b[18..20].copy_from_slice(&(pairs.len() as u16).to_le_bytes());
    for (i, (k, v)) in pairs.iter().enumerate() {
        let (k, v) = (utf16(k), utf16(v));
        let e = 20 + 12 * i;
        let ko = b.len();
        b.extend_from_slice(&k);
        let vo = b.len();
        b.extend_from_slice(&v);
        put32(&mut b, e, ko as u32);
        put32(&mut b, e + 4, vo as u32);
        b[e + 8..e + 10].copy_from_slice(&(k.len() as u16).to_le_bytes());
        b[e + 10..e + 12].copy_from_slice(&(v.len() as u16).to_le_bytes());
    }
    b
}

/// A differencing child of `parent.vhdx` (4 MiB, 1 MiB blocks), made from a qemu-made empty
/// VHDX: block 0 FULLY_PRESENT (0x11), block 1 PARTIALLY_PRESENT (0x22 in the sectors its
/// bitmap marks), block 2 NOT_PRESENT (the parent's), block 3 ZERO. Returns expected content.
fn child_fixture(dir: &Path, name: &str, linkage: &str, rel: &str) -> Vec<u8> {
    create(dir, name, "block_size=1M,block_state_zero=off", "4M");
    let mut img = read(dir, name);
    let fp = meta_item(&img, GUID_FILE_PARAMETERS);
    let flags = le32(&img, fp + 4);
    put32(&mut img, fp + 4, flags | 2); // HasParent
    // The locator as a new metadata item at 128 KiB into the region.
    let m = region(&img, GUID_METADATA);
    let n = u16::from_le_bytes([img[m + 10], img[m + 11]]) as usize;
    let loc = locator(&[
        ("parent_linkage", linkage),
        ("relative_path", rel),
        ("absolute_win32_path", "C:\\disks\\parent.vhdx"),
    ]);
    let e = m + 32 + 32 * n;
    img[e..e + 16].copy_from_slice(&guid(GUID_PARENT_LOCATOR));
    put32(&mut img, e + 16, 128 << 10);
    put32(&mut img, e + 20, loc.len() as u32);
    put32(&mut img, e + 24, 4); // IsRequired
    img[m + 10..m + 12].copy_from_slice(&((n + 1) as u16).to_le_bytes());
    img[m + (128 << 10)..m + (128 << 10) + loc.len()].copy_from_slice(&loc);
    // Payload and the sector bitmap appended at the end, 1 MiB aligned.
    let base = (img.len() as u64).div_ceil(MIB) * MIB;
    img.resize((base + 3 * MIB) as usize, 0);
    let (b0, b1, sb) = (
        base as usize,
        (base + MIB) as usize,
        (base + 2 * MIB) as usize,
    );
    img[b0..b0 + MIB as usize].fill(0x11);
    img[b1..b1 + MIB as usize].fill(0x22);
    // Chunk ratio 2^23 * 512 / 1 MiB = 4096: block 1's 2048 sector bits start at byte 256.
    let present: Vec<u64> = (0..8).chain(1024..1031).chain([2047]).collect();
    for s in &present {
        let bit = 2048 + s;
        img[sb + (bit / 8) as usize] |= 1 << (bit % 8);
    }
    let bat = region(&img, GUID_BAT);
    put64(&mut img, bat, base | 6);
    put64(&mut img, bat + 8, (base + MIB) | 7);
    put64(&mut img, bat + 16, 0);
    put64(&mut img, bat + 24, 2);
    put64(&mut img, bat + 4096 * 8, (base + 2 * MIB) | 6);
    write(dir, name, &img);

    let mut expected = qemu_raw(dir, "parent.vhdx");
    expected[..MIB as usize].fill(0x11);
    for s in &present {
        let at = (MIB + s * 512) as usize;
        expected[at..at + 512].fill(0x22);
    }
    expected[3 * MIB as usize..].fill(0);
    expected
}

fn make_parent(dir: &Path) -> String {
    create(dir, "parent.vhdx", "block_size=1M", "4M");
    qemu_io(
        "parent.vhdx",
        &["write -P 0x33 0 4M", "write -P 0x44 1M 600k"],
        dir,
    );
    let p = read(dir, "parent.vhdx");
    let h = current_header(&p);
    format!("{{{}}}", guid_text(&p[h + 32..h + 48]))
}

#[test]
fn differencing_child_of_a_qemu_parent() {
    let dir = tmp();
    let d = dir.path();
    let linkage = make_parent(d);
    let expected = child_fixture(d, "child.vhdx", &linkage, ".\\parent.vhdx");
    // Either order of the files: the child is the main image.
    assert_eq!(vmdisk_raw(d, &["child.vhdx", "parent.vhdx"]), expected);
    assert_eq!(vmdisk_raw(d, &["parent.vhdx", "child.vhdx"]), expected);
    let info = info_json(&["parent.vhdx", "child.vhdx"], d);
    let fs = &info["format-specific"];
    assert_eq!(fs["disk-type"], "differencing", "{info}");
    assert_eq!(fs["parent-locator"]["parent_linkage"], linkage.as_str());
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    assert!(
        !codes(&info).iter().any(|(c, _)| c == "parent-mismatch"),
        "{info}"
    );
    assert_eq!(info["convertible"], true);
    let roles: Vec<(String, String)> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().into(),
                f["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("parent.vhdx".into(), "backing".into())),
        "{roles:?}"
    );
    // The map: block 0 here, block 1 mixed, block 2 from the parent (depth 1), block 3 zero.
    let rows = map_rows(d, &["child.vhdx", "parent.vhdx"]);
    assert_eq!(rows[0], (0, MIB + 4096, "data".into()));
    assert_eq!(rows[1], (MIB + 4096, 1016 * 512, "data@1".into()));
    assert_eq!(rows[2], (MIB + 1024 * 512, 7 * 512, "data".into()));
    assert_eq!(rows[rows.len() - 2], (2 * MIB, MIB, "data@1".into()));
    assert_eq!(rows.last().unwrap(), &(3 * MIB, MIB, "zero".into()));
}

#[test]
fn differencing_parent_missing_or_changed() {
    let dir = tmp();
    let d = dir.path();
    let linkage = make_parent(d);
    child_fixture(
        d,
        "child.vhdx",
        "{00000000-1111-2222-3333-444444444444}",
        "..\\elsewhere\\parent.vhdx",
    );
    // A parent whose DataWriteGuid is not the linkage: Critical, but still readable.
    let info = info_json(&["child.vhdx", "parent.vhdx"], d);
    assert!(has_finding(&info, "parent-mismatch", "critical"), "{info}");
    assert!(linkage.len() == 38);
    // Missing parent: info still works, convert fails naming it and writes nothing.
    std::fs::remove_file(path(d, "parent.vhdx")).unwrap();
    let info = info_json(&["child.vhdx"], d);
    assert_eq!(info["convertible"], false, "{info}");
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "out.raw", "child.vhdx"],
        d,
    );
    assert!(err.contains("parent.vhdx"), "{err}");
    assert_only_files(d, &["child.vhdx"]);
}

// ---------------------------------------------------------------------------------------------
// Damage

#[test]
fn one_damaged_header_or_region_table_falls_back_to_the_other() {
    let dir = tmp();
    let d = dir.path();
    create(d, "a.vhdx", "block_size=1M", "3M");
    qemu_io("a.vhdx", &["write -P 9 1M 8k"], d);
    let good = read(d, "a.vhdx");
    let expected = qemu_raw(d, "a.vhdx");
    for (i, at) in [64usize << 10, 128 << 10, 192 << 10, 256 << 10]
        .iter()
        .enumerate()
    {
        let mut img = good.clone();
        img[at + 100] ^= 0xff;
        let name = format!("d{i}.vhdx");
        write(d, &name, &img);
        let info = info_json(&[&name], d);
        assert!(has_finding(&info, "corrupt", "warning"), "{name}: {info}");
        assert_eq!(vmdisk_raw(d, &[&name]), expected, "{name}");
    }
    // Both headers, or both region tables, damaged: a clean error.
    for (i, pair) in [[64usize << 10, 128 << 10], [192 << 10, 256 << 10]]
        .iter()
        .enumerate()
    {
        let mut img = good.clone();
        for at in pair {
            img[at + 100] ^= 0xff;
        }
        let name = format!("b{i}.vhdx");
        write(d, &name, &img);
        let err = vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", &name], d);
        assert!(err.contains("checksum"), "{err}");
        assert!(!path(d, "o.raw").exists());
    }
}

#[test]
fn malformed_images_fail_cleanly() {
    let dir = tmp();
    let d = dir.path();
    create(d, "a.vhdx", "block_size=1M", "3M");
    qemu_io("a.vhdx", &["write -P 9 0 8k"], d);
    let good = read(d, "a.vhdx");
    let convert =
        |name: &str| vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", name], d);

    // Cut inside the region tables.
    write(d, "t1.vhdx", &good[..200 << 10]);
    let err = convert("t1.vhdx");
    assert!(err.contains("past the end"), "{err}");
    // Cut before the BAT region ends.
    let bat = region(&good, GUID_BAT);
    write(d, "t2.vhdx", &good[..bat + 4096]);
    let err = convert("t2.vhdx");
    assert!(err.contains("past the end"), "{err}");

    // A BAT entry past the end of the file: info flags it, convert refuses.
    let mut img = good.clone();
    put64(&mut img, bat + 8, (1 << 40) | 6);
    write(d, "p.vhdx", &img);
    let info = info_json(&["p.vhdx"], d);
    assert!(has_finding(&info, "truncated", "critical"), "{info}");
    assert_eq!(info["convertible"], false);
    let err = convert("p.vhdx");
    assert!(err.contains("BAT entry 1"), "{err}");
    // An invalid BAT state.
    let mut img = good.clone();
    put64(&mut img, bat + 16, 5);
    write(d, "s.vhdx", &img);
    let err = convert("s.vhdx");
    assert!(err.contains("invalid state"), "{err}");

    // Block sizes: huge, zero, not a power of two.
    let fp = meta_item(&good, GUID_FILE_PARAMETERS);
    for (i, bs) in [1u32 << 31, 0, 3 << 20].iter().enumerate() {
        let mut img = good.clone();
        put32(&mut img, fp, *bs);
        let name = format!("bs{i}.vhdx");
        write(d, &name, &img);
        let err = convert(&name);
        assert!(err.contains("block size"), "{err}");
    }
    // A region past the end of the file (the table's checksum made valid again).
    let mut img = good.clone();
    for t in [192usize << 10, 256 << 10] {
        let n = le32(&img, t + 8) as usize;
        for e in 0..n {
            let e = t + 16 + 32 * e;
            if img[e..e + 16] == guid(GUID_BAT) {
                put64(&mut img, e + 16, 1 << 40);
            }
        }
        fix_crc(&mut img[t..t + (64 << 10)]);
    }
    write(d, "r.vhdx", &img);
    let err = convert("r.vhdx");
    assert!(err.contains("past the end"), "{err}");
    assert!(!path(d, "o.raw").exists());
}
