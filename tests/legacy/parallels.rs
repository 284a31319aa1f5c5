//! Parallels: images qemu-img makes, the original format built by hand, dirty and extension flags,
//! damage.

use super::*;

#[test]
fn parallels_made_by_qemu_img() {
    let dir = &scratch();
    let variants: Vec<(&str, &str)> = vec![("1M", "5M"), ("64k", "3000001"), ("4k", "1M")];
    for (i, (cs, size)) in variants.into_iter().enumerate() {
        let img = format!("a{i}.hdd");
        let opt = format!("cluster_size={cs}");
        qemu_img_line(
            &format!("create -q -f parallels -o {opt} {img} {size}"),
            dir,
        );
        fill(dir, &img, &["write -P 0x11 700k 3k"]);
        let info = verify(dir, &img, &[&img], "parallels");
        assert!(
            has_finding(&info, "convert-before-upload", "warning"),
            "{info}"
        );
        let fs = &info["format-specific"];
        assert_eq!(fs["magic"], "WithouFreSpacExt", "{info}");
        assert_eq!(fs["dirty"], false, "{info}");
    }
    // qemu-img convert to Parallels.
    raw_file(dir, "src.raw", 3 << 20, 5);
    qemu_img_line(
        "convert -q -f raw -O parallels -o cluster_size=256k src.raw c.hdd",
        dir,
    );
    verify(dir, "c.hdd", &["c.hdd"], "parallels");
    assert_same("src.raw", "c.hdd", dir);
}

/// A "WithoutFreeSpace" image (BAT in sectors, 32-bit sector count) built by hand: 8-sector
/// clusters, 5 guest clusters, clusters 0, 2 and 4 stored out of order at sector offsets.
fn old_parallels(sectors_high: u32) -> Vec<u8> {
    let tracks = 8u32;
    let entries = 5u32;
    let mut b = vec![0u8; 512];
    put(&mut b, 0, b"WithoutFreeSpace");
    put(&mut b, 16, &2u32.to_le_bytes());
    put(&mut b, 20, &16u32.to_le_bytes());
    put(&mut b, 24, &1u32.to_le_bytes());
    put(&mut b, 28, &tracks.to_le_bytes());
    put(&mut b, 32, &entries.to_le_bytes());
    // 38 sectors (the last cluster is partial), garbage in the high half qemu ignores.
    put(&mut b, 36, &38u32.to_le_bytes());
    put(&mut b, 40, &sectors_high.to_le_bytes());
    // Data at sectors 1, 9 and 17 (not cluster aligned: entries count sectors).
    put(&mut b, 64, &17u32.to_le_bytes());
    put(&mut b, 72, &1u32.to_le_bytes());
    put(&mut b, 80, &9u32.to_le_bytes());
    b.resize(512 * 25, 0);
    b[512..512 * 9].copy_from_slice(&noise(4096, 1));
    b[512 * 9..512 * 17].copy_from_slice(&text(4096, 2));
    b[512 * 17..512 * 25].copy_from_slice(&noise(4096, 3));
    b
}

#[test]
fn parallels_original_format_by_hand() {
    let dir = &scratch();
    write(dir, "old.hdd", &old_parallels(0xdead));
    let info = verify(dir, "old.hdd", &["old.hdd"], "parallels");
    assert_eq!(info["virtual-size"], 38 * 512);
    let fs = &info["format-specific"];
    assert_eq!(fs["magic"], "WithoutFreeSpace", "{info}");
    assert_eq!(fs["bat-unit"], "sector", "{info}");
    // The expected guest content, independently of qemu.
    vmdisk_line("convert -O raw --output o.raw old.hdd", dir);
    let out = read(dir, "o.raw");
    assert_eq!(&out[..4096], &noise(4096, 3)[..]);
    assert!(out[4096..8192].iter().all(|&x| x == 0));
    assert_eq!(&out[8192..12288], &noise(4096, 1)[..]);
    assert_eq!(&out[16384..], &text(4096, 2)[..38 * 512 - 16384]);
}

#[test]
fn parallels_dirty_and_format_extension() {
    let dir = &scratch();
    qemu_img_line("create -q -f parallels -o cluster_size=64k a.hdd 2M", dir);
    qemu_io("a.hdd", &["write -P 0x42 0 64k"], dir);
    let mut b = read(dir, "a.hdd");
    put(&mut b, 44, &0x746f_6e59u32.to_le_bytes());
    // A format extension cluster appended at the end, with one dirty bitmap feature.
    let at = b.len();
    b.resize(at + 65536, 0);
    put(&mut b, at, &0xab23_4cef_23dc_ea87u64.to_le_bytes());
    put(&mut b, at + 24, &0x2038_5fae_252c_b34au64.to_le_bytes());
    put(&mut b, at + 40, &40u32.to_le_bytes());
    put(&mut b, 56, &((at / 512) as u64).to_le_bytes());
    write(dir, "a.hdd", &b);
    let info = info_json(&["a.hdd"], dir);
    assert!(has_finding(&info, "dirty", "warning"), "{info}");
    assert!(has_finding(&info, "dirty-bitmap", "info"), "{info}");
    let fs = &info["format-specific"];
    assert_eq!(fs["dirty"], true);
    assert_eq!(fs["format-extension"]["dirty-bitmaps"], 1, "{info}");
    vmdisk(&["convert", "-O", "raw", "--output", "o.raw", "a.hdd"], dir);
    let out = read(dir, "o.raw");
    assert_eq!(out.len(), 2 << 20);
    assert!(out[..65536].iter().all(|&x| x == 0x42));
    assert!(out[65536..].iter().all(|&x| x == 0));
}

#[test]
fn parallels_damaged() {
    let dir = &scratch();
    let good = victim(
        dir,
        &["-f", "parallels", "-o", "cluster_size=64k"],
        "ok.hdd",
        "2M",
    );
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", Box::new(|b| b.truncate(b.len() - 70000))),
        ("header-cut", Box::new(|b| b.truncate(50))),
        ("tracks-zero", Box::new(|b| put(b, 28, &0u32.to_le_bytes()))),
        (
            "tracks-huge",
            Box::new(|b| put(b, 28, &u32::MAX.to_le_bytes())),
        ),
        ("version", Box::new(|b| put(b, 16, &3u32.to_le_bytes()))),
        (
            "bat-huge",
            Box::new(|b| put(b, 32, &u32::MAX.to_le_bytes())),
        ),
        (
            "size-huge",
            Box::new(|b| put(b, 36, &u64::MAX.to_le_bytes())),
        ),
        (
            "entry-past",
            Box::new(|b| put(b, 64, &0x00ff_ffffu32.to_le_bytes())),
        ),
    ];
    each_damage_fails_cleanly(dir, &good, "hdd", cases);
    // A BAT entry pointing into the header and allocation table (original format: sectors).
    let mut b = old_parallels(0);
    put(&mut b, 32, &300u32.to_le_bytes()); // BAT of 300 entries ends at byte 1264
    put(&mut b, 64, &1u32.to_le_bytes()); // sector 1 = byte 512: inside the BAT
    b.resize(b.len().max(64 + 300 * 4), 0);
    write(dir, "into-bat.hdd", &b);
    fails_cleanly(dir, "into-bat.hdd");
}
