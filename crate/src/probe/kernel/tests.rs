use super::cpio::End;
use super::pe::LINUX_PE_MAGIC;
use super::zimage::ZIMAGE_MAGIC;
use super::*;

fn newc_with(magic: &str, name: &str, data: &[u8], check: u32) -> Vec<u8> {
    let fields = [
        1,
        0o100644,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        check,
    ];
    let mut v = magic.as_bytes().to_vec();
    for f in fields {
        v.extend(format!("{f:08x}").as_bytes());
    }
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

fn newc(name: &str, data: &[u8]) -> Vec<u8> {
    newc_with("070701", name, data, 0)
}

fn early() -> Vec<u8> {
    let mut a = newc("kernel", b"");
    a.extend(newc("kernel/x86/microcode/GenuineIntel.bin", b"ucode"));
    a.extend(newc("TRAILER!!!", b""));
    a.resize(a.len().next_multiple_of(512), 0);
    a
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn lists_newc_members_and_what_follows() {
    let mut a = early();
    a.extend([0; 512]);
    a.extend([0x1f, 0x8b, 8, 0]);
    let c = cpio(&a).unwrap();
    assert_eq!(c.kind, "cpio (newc)");
    assert_eq!(c.members.len(), 2);
    assert_eq!(
        c.members[1]["name"],
        "kernel/x86/microcode/GenuineIntel.bin"
    );
    assert_eq!(c.then, Some("gzip"));
    assert_eq!(c.layout(), "early cpio + gzip");
    assert_eq!(c.parts[1].offset, 1024);
    assert_eq!(c.end, End::Next);
    assert!(c.problems.is_empty());
    assert!(cpio(b"070701zzzz").is_none());
}

#[test]
fn every_compression_after_an_early_cpio_is_named() {
    let magics: [(&[u8], &str); 8] = [
        (&[0x1f, 0x8b, 8, 0], "gzip"),
        (b"\xfd7zXZ\0\0\x01", "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x02, 0x21, 0x4c, 0x18], "lz4-legacy"),
        (&[0x5d, 0, 0, 0x80, 0], "lzma"),
        (b"BZh9", "bzip2"),
        (b"\x89LZO\0\r\n\x1a\n", "lzo"),
        (b"junk", "data"),
    ];
    for (magic, name) in magics {
        let mut a = early();
        a.extend(magic);
        let c = cpio(&a).unwrap();
        assert_eq!(c.layout(), format!("early cpio + {name}"));
        assert_eq!(c.problems.is_empty(), name != "data", "{name}");
    }
}

#[test]
fn two_archives_a_crc_archive_and_damage() {
    let mut a = early();
    a.extend(newc_with("070702", "init", b"abc", 0x61 + 0x62 + 0x63));
    a.extend(newc_with("070702", "TRAILER!!!", b"", 0));
    let c = cpio(&a).unwrap();
    assert_eq!(c.layout(), "early cpio + cpio");
    assert_eq!(c.parts[1].kind, "cpio (newc, crc)");
    assert_eq!(c.member_count, 3);
    assert!(c.problems.is_empty());
    assert_eq!(c.end, End::Padding);

    let mut bad = newc_with("070702", "init", b"abc", 7);
    bad.extend(newc("TRAILER!!!", b""));
    let c = cpio(&bad).unwrap();
    assert_eq!(c.problems.len(), 1, "{:?}", c.problems);

    let a = early();
    let c = cpio(&a[..200]).unwrap();
    assert_eq!(c.end, End::Cut);
    let mut b = a.clone();
    put(&mut b, 120, b"zzzzzz");
    let c = cpio(&b).unwrap();
    assert_eq!(c.end, End::Broken);
}

fn arm64_image() -> Vec<u8> {
    let mut k = vec![0u8; 4096];
    put(&mut k, 0, b"MZ\x40\xfa");
    put(&mut k, 8, &0u64.to_le_bytes());
    put(&mut k, 16, &0x1ab_0000u64.to_le_bytes());
    put(&mut k, 24, &0xau64.to_le_bytes());
    put(&mut k, 0x38, b"ARM\x64");
    put(&mut k, 0x3c, &0x40u32.to_le_bytes());
    put(&mut k, 0x40, b"PE\0\0\x64\xaa");
    k
}

#[test]
fn kernels_of_every_architecture() {
    let d = kernel(&arm64_image(), 4096).unwrap();
    assert_eq!(d.detail_str("arch"), Some("arm64"));
    assert_eq!(d.detail_str("image"), Some("Image"));
    assert_eq!(d.details["page-size"], 4096);
    assert_eq!(d.details["image-size"], 0x1ab_0000);
    assert_eq!(d.details["efi-stub"], true);
    assert_eq!(d.detail_str("placement"), Some("anywhere"));
    assert!(d.findings.is_empty());

    let mut z = vec![0u8; 4096];
    put(&mut z, 0, b"MZ\0\0zimg");
    put(&mut z, 8, &0x200u32.to_le_bytes());
    put(&mut z, 12, &0x100u32.to_le_bytes());
    put(&mut z, 24, b"zstd22\0");
    put(&mut z, 0x38, &LINUX_PE_MAGIC.to_le_bytes());
    put(&mut z, 0x3c, &0x40u32.to_le_bytes());
    put(&mut z, 0x40, b"PE\0\0\x64\x50");
    put(&mut z, 0x200, &[0x28, 0xb5, 0x2f, 0xfd]);
    let d = kernel(&z, 4096).unwrap();
    assert_eq!(d.detail_str("image"), Some("EFI zboot"));
    assert_eq!(d.detail_str("arch"), Some("riscv64"));
    assert_eq!(d.detail_str("compression"), Some("zstd"));
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    assert_eq!(
        kernel(&z, 0x280).unwrap().findings[0].code,
        FindingCode::Truncated
    );

    let mut a = vec![0u8; 1024];
    put(&mut a, 0x24, &ZIMAGE_MAGIC.to_be_bytes());
    put(&mut a, 0x28, &0x8000u32.to_be_bytes());
    put(&mut a, 0x2c, &0x8400u32.to_be_bytes());
    put(&mut a, 0x30, &0x0403_0201u32.to_be_bytes());
    let d = kernel(&a, 1024).unwrap();
    assert_eq!(d.detail_str("endianness"), Some("big"));
    assert_eq!(d.details["image-size"], 1024);
    assert!(d.findings.is_empty());
    put(&mut a, 0x2c, &0x7000u32.to_be_bytes());
    assert_eq!(
        kernel(&a, 1024).unwrap().findings[0].code,
        FindingCode::Corrupt
    );
}

#[test]
fn damaged_inputs_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![arm64_image(), early(), {
        let mut e = early();
        e.extend(newc_with("070702", "x", b"abc", 0));
        e
    }];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for s in &seeds {
        for _ in 0..2000 {
            let mut b = s.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % b.len();
                b[at] = (x >> 32) as u8;
            }
            let cut = (x >> 40) as usize % (b.len() + 1);
            let _ = kernel(&b[..cut], cut as u64);
            let _ = kernel(&b, u64::MAX);
            let _ = cpio(&b[..cut]);
            let _ = cpio(&b);
        }
    }
}
