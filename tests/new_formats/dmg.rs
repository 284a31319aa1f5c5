//! Apple disk images (UDIF): a data fork of chunks, an XML property list whose base64 `<data>`
//! elements are `mish` block tables, and the 512-byte `koly` trailer (the layout qemu
//! `block/dmg.c` reads). qemu names DMG by the `.dmg` file name, so the images are so named.

use super::*;

const ZERO: u32 = 0;
const RAW: u32 = 1;
const IGNORE: u32 = 2;
const ZLIB: u32 = 0x8000_0005;
const BZIP2: u32 = 0x8000_0006;
const LZFSE: u32 = 0x8000_0007;
const LZMA: u32 = 0x8000_0008;
const COMMENT: u32 = 0x7fff_fffe;
const LAST: u32 = 0xffff_ffff;

/// One chunk as the test lays it out: its type, sectors, the bytes it stores and the guest
/// bytes it reads as.
struct Chunk {
    kind: u32,
    sectors: u64,
    stored: Vec<u8>,
    plain: Vec<u8>,
}

fn chunk(kind: u32, sectors: u64, seed: u64) -> Chunk {
    let plain = content(sectors as usize * 512, seed);
    let (stored, plain) = match kind {
        ZLIB => (zlib(&plain), plain),
        BZIP2 => (bzip2(&plain), plain),
        RAW => (plain.clone(), plain),
        ZERO | IGNORE | COMMENT => (vec![], vec![0; plain.len()]),
        // Not real LZFSE/LZMA data: vmdisk must refuse these chunks by their type.
        _ => (noise(300, seed), plain),
    };
    Chunk {
        kind,
        sectors,
        stored,
        plain,
    }
}

/// A `mish` table for `chunks` placed from guest sector `first`, their data at `data_offset` of
/// the data fork (chunk offsets are relative to it).
fn mish(first: u64, data_offset: u64, chunks: &[Chunk]) -> Vec<u8> {
    let total: u64 = chunks.iter().map(|c| c.sectors).sum();
    let mut m = vec![0u8; 204];
    put(&mut m, 0, b"mish");
    put(&mut m, 4, &be32(1));
    put(&mut m, 8, &be64(first));
    put(&mut m, 16, &be64(total));
    put(&mut m, 24, &be64(data_offset));
    put(&mut m, 200, &be32(chunks.len() as u32 + 1));
    let (mut sector, mut offset) = (0u64, 0u64);
    let mut entry = |m: &mut Vec<u8>, kind: u32, sectors: u64, len: u64| {
        m.extend(be32(kind));
        m.extend(be32(0));
        m.extend(be64(sector));
        m.extend(be64(sectors));
        m.extend(be64(offset));
        m.extend(be64(len));
        sector += sectors;
        offset += len;
    };
    for c in chunks {
        entry(&mut m, c.kind, c.sectors, c.stored.len() as u64);
    }
    entry(&mut m, LAST, 0, 0);
    m
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
        for k in 0..4 {
            s.push(if k <= c.len() {
                A[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
        if i % 12 == 11 {
            s.push_str("\n\t\t\t");
        }
    }
    s
}

/// A whole DMG: each block's chunks stored one after the other in the data fork, the property
/// list, the trailer.
fn dmg_image(blocks: &[Vec<Chunk>]) -> Vec<u8> {
    let mut fork = vec![];
    let mut tables = vec![];
    let mut first = 0;
    for chunks in blocks {
        tables.push(mish(first, fork.len() as u64, chunks));
        first += chunks.iter().map(|c| c.sectors).sum::<u64>();
        for c in chunks {
            fork.extend(&c.stored);
        }
    }
    let entry = |data: &[u8], id: usize| {
        format!(
            "\t\t\t<dict>\n\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n\t\t\t{}\n\t\t\t\t</data>\n\t\t\t\t<key>ID</key>\n\t\t\t\t<string>{id}</string>\n\t\t\t</dict>\n",
            base64(data)
        )
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n",
    );
    for (i, t) in tables.iter().enumerate() {
        xml += &entry(t, i);
    }
    xml += "\t\t</array>\n\t\t<key>plst</key>\n\t\t<array>\n";
    xml += &entry(&[0u8; 40], 0);
    xml += "\t\t</array>\n\t</dict>\n</dict>\n</plist>\n";
    let mut koly = vec![0u8; 512];
    put(&mut koly, 0, b"koly");
    put(&mut koly, 4, &be32(4));
    put(&mut koly, 8, &be32(512));
    put(&mut koly, 12, &be32(1));
    put(&mut koly, 0x20, &be64(fork.len() as u64));
    put(&mut koly, 0xd8, &be64(fork.len() as u64));
    put(&mut koly, 0xe0, &be64(xml.len() as u64));
    put(&mut koly, 0x1e8, &be32(1));
    put(&mut koly, 0x1ec, &be64(first));
    let mut out = fork;
    out.extend(xml.as_bytes());
    out.extend(koly);
    out
}

/// `img` (from [`dmg_image`]) with its block tables moved to an old-style resource fork (a
/// 16-byte header: data offset, map offset, data length, map length; then each resource as
/// its length and bytes) in place of the property list.
fn with_resource_fork(img: &[u8], blocks: &[Vec<Chunk>]) -> Vec<u8> {
    let koly_at = img.len() - 512;
    let mut koly = img[koly_at..].to_vec();
    let fork_len = u64::from_be_bytes(koly[0x20..0x28].try_into().unwrap()) as usize;
    let mut out = img[..fork_len].to_vec();
    let (mut data, mut first, mut at) = (vec![], 0, 0);
    for chunks in blocks {
        let t = mish(first, at, chunks);
        first += chunks.iter().map(|c| c.sectors).sum::<u64>();
        at += chunks.iter().map(|c| c.stored.len() as u64).sum::<u64>();
        data.extend(be32(t.len() as u32));
        data.extend(t);
    }
    let mut rsrc = vec![0u8; 256];
    put(&mut rsrc, 0, &be32(256));
    put(&mut rsrc, 4, &be32(256 + data.len() as u32));
    put(&mut rsrc, 8, &be32(data.len() as u32));
    rsrc.extend(data);
    rsrc.extend([0u8; 32]); // an (empty) resource map
    put(&mut koly, 0x28, &be64(out.len() as u64));
    put(&mut koly, 0x30, &be64(rsrc.len() as u64));
    put(&mut koly, 0xd8, &be64(0));
    put(&mut koly, 0xe0, &be64(0));
    out.extend(rsrc);
    out.extend(koly);
    out
}

/// Zlib, raw, zero, ignore and comment chunks over two block tables.
fn mixed() -> Vec<Vec<Chunk>> {
    vec![
        vec![
            chunk(ZLIB, 64, 1),
            chunk(RAW, 16, 2),
            chunk(ZERO, 32, 0),
            chunk(COMMENT, 0, 0),
            chunk(ZLIB, 40, 3),
        ],
        vec![chunk(IGNORE, 8, 0), chunk(ZLIB, 2048, 4), chunk(RAW, 3, 5)],
    ]
}

#[test]
fn dmg_images_read_as_qemu_reads_them() {
    let dir = &scratch();
    let img = dmg_image(&mixed());
    assert_ne!(img.len() % 512, 0, "the test wants an odd-sized image");
    write(dir, "disk.dmg", &img);
    let info = like_qemu(dir, "disk.dmg", "dmg");
    // The comment chunk is no chunk of the disk.
    assert_eq!(info["format-specific"]["chunks"], 7, "{info}");
    write(dir, "rsrc.dmg", &with_resource_fork(&img, &mixed()));
    let info = like_qemu(dir, "rsrc.dmg", "dmg");
    assert_eq!(
        info["format-specific"]["block-table"], "resource fork",
        "{info}"
    );
    // Named from its content: the file name plays no part.
    std::fs::rename(path(dir, "disk.dmg"), path(dir, "disk.img")).unwrap();
    assert_eq!(info_json(&["disk.img"], dir)["format"], "dmg");
}

/// bzip2 (UDBZ) chunks, made by the `bzip2` tool, among zlib, raw and zero ones, read as the
/// guest bytes they were made from (the large chunk is 1 MiB, over the pool's inline batch).
/// qemu decodes UDBZ only with its `dmg-bz2` module (Debian's qemu-block-extra): where that is
/// installed, `qemu-img convert` must give the same bytes.
#[test]
fn dmg_bzip2_chunks_read_as_made() {
    let dir = &scratch();
    let blocks = [vec![
        chunk(BZIP2, 2048, 11),
        chunk(ZLIB, 64, 12),
        chunk(BZIP2, 7, 13),
        chunk(ZERO, 16, 0),
        chunk(RAW, 5, 14),
        chunk(BZIP2, 1, 15),
    ]];
    let plain: Vec<u8> = blocks[0].iter().flat_map(|c| c.plain.clone()).collect();
    write(dir, "bz2.dmg", &dmg_image(&blocks));
    let q = qemu_info("bz2.dmg", dir);
    assert_eq!(
        (&q["format"], &q["virtual-size"]),
        (&"dmg".into(), &plain.len().into())
    );
    let info = info_checked(dir, &["bz2.dmg"], "dmg", plain.len() as u64);
    let kinds = &info["format-specific"]["chunk-types"];
    assert_eq!(kinds["bzip2 (UDBZ)"], 3, "{info}");
    assert!(
        vmdisk_raw(dir, &["bz2.dmg"]) == plain,
        "bzip2 chunks misread"
    );
    let qemu = run(
        "qemu-img",
        &["convert", "-O", "raw", "bz2.dmg", "q.raw"],
        dir,
    );
    if qemu.status.success() {
        assert!(read(dir, "q.raw") == plain, "qemu-img reads other bytes");
        std::fs::remove_file(path(dir, "q.raw")).unwrap();
    }
    // A damaged bzip2 chunk fails the conversion, with nothing written.
    let mut bad = read(dir, "bz2.dmg");
    put(&mut bad, 100, &[0x55; 16]);
    write(dir, "bad-bz2.dmg", &bad);
    let err = convert_fails(dir, &["bad-bz2.dmg"]);
    assert!(err.contains("bzip2"), "{err}");
}

#[test]
fn dmg_chunks_vmdisk_cannot_decode_are_named_and_refused() {
    let dir = &scratch();
    for (kind, name) in [(LZMA, "LZMA"), (LZFSE, "LZFSE")] {
        let file = format!("{name}.dmg");
        write(
            dir,
            &file,
            &dmg_image(&[vec![chunk(ZLIB, 8, 1), chunk(kind, 8, 2)]]),
        );
        let info = info_json(&[&file], dir);
        assert_eq!(info["format"], "dmg", "{info}");
        assert!(
            has_finding(&info, "unsupported-chunk", "critical"),
            "{info}"
        );
        let err = refused(dir, &file, "dmg");
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn damaged_dmg_images_are_refused_not_raw() {
    let dir = &scratch();
    let good = dmg_image(&mixed());
    // Cut inside the trailer (past qemu's window for it), just before it, before it, in the
    // middle of the property list.
    let xml_len = u64::from_be_bytes(good[good.len() - 512 + 0xe0..][..8].try_into().unwrap());
    let n = good.len();
    refused_when_cut(
        dir,
        "dmg",
        &good,
        &[n - 100, n - 505, n - 600, n - 512 - xml_len as usize / 2],
    );
    // A disk longer than its chunks: sectors no chunk covers (qemu fails to read them).
    let mut gap = good.clone();
    let koly = gap.len() - 512;
    let sectors = u64::from_be_bytes(gap[koly + 0x1ec..][..8].try_into().unwrap());
    put(&mut gap, koly + 0x1ec, &be64(sectors + 8));
    write(dir, "gap.dmg", &gap);
    let err = refused(dir, "gap.dmg", "dmg");
    assert!(err.contains("covers"), "{err}");
    // A chunk stored past the trailer.
    let mut bad = good.clone();
    let xml_at = u64::from_be_bytes(bad[bad.len() - 512 + 0xd8..][..8].try_into().unwrap());
    let text = String::from_utf8_lossy(&bad[xml_at as usize..]).into_owned();
    assert!(text.contains("<data>"));
    put(&mut bad, koly + 0x18, &be64(koly as u64 + 1)); // data fork after the trailer
    write(dir, "bad-fork.dmg", &bad);
    refused(dir, "bad-fork.dmg", "dmg");
    let mut bad = good;
    put(&mut bad, koly + 0xe0, &be64(1 << 40)); // property list past the trailer
    write(dir, "bad-xml.dmg", &bad);
    refused(dir, "bad-xml.dmg", "dmg");
}

/// A DMG inside gzip, xz or zstd: its decoded head names nothing (zlib chunks), so the stream
/// is decoded to its end and the koly trailer there names it; the conversion reads what
/// qemu-img reads from the DMG itself. A raw disk so packed stays raw, without a finding.
#[test]
fn compressed_dmg_is_named_by_its_trailer() {
    let dir = &scratch();
    let img = dmg_image(&mixed());
    assert!(img.len() > 256 << 10, "the trailer must lie past the head");
    write(dir, "disk.dmg", &img);
    write(dir, "blank.raw", &vec![0; 1 << 20]);
    sh(
        dir,
        "gzip -k disk.dmg && xz -T1 -k disk.dmg && zstd -q -k disk.dmg && gzip -k blank.raw",
    );
    let size = qemu_info("disk.dmg", dir)["virtual-size"].as_u64().unwrap();
    for packed in ["disk.dmg.gz", "disk.dmg.xz", "disk.dmg.zst"] {
        let info = info_json(&[packed], dir);
        assert_eq!(info["disks"][0]["format"], "dmg", "{packed}: {info}");
        assert_eq!(info["virtual-size"], size, "{packed}: {info}");
        assert_raw_like_qemu(dir, "disk.dmg", &[packed], size, None);
    }
    let info = info_json(&["blank.raw.gz"], dir);
    assert_eq!(info["disks"][0]["format"], "raw", "{info}");
    assert!(!codes(&info).contains(&"unidentified".into()), "{info}");
    // An xz stream that stops decoding before its end: its trailer cannot be read, so raw is
    // not confirmed (a Warning), and verification names the damage.
    write(dir, "noise.raw", &noise(2 << 20, 9));
    sh(dir, "xz -T1 -k noise.raw");
    let mut bad = read(dir, "noise.raw.xz");
    let at = bad.len() * 3 / 4;
    bad[at] ^= 0xff;
    write(dir, "bad.raw.xz", &bad);
    let info = info_json(&["bad.raw.xz"], dir);
    assert_eq!(info["disks"][0]["format"], "raw", "{info}");
    assert!(has_finding(&info, "unidentified", "warning"), "{info}");
    assert!(has_finding(&info, "corrupt", "critical"), "{info}");
}
