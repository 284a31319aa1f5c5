//! Hand-built fixtures qemu reads but cannot create: streams with a footer, sparse extents with
//! zeroed grains, vmfsSparse (COWD), seSparse, vmfs flat extents, mixed and special extents.

use super::*;

// ---------------------------------------------------------------------------------------------
// Hand-built fixtures (qemu reads them but cannot create them)

/// How `build_sparse` lays out an extent.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// monolithicSparse: plain grains, the grain directory named in the header.
    Hosted,
    /// streamOptimized written in one pass: compressed grains behind markers, the grain
    /// directory found through the footer.
    OnePassStream,
}

const GRAIN: u64 = 65536;

fn sector_pad(v: &mut Vec<u8>) {
    let n = v.len().div_ceil(512) * 512;
    v.resize(n, 0);
}

fn kdmv_header(
    capacity_sectors: u64,
    flags: u32,
    gd: u64,
    rgd: u64,
    desc: (u64, u64),
    compress: u16,
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    put(&mut h, 0, b"KDMV");
    put(&mut h, 4, &le32(if compress != 0 { 3 } else { 1 }));
    put(&mut h, 8, &le32(flags));
    put(&mut h, 12, &le64(capacity_sectors));
    put(&mut h, 20, &le64(GRAIN / 512));
    put(&mut h, 28, &le64(desc.0));
    put(&mut h, 36, &le64(desc.1));
    put(&mut h, 44, &le32(512));
    put(&mut h, 48, &le64(rgd));
    put(&mut h, 56, &le64(gd));
    put(&mut h, 64, &le64(128));
    put(&mut h, 73, b"\n \r\n");
    put(&mut h, 77, &compress.to_le_bytes());
    h
}

/// A hosted sparse extent of `capacity` bytes built per the spec, with `descriptor` embedded.
/// `grains`: (grain index, 64 KiB of data) with `None` data for a zeroed grain (GTE 1).
fn build_sparse(
    capacity: u64,
    grains: &[(u64, Option<Vec<u8>>)],
    layout: Layout,
    descriptor: &str,
) -> Vec<u8> {
    let stream = layout == Layout::OnePassStream;
    let cap_sectors = capacity / 512;
    let gts = capacity.div_ceil(GRAIN * 512);
    let mut flags = 1 | 4; // newline detection, zeroed grains
    if stream {
        flags |= (1 << 16) | (1 << 17);
    }
    let desc_at = (1u64, 20u64);
    let mut f = vec![0u8; 128 * 512];
    put(&mut f, 512, descriptor.as_bytes());
    let mut gt = vec![0u32; (gts * 512) as usize];
    for (idx, data) in grains {
        match data {
            None => gt[*idx as usize] = 1,
            Some(bytes) => {
                sector_pad(&mut f);
                gt[*idx as usize] = (f.len() / 512) as u32;
                if stream {
                    let z = compress(Codec::Zlib, bytes, usize::MAX).unwrap().unwrap();
                    f.extend_from_slice(&le64(idx * GRAIN / 512));
                    f.extend_from_slice(&le32(z.len() as u32));
                    f.extend_from_slice(&z);
                } else {
                    f.extend_from_slice(bytes);
                }
            }
        }
    }
    sector_pad(&mut f);
    // Grain tables (each behind a metadata marker in a stream), then the directory.
    let mut gd = vec![];
    for t in 0..gts as usize {
        if stream {
            let mut m = vec![0u8; 512];
            put(&mut m, 0, &le64(4));
            put(&mut m, 12, &le32(1));
            f.extend_from_slice(&m);
        }
        gd.push((f.len() / 512) as u32);
        for e in &gt[t * 512..(t + 1) * 512] {
            f.extend_from_slice(&le32(*e));
        }
    }
    if stream {
        let mut m = vec![0u8; 512];
        put(&mut m, 0, &le64(gd.len().div_ceil(128) as u64));
        put(&mut m, 12, &le32(2));
        f.extend_from_slice(&m);
    }
    let gd_at = (f.len() / 512) as u64;
    for e in &gd {
        f.extend_from_slice(&le32(*e));
    }
    sector_pad(&mut f);
    let compress_alg = u16::from(stream);
    if stream {
        let mut m = vec![0u8; 512];
        put(&mut m, 0, &le64(1));
        put(&mut m, 12, &le32(3));
        f.extend_from_slice(&m);
        f.extend_from_slice(&kdmv_header(
            cap_sectors,
            flags,
            gd_at,
            0,
            desc_at,
            compress_alg,
        ));
        f.extend_from_slice(&[0u8; 512]); // end-of-stream marker
        let h = kdmv_header(cap_sectors, flags, u64::MAX, 0, desc_at, compress_alg);
        f[..512].copy_from_slice(&h);
    } else {
        let h = kdmv_header(cap_sectors, flags, gd_at, 0, desc_at, compress_alg);
        f[..512].copy_from_slice(&h);
    }
    f
}

fn grain_data(seed: u64) -> Vec<u8> {
    if seed.is_multiple_of(2) {
        noise(GRAIN as usize, seed)
    } else {
        text(GRAIN as usize, seed)
    }
}

/// streamOptimized as VMware writes it in one pass: the header's GD offset is GD_AT_END and
/// the real header is in the footer; grain markers, metadata markers, zeroed grains, grains
/// out of guest order.
#[test]
fn stream_with_footer() {
    let d = &scratch();
    let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\nRW 1026 SPARSE \"s.vmdk\"\n\nddb.adapterType = \"lsilogic\"\nddb.uuid.image = \"3b1c1b8c-1111-2222-3333-444455556666\"\n";
    let grains = vec![
        (5, Some(grain_data(1))),
        (0, Some(grain_data(2))),
        (2, None),
        // The last grain is only partly inside the disk but stored whole, as VMware does.
        (8, Some(grain_data(3))),
    ];
    let img = build_sparse(8 * GRAIN + 1024, &grains, Layout::OnePassStream, desc);
    std::fs::write(path(d, "s.vmdk"), &img).unwrap();
    let info = verify(d, "s.vmdk", &["s.vmdk"], true);
    let fs = &info["format-specific"];
    assert_eq!(fs["extents"][0]["sparse"]["footer"], true, "{fs}");
    assert_eq!(fs["adapter-type"], "lsilogic");
    assert_eq!(fs["uuid"], "3b1c1b8c-1111-2222-3333-444455556666");
    assert_eq!(fs["cid"], "12345678");

    // A damaged footer fails cleanly.
    let mut bad = img.clone();
    let n = bad.len();
    bad[n - 1024] = b'X';
    std::fs::write(path(d, "bad.vmdk"), &bad).unwrap();
    info_fails_naming(d, &["bad.vmdk"], "footer");
}

/// Uncompressed hand-built sparse extent with zeroed grains (GTE 1) and an odd capacity.
#[test]
fn hand_built_sparse_with_zeroed_grains() {
    let d = &scratch();
    let grains = vec![
        (0, Some(grain_data(4))),
        (1, None),
        (3, Some(grain_data(5))),
    ];
    let desc = "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n";
    let img = build_sparse(3 * GRAIN + 4096, &grains, Layout::Hosted, desc);
    std::fs::write(path(d, "h.vmdk"), &img).unwrap();
    verify(d, "h.vmdk", &["h.vmdk"], true);
}

/// An ESX sparse (COWD) extent: 4096 entries per grain table, 32-bit fields.
fn build_cowd(capacity_sectors: u32, grain_sectors: u32, grains: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let span = 4096 * grain_sectors as u64;
    let gd_entries = (capacity_sectors as u64).div_ceil(span);
    let mut f = vec![0u8; 2048];
    put(&mut f, 0, b"COWD");
    put(&mut f, 4, &le32(1));
    put(&mut f, 8, &le32(3));
    put(&mut f, 12, &le32(capacity_sectors));
    put(&mut f, 16, &le32(grain_sectors));
    put(&mut f, 20, &le32(4));
    put(&mut f, 24, &le32(gd_entries as u32));
    let gd_at = 2048;
    let gt_at = gd_at + (gd_entries as usize * 4).div_ceil(512) * 512;
    f.resize(gt_at + gd_entries as usize * 16384, 0);
    for i in 0..gd_entries as usize {
        put(
            &mut f,
            gd_at + i * 4,
            &le32(((gt_at + i * 16384) / 512) as u32),
        );
    }
    for (idx, data) in grains {
        sector_pad(&mut f);
        let sector = (f.len() / 512) as u32;
        let (t, e) = (*idx / 4096, *idx % 4096);
        put(
            &mut f,
            gt_at + t as usize * 16384 + e as usize * 4,
            &le32(sector),
        );
        f.extend_from_slice(data);
    }
    sector_pad(&mut f);
    f
}

/// Writes `descriptor` (name, text) over a sparse extent already written: vmdisk reads `files`
/// like qemu and names the extent's sparse `kind`.
fn verify_sparse_kind(d: &Path, descriptor: (&str, &str), files: &[&str], kind: &str) {
    write(d, descriptor.0, descriptor.1.as_bytes());
    let info = verify(d, descriptor.0, files, true);
    assert_eq!(
        info["format-specific"]["extents"][0]["sparse"]["kind"],
        kind
    );
}

#[test]
fn vmfs_sparse_cowd() {
    let d = &scratch();
    let g = 8 * 512;
    let grains = vec![
        (0, noise(g, 1)),
        (4095, text(g, 2)),
        (4096, noise(g, 3)),
        (5000, text(g, 4)),
    ];
    write(d, "c-delta.vmdk", &build_cowd(40960 + 3, 8, &grains));
    let desc = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\n# Extent description\nRW 40963 VMFSSPARSE \"c-delta.vmdk\"\n";
    verify_sparse_kind(d, ("c.vmdk", desc), &["c-delta.vmdk", "c.vmdk"], "cowd");
    // The COWD file alone is an image too (qemu refuses it: it looks for a CID at sector 1).
    let alone = info_json(&["c-delta.vmdk"], d);
    assert_eq!(alone["format-specific"]["create-type"], "vmfsSparse");
    assert_eq!(alone["virtual-size"], 40963 * 512);
}

/// seSparse (qemu reads it, cannot create it): 64-bit entries, allocated / zero / unmapped
/// grain kinds.
fn build_sesparse(capacity_sectors: u64, grains: &[(u64, Option<Vec<u8>>)]) -> Vec<u8> {
    let gts = capacity_sectors.div_ceil(4096 * 8);
    let gd_sectors = (gts * 8).div_ceil(512).max(1);
    let gd_at = 2u64;
    let gt_at = gd_at + gd_sectors;
    let grains_at = gt_at + gts * 64;
    let mut h = vec![0u8; 512];
    let fields: [(usize, u64); 18] = [
        (0, 0xcafe_babe),
        (1, 0x2_0000_0001),
        (2, capacity_sectors),
        (3, 8),
        (4, 64),
        (10, 1),
        (11, 1),
        (16, gd_at),
        (17, gd_sectors),
        (18, gt_at),
        (19, gts * 64),
        (24, grains_at),
        (25, grains.len() as u64 * 8),
        (12, 0),
        (13, 0),
        (14, 0),
        (15, 0),
        (20, 0),
    ];
    for (i, v) in fields {
        put(&mut h, i * 8, &le64(v));
    }
    let mut f = h;
    let mut vol = vec![0u8; 512];
    put(&mut vol, 0, &le64(0xcafe_cafe));
    f.extend_from_slice(&vol);
    f.resize((grains_at * 512) as usize, 0);
    for t in 0..gts {
        put(
            &mut f,
            (gd_at * 512 + t * 8) as usize,
            &le64(0x1000_0000_0000_0000 | t),
        );
    }
    let mut next = 0u64;
    for (idx, data) in grains {
        let (t, e) = (idx / 4096, idx % 4096);
        let at = ((gt_at + t * 64) * 512 + e * 8) as usize;
        let entry = match data {
            None if idx % 2 == 0 => 0x2000_0000_0000_0000,
            None => 0x1000_0000_0000_0000,
            Some(bytes) => {
                let c = next;
                next += 1;
                put(&mut f, ((grains_at + c * 8) * 512) as usize, bytes);
                0x3000_0000_0000_0000 | ((c & 0xfff) << 48) | (c >> 12)
            }
        };
        put(&mut f, at, &le64(entry));
    }
    f
}

#[test]
fn sesparse_fixture() {
    let d = &scratch();
    let g = 4096;
    let grains = vec![
        (3, Some(noise(g, 1))),
        (0, Some(text(g, 2))),
        (4, None),
        (5, None),
        (4097, Some(noise(g, 3))),
        (8199, Some(text(g, 4))),
    ];
    write(d, "se-sesparse.vmdk", &build_sesparse(65536 + 64, &grains));
    let desc = "# Disk DescriptorFile\r\nversion=1\r\nCID=1\r\nparentCID=ffffffff\r\ncreateType=\"seSparse\"\r\nRW 65600 SESPARSE \"se-sesparse.vmdk\"\r\n";
    verify_sparse_kind(
        d,
        ("se.vmdk", desc),
        &["se.vmdk", "se-sesparse.vmdk"],
        "sesparse",
    );
    // A journal to replay is refused, like qemu.
    let mut dirty = build_sesparse(65536 + 64, &grains);
    put(&mut dirty, 512 + 24, &le64(1));
    std::fs::write(path(d, "se-sesparse.vmdk"), &dirty).unwrap();
    info_fails_naming(d, &["se.vmdk", "se-sesparse.vmdk"], "journal");
}

/// createType="vmfs": a descriptor with one VMFS (flat) extent.
#[test]
fn vmfs_flat() {
    let d = &scratch();
    let mut data = noise(1 << 20, 9);
    data.extend(text(4096, 3));
    std::fs::write(path(d, "v-flat.vmdk"), &data).unwrap();
    std::fs::write(
        path(d, "v.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=abcdef01\nparentCID=ffffffff\ncreateType=\"vmfs\"\n# Extent description\nRW 2056 VMFS \"v-flat.vmdk\"\n\nddb.geometry.cylinders = \"1\"\nddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n",
    )
    .unwrap();
    let info = verify(d, "v.vmdk", &["v.vmdk", "v-flat.vmdk"], false);
    assert_eq!(info["format-specific"]["geometry"]["heads"], 255);
    assert_eq!(info["format-specific"]["extents"][0]["type"], "VMFS");
}

/// One descriptor mixing FLAT (with an offset into its file), SPARSE (hosted), VMFSSPARSE
/// (COWD) and VMFS extents; written with CRLF, comments, odd spacing, lower-case keywords.
/// All extents are RW, so qemu reads it too.
#[test]
fn mixed_extents_descriptor() {
    let d = &scratch();
    let mut flat = text(4096, 1);
    flat.extend(noise(256 * 1024, 2));
    std::fs::write(path(d, "m-a.bin"), &flat).unwrap();
    let writes = ["write -P 0x66 64k 64k", "write -P 0x67 523776 512"];
    written_image(d, "vmdk", "m-b.vmdk", "512k", &writes);
    std::fs::write(
        path(d, "m-c.vmdk"),
        build_cowd(64, 1, &[(0, noise(512, 5)), (63, text(512, 6))]),
    )
    .unwrap();
    std::fs::write(path(d, "m-d.bin"), noise(8192, 7)).unwrap();
    let desc = "# Disk DescriptorFile\r\nversion=1\r\nCID=0000abcd\r\nparentCID=ffffffff\r\n# a comment\r\ncreateType=\"monolithicFlat\"\r\n# Extent description\r\nRW 512 FLAT \"m-a.bin\" 8\r\nRW  1024  SPARSE  \"m-b.vmdk\"\r\nRW 64 VMFSSPARSE \"m-c.vmdk\"\r\nRW 16 VMFS \"m-d.bin\"\r\n\r\nddb.adapterType=\"buslogic\"\r\n";
    std::fs::write(path(d, "m.vmdk"), desc).unwrap();
    let files = ["m-d.bin", "m-c.vmdk", "m.vmdk", "m-b.vmdk", "m-a.bin"];
    let info = verify(d, "m.vmdk", &files, false);
    let fs = &info["format-specific"];
    assert_eq!(fs["extent-count"], 4);
    assert_eq!(fs["extents"][0]["offset"], 8);
    assert_eq!(fs["extents"][1]["type"], "SPARSE");
    assert_eq!(fs["adapter-type"], "buslogic");
    assert_eq!(fs["cid"], "0000abcd");
    vmdisk_line(
        "convert -O raw --output m.raw m.vmdk m-a.bin m-b.vmdk m-c.vmdk m-d.bin",
        d,
    );
    let want = std::fs::read(path(d, "m.raw")).unwrap();

    // The same descriptor as other writers spell it: keywords in other cases, blank lines and
    // indented comments, quoted values with spaces around `=`, no trailing newline. qemu
    // matches keywords case-sensitively and counts an extent line after a blank line twice
    // (its line scanner skips the newline), so only vmdisk's reading is checked here.
    let loose = "# Disk DescriptorFile\n\n  version = 1\ncid = \"0000abcd\"\n\n   # a comment\ncreatetype = \"monolithicFlat\"\n\nrw 512 flat \"m-a.bin\" 8\n\nRW\t1024\tSparse\t\"m-b.vmdk\"\nRW 64 VMFSSPARSE \"m-c.vmdk\"\nRW 16 vmfs \"m-d.bin\"\nDDB.ADAPTERTYPE = \"buslogic\"";
    std::fs::write(path(d, "loose.vmdk"), loose).unwrap();
    let lfiles = ["m-a.bin", "m-b.vmdk", "loose.vmdk", "m-c.vmdk", "m-d.bin"];
    converts_to(d, &lfiles, &want);
    let info = info_json(&lfiles, d);
    assert_eq!(info["format-specific"]["create-type"], "monolithicFlat");
    assert_eq!(info["format-specific"]["cid"], "0000abcd");
    assert_eq!(info["format-specific"]["adapter-type"], "buslogic");
    assert_eq!(info["virtual-size"], want.len() as u64);
    assert_eq!(info["virtual-size"], (512 + 1024 + 64 + 16) * 512);
}

/// ZERO, RDONLY and NOACCESS extents. The spec makes every extent line part of the disk;
/// qemu skips lines that are not RW and ZERO extents, so its disk is shorter (qemu is wrong
/// here): we check the content against the expected bytes instead.
#[test]
fn zero_rdonly_noaccess_extents() {
    let d = &scratch();
    let a = noise(4096, 1);
    let b = text(8192, 2);
    std::fs::write(path(d, "z-a.bin"), &a).unwrap();
    std::fs::write(path(d, "z-b.bin"), &b).unwrap();
    std::fs::write(
        path(d, "z.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"z-a.bin\" 0\nRW 16 ZERO\nRDONLY 16 FLAT \"z-b.bin\" 0\nNOACCESS 4 FLAT \"z-a.bin\" 0\n",
    )
    .unwrap();
    let mut want = a.clone();
    want.extend(vec![0; 8192]);
    want.extend(&b);
    want.extend(vec![0; 2048]);
    converts_to(d, &["z.vmdk", "z-a.bin", "z-b.bin"], &want);
    let info = info_json(&["z.vmdk", "z-a.bin", "z-b.bin"], d);
    assert_eq!(info["virtual-size"], want.len() as u64);
    finding_message(&info, "noaccess-extent", "warning");
    let q = qemu_info("z.vmdk", d);
    assert_eq!(
        q["virtual-size"], 4096,
        "qemu counts only the RW non-ZERO extent"
    );
}
