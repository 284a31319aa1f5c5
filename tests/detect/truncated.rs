//! Truncated headers still name their format; garbage never panics.

use super::*;

#[test]
fn truncated_headers_still_name_the_format() {
    let dir = &scratch();
    for (fmt, file, format) in QEMU_MADE {
        qemu_create(dir, fmt, "", file, "4M");
        let full = read(dir, file);
        // Cut inside the first header: the magic is there, the rest is not.
        let first_cut = match format {
            Format::Vdi => 0x50,     // magic at 0x40
            Format::Parallels => 20, // 16-byte magic
            _ => 8,
        };
        for cut in [first_cut, 24, 40] {
            let cut = cut.max(first_cut);
            let p = probed(full[..cut].to_vec());
            assert_eq!(p.primary().format, format, "{file} cut at {cut}");
            assert!(
                probe_codes(&p).contains(&"truncated"),
                "{file} cut at {cut}: {:?}",
                probe_codes(&p)
            );
        }
        // Any other cut: never a panic.
        for cut in [
            1, 3, 5, 100, 300, 511, 513, 1000, 4096, 65536, 70000, 200000, 300000,
        ] {
            if cut < full.len() {
                let _ = probe_bytes(full[..cut].to_vec());
            }
        }
    }
}

#[test]
fn garbage_never_panics() {
    for seed in 0..64 {
        let mut b = noise(4096 + seed as usize * 997, seed);
        // Plant magics on random data: the detectors must cope with the nonsense around them.
        let magics: [(&[u8], usize); 12] = [
            (b"QFI\xfb", 0),
            (b"KDMV", 0),
            (b"COWD\x01\0\0\0", 0),
            (b"vhdxfile", 0),
            (b"conectix", 0),
            (b"WithoutFreeSpace", 0),
            (b"LUKS\xba\xbe\0\x02", 0),
            (b"QED\0", 0),
            (b"\x1f\x8b\x08\0", 0),
            (b"070701", 0),
            (b"\xfd7zXZ\0", 0),
            (b"\x28\xb5\x2f\xfd", 0),
        ];
        let (m, at) = magics[seed as usize % magics.len()];
        put(&mut b, at, m);
        if seed % 3 == 0 {
            put(&mut b, 510, &[0x55, 0xaa]);
            put(&mut b, 512, b"EFI PART");
        }
        let _ = probe_bytes(b);
    }
}
