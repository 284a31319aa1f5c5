//! The log ([MS-VHDX] 2.3): a dirty log replayed in memory, payloads that cannot be mapped, torn
//! and corrupt logs.

use super::*;

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
    let mut sector = vec![0x77u8; 4096];
    sector[..8].fill(middle_leading);
    sector[4092..].fill(0);
    // Block 1 gets a payload of its own at the end of the file, a copy of block 0's (two
    // blocks sharing one are `corrupt`); entry 11 writes both alike.
    let own = img.len().next_multiple_of(MIB as usize);
    let copy = img[payload as usize..payload as usize + MIB as usize].to_vec();
    img.resize(own, 0);
    img.extend_from_slice(&copy);
    let mut bat_sector = img[bat..bat + 4096].to_vec();
    put64(&mut bat_sector, 8, own as u64 | 6);
    put64(&mut bat_sector, 16, 2);
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
        &[payload, own as u64]
            .iter()
            .flat_map(|&at| {
                [
                    Desc::Data {
                        offset: at + 4096,
                        sector: sector.clone(),
                    },
                    Desc::Zero {
                        offset: at + 16384,
                        len: 8192,
                    },
                ]
            })
            .collect::<Vec<_>>(),
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
    let d = &scratch();
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
    // The BAT as replayed: block 1 has its own payload, block 2 is ZERO, 3 NOT_PRESENT.
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
    let d = &scratch();
    // The logged sector's leading bytes are neither zero nor what the block already holds.
    dirty_fixture(d, "x.vhdx", 0x99);
    let err = vmdisk_fails_line("convert -O raw --output out.raw x.vhdx", d);
    assert!(err.contains("log"), "{err}");
    assert_only_files(d, &["x.vhdx"]);
    // The leading bytes being zero maps them to zeros.
    let (_, expected) = dirty_fixture(d, "y.vhdx", 0);
    assert_eq!(vmdisk_raw(d, &["y.vhdx"]), expected);
}

#[test]
fn torn_and_corrupt_logs() {
    let d = &scratch();
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
    info_fails_naming(d, &["t.vhdx"], "log");
}
