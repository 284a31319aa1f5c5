//! QED: images qemu-img makes, one-cluster tables qemu cannot open, zero clusters over a backing
//! file, need-check, damage.

use super::*;

#[test]
fn qed_made_by_qemu_img() {
    let dir = &scratch();
    let variants: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "5M"),
        (vec!["-o", "cluster_size=4096,table_size=2"], "3000001"),
        (vec!["-o", "cluster_size=65536,table_size=16"], "7M"),
        (vec!["-o", "cluster_size=1M"], "2500k"),
    ];
    for (i, (opts, size)) in variants.into_iter().enumerate() {
        let img = format!("a{i}.qed");
        let mut args = vec!["create", "-q", "-f", "qed"];
        args.extend(opts);
        args.extend([img.as_str(), size]);
        qemu_img(&args, dir);
        fill(dir, &img, &["write -z 1M 1M", "write -P 0x11 1M 3k"]);
        let info = verify(dir, &img, &[&img], "qed");
        assert!(
            has_finding(&info, "convert-before-upload", "warning"),
            "{info}"
        );
        assert_eq!(info["safety"]["safe"], true, "{info}");
        let fs = &info["format-specific"];
        assert!(fs["table-size"].as_u64().unwrap() >= 1, "{info}");
        assert_eq!(fs["dirty"], false, "{info}");
    }
}

/// qemu cannot open the QED images with one-cluster tables that it creates (its table offset
/// check wants a table to end after it starts: "QED table offset is invalid"); the spec allows
/// table_size 1, and vmdisk reads them.
#[test]
fn qed_one_cluster_tables_qemu_cannot_open() {
    let dir = &scratch();
    qemu_img_line(
        "create -q -f qed -o cluster_size=4096,table_size=1 t1.qed 1M",
        dir,
    );
    assert!(!run("qemu-img", &["info", "t1.qed"], dir).status.success());
    let info = info_json(&["t1.qed"], dir);
    assert_eq!(info["virtual-size"], 1 << 20);
    assert_eq!(info["format-specific"]["table-size"], 1);
    assert_eq!(info["format-specific"]["table-entries"], 512);
    // Hand-allocate guest cluster 5: L2 table in cluster 2, data in cluster 3.
    let mut b = read(dir, "t1.qed");
    assert_eq!(b.len(), 8192);
    b.resize(16384, 0);
    put(&mut b, 4096, &8192u64.to_le_bytes());
    put(&mut b, 8192 + 5 * 8, &12288u64.to_le_bytes());
    put(&mut b, 8192 + 6 * 8, &1u64.to_le_bytes());
    b[12288..].copy_from_slice(&noise(4096, 4));
    write(dir, "t1.qed", &b);
    vmdisk_line("convert -O raw --output o.raw t1.qed", dir);
    let out = read(dir, "o.raw");
    assert_eq!(out.len(), 1 << 20);
    assert_eq!(&out[5 * 4096..6 * 4096], &noise(4096, 4)[..]);
    assert!(
        out[..5 * 4096]
            .iter()
            .chain(&out[6 * 4096..])
            .all(|&x| x == 0)
    );
    let map = json(&vmdisk(&["map", "--json", "t1.qed"], dir));
    let rows: Vec<(u64, u64, bool, bool)> = each(&map, |r| {
        (
            r["start"].as_u64().unwrap(),
            r["length"].as_u64().unwrap(),
            r["present"].as_bool().unwrap(),
            r["data"].as_bool().unwrap(),
        )
    });
    assert_eq!(
        rows,
        [
            (0, 20480, false, false),
            (20480, 4096, true, true),
            (24576, 4096, true, false),
            (28672, (1 << 20) - 28672, false, false)
        ]
    );
}

#[test]
fn qed_zero_clusters_hide_the_backing_file() {
    let dir = &scratch();
    raw_file(dir, "base.raw", 4 << 20, 11);
    // -F raw sets the no-probe feature: the backing file is read as raw.
    qemu_img_line("create -q -f qed -b base.raw -F raw top.qed 4M", dir);
    qemu_io("top.qed", &["write -z 0 1M", "write -P 0x5a 2M 64k"], dir);
    let info = verify(dir, "top.qed", &["top.qed", "base.raw"], "qed");
    assert!(has_finding(&info, "backing-file", "critical"), "{info}");
    assert_eq!(info["format-specific"]["backing-file"], "base.raw");
    assert_eq!(info["format-specific"]["backing-file-format"], "raw");

    // A qcow2 backing file, probed.
    written_image(dir, "qcow2", "base.qcow2", "3M", &["write -P 0x31 0 3M"]);
    qemu_img_line("create -q -f qed -b base.qcow2 -F qcow2 t2.qed 3M", dir);
    qemu_io("t2.qed", &["write -P 0x32 1M 4k"], dir);
    verify(dir, "t2.qed", &["base.qcow2", "t2.qed"], "qed");

    // Missing backing file.
    let (sub, info) = alone(dir, "t2.qed");
    assert_eq!(info["convertible"], false);
    convert_fails_naming(&sub, "t2.qed", "base.qcow2");
}

#[test]
fn qed_need_check_is_reported() {
    let dir = &scratch();
    written_image(dir, "qed", "a.qed", "1M", &["write -P 0x12 0 64k"]);
    let mut b = read(dir, "a.qed");
    b[16] |= 2;
    write(dir, "a.qed", &b);
    let info = info_json(&["a.qed"], dir);
    assert!(has_finding(&info, "dirty", "warning"), "{info}");
    assert_eq!(info["format-specific"]["dirty"], true);
    vmdisk(&["convert", "-O", "raw", "--output", "o.raw", "a.qed"], dir);
    // qemu-img would repair the image on open; compare with a clean copy instead.
    b[16] &= !2;
    write(dir, "clean.qed", &b);
    assert_same("clean.qed", "o.raw", dir);
}

#[test]
fn qed_damaged() {
    let dir = &scratch();
    let opts = ["-f", "qed", "-o", "cluster_size=4096,table_size=2"];
    let good = victim(dir, &opts, "ok.qed", "4M");
    let l1 = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    let l2 = u64::from_le_bytes(good[l1..l1 + 8].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", Box::new(|b| b.truncate(b.len() - 6000))),
        ("header-cut", Box::new(|b| b.truncate(40))),
        ("cluster", Box::new(|b| put(b, 4, &3000u32.to_le_bytes()))),
        (
            "cluster-huge",
            Box::new(|b| put(b, 4, &(1u32 << 31).to_le_bytes())),
        ),
        ("table", Box::new(|b| put(b, 8, &3u32.to_le_bytes()))),
        ("header-size", Box::new(|b| put(b, 12, &0u32.to_le_bytes()))),
        ("feature", Box::new(|b| b[17] = 0x80)),
        (
            "size-huge",
            Box::new(|b| put(b, 48, &(1u64 << 60).to_le_bytes())),
        ),
        (
            "size-odd",
            Box::new(|b| put(b, 48, &4000001u64.to_le_bytes())),
        ),
        (
            "l1-past-eof",
            Box::new(|b| put(b, 40, &(1u64 << 40).to_le_bytes())),
        ),
        ("l1-header", Box::new(|b| put(b, 40, &0u64.to_le_bytes()))),
        (
            "l2-over-l1",
            Box::new(move |b| put(b, l1, &(l1 as u64).to_le_bytes())),
        ),
        (
            "l1-entry-past",
            Box::new(move |b| put(b, l1, &(1u64 << 40).to_le_bytes())),
        ),
        (
            "l2-unaligned",
            Box::new(move |b| put(b, l2, &(l2 as u64 + 7).to_le_bytes())),
        ),
        (
            "l2-past",
            Box::new(move |b| put(b, l2, &(1u64 << 40).to_le_bytes())),
        ),
        (
            "backing-outside",
            Box::new(|b| {
                b[16] |= 1;
                put(b, 56, &4090u32.to_le_bytes());
                put(b, 60, &100u32.to_le_bytes());
            }),
        ),
    ];
    each_damage_fails_cleanly(dir, &good, "qed", cases);
}
