//! The formats other than qcow2: vmdk, vdi, vhdx, qed and parallels against qemu-img check,
//! VHD (which qemu-img cannot check) and streamOptimized grains on their own.

use crate::common::{path, qemu_img_line, run, scratch, truncate};
use crate::compare::{agree, agree_clean, ours, qemu};
use std::path::Path;

/// A 64 MiB image of `format` with data at 0-3 MiB and 10-11 MiB.
fn image(dir: &Path, name: &str, format: &str, opts: &str) {
    let opts = if opts.is_empty() {
        String::new()
    } else {
        format!("{opts} ")
    };
    qemu_img_line(&format!("create -q -f {format} {opts}{name} 64M"), dir);
    let cmds = ["write -P 0x11 0 3M", "write -P 0x22 10M 1M"];
    let mut args = vec!["-f", format];
    for c in &cmds {
        args.extend(["-c", c]);
    }
    args.push(name);
    crate::common::ok("qemu-io", &args, dir);
}

fn le32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
}

#[test]
fn clean_images_of_every_format_agree() {
    let dir = &scratch();
    image(dir, "a.vmdk", "vmdk", "");
    image(dir, "s.vmdk", "vmdk", "-o subformat=streamOptimized");
    image(dir, "a.vdi", "vdi", "");
    image(dir, "a.vhdx", "vhdx", "");
    image(dir, "a.qed", "qed", "");
    image(dir, "a.parallels", "parallels", "");
    for name in [
        "a.vmdk",
        "s.vmdk",
        "a.vdi",
        "a.vhdx",
        "a.qed",
        "a.parallels",
    ] {
        let (q, v) = agree(dir, name);
        assert_eq!(q.code, 0, "{name}");
        assert_eq!(v.json["format"], q.json["format"]);
    }
    // qemu-img cannot check VHD (exit 63); vmdisk checks its BAT.
    image(dir, "a.vpc", "vpc", "");
    assert_eq!(qemu(dir, "a.vpc").code, 63);
    let v = ours(dir, "a.vpc");
    assert_eq!(
        (v.code, v.json["format"].as_str()),
        (0, Some("vpc")),
        "{}",
        v.json
    );
}

#[test]
fn a_vdi_block_used_twice_agrees() {
    let dir = &scratch();
    image(dir, "d.vdi", "vdi", "");
    let file = path(dir, "d.vdi");
    let mut data = std::fs::read(&file).unwrap();
    // VDI header v1.1: the block map's offset at 0x154; guest block 1 now names block 0's data.
    let map = le32(&data, 0x154) as usize;
    let first = data[map..map + 4].to_vec();
    data[map + 4..map + 8].copy_from_slice(&first);
    std::fs::write(&file, &data).unwrap();
    let (q, v) = agree(dir, "d.vdi");
    assert_eq!((q.code, v.count("corruptions")), (2, 1), "{}", v.json);
}

#[test]
fn cut_images_are_corrupt() {
    let dir = &scratch();
    // vhdx and qed: qemu-img check reports corruption (exit 2), and so does vmdisk.
    for (name, format) in [("c.vhdx", "vhdx"), ("c.qed", "qed")] {
        image(dir, name, format, "");
        let file = path(dir, name);
        let len = std::fs::metadata(&file).unwrap().len();
        truncate(&file, len - (1 << 20));
        let (q, v) = agree(dir, name);
        assert_eq!(q.code, 2, "{name}");
        assert!(v.count("corruptions") >= 1);
    }
    // vmdk: qemu-img check finds the grain past the end but then fails ("Check failed",
    // exit 1); vmdisk reports the corruption (exit 2).
    image(dir, "c.vmdk", "vmdk", "");
    let file = path(dir, "c.vmdk");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len - (1 << 20));
    let q = run("qemu-img", &["check", "c.vmdk"], dir);
    assert_eq!(q.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&q.stderr).contains("points after EOF"));
    let v = ours(dir, "c.vmdk");
    assert_eq!((v.code, v.count("corruptions")), (2, 1), "{}", v.json);
}

#[test]
fn a_damaged_stream_optimized_grain_is_a_corruption() {
    let dir = &scratch();
    image(dir, "s.vmdk", "vmdk", "-o subformat=streamOptimized");
    let file = path(dir, "s.vmdk");
    let mut data = std::fs::read(&file).unwrap();
    // SparseExtentHeader overHead (sectors) at byte 64: the first grain marker is there,
    // 12 bytes (LBA, size) before its zlib data.
    let first = u64::from_le_bytes(data[64..72].try_into().unwrap()) as usize * 512;
    for b in &mut data[first + 12 + 16..first + 12 + 48] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &data).unwrap();
    // qemu-img check does not decode grains.
    assert_eq!(qemu(dir, "s.vmdk").code, 0);
    let v = ours(dir, "s.vmdk");
    assert_eq!(v.code, 2, "{}", v.json);
    assert!(
        v.json["problems"][0]
            .as_str()
            .unwrap()
            .contains("does not decode"),
        "{}",
        v.json
    );
}

#[test]
fn qed_leaks_and_shared_clusters_agree() {
    let dir = &scratch();
    image(dir, "leak.qed", "qed", "");
    let file = path(dir, "leak.qed");
    let len = std::fs::metadata(&file).unwrap().len();
    // Two clusters at the end that no table names.
    truncate(&file, len + 2 * 65536);
    let (q, v) = agree(dir, "leak.qed");
    assert_eq!((q.code, v.count("leaks")), (3, 2), "{}", v.json);

    image(dir, "twice.qed", "qed", "");
    let file = path(dir, "twice.qed");
    let mut data = std::fs::read(&file).unwrap();
    // QED header: the L1 table's offset at byte 40; L2 entry 1 now names entry 0's cluster.
    let l1 = u64::from_le_bytes(data[40..48].try_into().unwrap()) as usize;
    let l2 = u64::from_le_bytes(data[l1..l1 + 8].try_into().unwrap()) as usize;
    let first = data[l2..l2 + 8].to_vec();
    data[l2 + 8..l2 + 16].copy_from_slice(&first);
    std::fs::write(&file, &data).unwrap();
    let (q, v) = agree(dir, "twice.qed");
    assert_eq!(
        (q.code, v.count("corruptions"), v.count("leaks")),
        (2, 1, 1),
        "{}",
        v.json
    );
}

#[test]
fn vdi_block_map_damage_agrees() {
    let dir = &scratch();
    image(dir, "big.vdi", "vdi", "");
    let file = path(dir, "big.vdi");
    let mut data = std::fs::read(&file).unwrap();
    // Guest block 2 names data block 5000 of a 64-block image: out of range, and the header's
    // allocated count no longer matches the map (two corruptions for qemu-img too).
    let map = le32(&data, 0x154) as usize;
    data[map + 8..map + 12].copy_from_slice(&5000u32.to_le_bytes());
    std::fs::write(&file, &data).unwrap();
    let (q, v) = agree(dir, "big.vdi");
    assert_eq!((q.code, v.count("corruptions")), (2, 2), "{}", v.json);

    // Cut: qemu-img check does not compare the block map with the file's length; vmdisk does.
    image(dir, "cut.vdi", "vdi", "");
    let file = path(dir, "cut.vdi");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len - (1 << 20));
    assert_eq!(qemu(dir, "cut.vdi").code, 0);
    let v = ours(dir, "cut.vdi");
    assert_eq!((v.code, v.count("corruptions")), (2, 1), "{}", v.json);
}

#[test]
fn stream_markers_must_agree_with_the_grain_tables() {
    let dir = &scratch();
    image(dir, "s.vmdk", "vmdk", "-o subformat=streamOptimized");
    assert_eq!(ours(dir, "s.vmdk").code, 0);
    let file = path(dir, "s.vmdk");
    let clean = std::fs::read(&file).unwrap();
    // The first grain marker's LBA says another guest sector than its grain table entry.
    let mut data = clean.clone();
    let first = u64::from_le_bytes(data[64..72].try_into().unwrap()) as usize * 512;
    let lba = u64::from_le_bytes(data[first..first + 8].try_into().unwrap());
    data[first..first + 8].copy_from_slice(&(lba + 128).to_le_bytes());
    std::fs::write(path(dir, "lba.vmdk"), &data).unwrap();
    assert_eq!(
        qemu(dir, "lba.vmdk").code,
        0,
        "qemu-img check does not read markers"
    );
    let v = ours(dir, "lba.vmdk");
    assert_eq!(
        (v.code, v.count("corruptions"), v.count("leaks")),
        (2, 1, 1),
        "{}",
        v.json
    );
    // qemu-img writes no end-of-stream marker (the zeros padding its file read as one): a
    // stream ending right after its last grain is whole, and both tools say so.
    let mut eos = first;
    loop {
        let size = u32::from_le_bytes(clean[eos + 8..eos + 12].try_into().unwrap()) as usize;
        if size == 0 {
            break;
        }
        eos = (eos + 12 + size).div_ceil(512) * 512;
    }
    std::fs::write(path(dir, "eos.vmdk"), &clean[..eos]).unwrap();
    let (q, _) = agree(dir, "eos.vmdk");
    assert_eq!(q.code, 0, "{}", q.json);
    // Cut inside the last grain (its data is one sector): that grain runs past the end.
    std::fs::write(path(dir, "cut.vmdk"), &clean[..eos - 100]).unwrap();
    let v = ours(dir, "cut.vmdk");
    assert_eq!(v.code, 2, "{}", v.json);
    assert!(
        v.json["problems"].to_string().contains("runs past the end"),
        "{}",
        v.json
    );
}

#[test]
fn a_stream_of_incompressible_grains_agrees_clean() {
    // qemu-img's stream of random data ends on its last grain, with no padding at all; the
    // data crosses from one grain table into the next (32 MiB each), so that the last grain
    // of a table is followed by another table's grain.
    let dir = &scratch();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = vec![0u8; 30 << 20];
    bytes.extend((0..(4 << 20)).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    std::fs::write(path(dir, "r.raw"), bytes).unwrap();
    qemu_img_line(
        "convert -q -f raw -O vmdk -o subformat=streamOptimized r.raw r.vmdk",
        dir,
    );
    agree_clean(dir, "r.vmdk");
    let compare = run("qemu-img", &["compare", "-q", "r.raw", "r.vmdk"], dir);
    assert!(compare.status.success());
}

#[test]
fn a_parallels_cluster_used_twice_agrees() {
    let dir = &scratch();
    image(dir, "d.parallels", "parallels", "");
    let file = path(dir, "d.parallels");
    let mut data = std::fs::read(&file).unwrap();
    // The BAT starts at byte 64: guest cluster 1 now names cluster 0's data.
    let first = data[64..68].to_vec();
    data[68..72].copy_from_slice(&first);
    std::fs::write(&file, &data).unwrap();
    let (q, v) = agree(dir, "d.parallels");
    assert_eq!((q.code, v.count("corruptions")), (2, 1), "{}", v.json);
}

#[test]
fn parallels_leaks_in_use_flag_and_statistics_agree() {
    let dir = &scratch();
    // Written backwards, so that clusters are stored out of guest order (fragmented).
    qemu_img_line("create -q -f parallels p.hds 64M", dir);
    let mut args = vec!["-f", "parallels"];
    for c in ["write -P 1 10M 1M", "write -P 2 5M 1M", "write -P 3 0 1M"] {
        args.extend(["-c", c]);
    }
    args.push("p.hds");
    crate::common::ok("qemu-io", &args, dir);
    agree_clean(dir, "p.hds");
    let clean = std::fs::read(path(dir, "p.hds")).unwrap();
    // Three and a half clusters past the last one the BAT names: four leaked.
    let mut data = clean.clone();
    data.resize(clean.len() + 3 * (1 << 20) + 512, 0);
    std::fs::write(path(dir, "leak.hds"), &data).unwrap();
    let (q, v) = agree(dir, "leak.hds");
    assert_eq!((q.code, v.count("leaks")), (3, 4), "{}", v.json);
    // The in-use flag ("Ynot") of an image that was not closed.
    let mut data = clean.clone();
    data[44..48].copy_from_slice(b"Ynot");
    std::fs::write(path(dir, "dirty.hds"), &data).unwrap();
    let (q, v) = agree(dir, "dirty.hds");
    assert_eq!((q.code, v.count("corruptions")), (2, 1), "{}", v.json);
    // data_off inside the BAT.
    let mut data = clean;
    data[48..52].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(path(dir, "off.hds"), &data).unwrap();
    let (q, v) = agree(dir, "off.hds");
    assert_eq!((q.code, v.count("corruptions")), (2, 1), "{}", v.json);
}
