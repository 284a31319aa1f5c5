//! Polyglots: an ISO with a qcow2 header, a VHD footer after a qcow2, hybrid ISOs, UDF and ISO
//! inside a fixed VHD.

use super::*;

#[test]
fn iso_with_a_qcow2_header_is_a_polyglot() {
    let dir = &scratch();
    qemu_create(dir, "qcow2", "", "poly.qcow2", "16M");
    // The qcow2 header cluster (64 KiB) is empty past the header: plant an ISO 9660 PVD there.
    let iso = iso(64);
    write_at(&path(dir, "poly.qcow2"), 0x8000, &iso[0x8000..0x9000]);
    assert_eq!(qemu_info("poly.qcow2", dir)["format"], "qcow2");
    let info = info_json(&["poly.qcow2"], dir);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(detected(&info), vec!["qcow2", "iso"]);
    assert!(codes(&info).contains(&"format-mismatch".into()), "{info}");
    assert_eq!(info["safety"]["safe"], false);
}

#[test]
fn vhd_footer_after_a_qcow2_is_a_polyglot() {
    let dir = &scratch();
    qemu_create(dir, "qcow2", "", "a.qcow2", "16M");
    let mut b = read(dir, "a.qcow2");
    let len = b.len() as u64;
    b.extend_from_slice(&vhd_footer(len, 2, u64::MAX));
    let p = probed(b);
    let formats: Vec<Format> = p.matches.iter().map(|m| m.format).collect();
    assert_eq!(formats, vec![Format::Qcow2, Format::Vhd]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.code.code() == "format-mismatch")
    );
    assert!(p.findings[0].message.contains("qcow2") && p.findings[0].message.contains("vhd"));
}

#[test]
fn hybrid_iso_is_one_iso() {
    let dir = &scratch();
    let mut v = iso(2048);
    // An isohybrid-style MBR: one bootable partition covering the image.
    put(&mut v, 446, &[0x80, 0, 1, 0, 0x17, 0xfe, 0xff, 0xff]);
    put(&mut v, 454, &0u32.to_le_bytes());
    put(&mut v, 458, &(2048u32 * 4).to_le_bytes());
    put(&mut v, 510, &[0x55, 0xaa]);
    write(dir, "hybrid.iso", &v);
    let info = info_json(&["hybrid.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert_eq!(detected(&info), vec!["iso"]);
    assert_eq!(info["virtual-size"], v.len());
    assert!(info["safety"]["safe"].as_bool().unwrap(), "{info}");
    assert!(!codes(&info).contains(&"format-mismatch".into()));
    let fs = &info["format-specific"];
    assert_eq!(fs["volume-id"], "TEST_VOLUME");
    assert_eq!(fs["hybrid"]["partition-table"], "mbr");
    assert_eq!(fs["hybrid"]["partitions"][0]["type"], "0x17");

    // A plain ISO, and one cut short of its volume size.
    write(dir, "plain.iso", &iso(64));
    let info = info_json(&["plain.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert_eq!(info["format-specific"]["filesystem"], "iso9660");
    let p = probed(iso(64)[..0x8010].to_vec());
    assert_eq!(p.primary().format, Format::Iso);
    assert!(probe_codes(&p).contains(&"truncated"));
    write(dir, "short.iso", &iso(64)[..40 * 2048]);
    let info = info_json(&["short.iso"], dir);
    assert_eq!(info["format"], "iso");
    assert!(codes(&info).contains(&"truncated".into()));
}

#[test]
fn udf_and_iso_inside_a_fixed_vhd() {
    // UDF only: the volume recognition sequence BEA01, NSR03, TEA01.
    let mut u = vec![0u8; 128 << 10];
    for (i, id) in [b"BEA01", b"NSR03", b"TEA01"].iter().enumerate() {
        put(&mut u, 0x8000 + i * 2048, &[0]);
        put(&mut u, 0x8001 + i * 2048, *id);
        put(&mut u, 0x8006 + i * 2048, &[1]);
    }
    let p = probed(u);
    assert_eq!(p.primary().format, Format::Iso);
    assert_eq!(p.primary().details["filesystem"], "udf");

    // An ISO stored in a fixed VHD is the disk's content, not a second container.
    let mut v = iso(64);
    let n = v.len() as u64;
    v.extend_from_slice(&vhd_footer(n, 2, u64::MAX));
    let p = probed(v);
    assert_eq!(p.primary().format, Format::Vhd);
    assert_eq!(p.primary().virtual_size, Some(n));
    assert!(p.findings.is_empty(), "{:?}", p.findings);
    assert_eq!(p.matches[1].format, Format::Iso);
}
