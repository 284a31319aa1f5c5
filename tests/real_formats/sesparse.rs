//! A bare seSparse extent (ESXi 6.5+ snapshots), hand-built. Layout: qemu `block/vmdk.c`
//! (`VMDKSESparseConstHeader`, `VMDKSESparseVolatileHeader`, `vmdk_open_se_sparse`); VMware
//! publishes no seSparse specification, qemu's is the public description (cross-checked against
//! the real ESXi extent in dissect.hypervisor's tests). All fields are little-endian u64; sizes
//! and offsets in sectors.

use super::*;

const SECTOR: usize = 512;
const CAPACITY_SECTORS: u64 = 2048;
const VOLATILE_AT: usize = 1;
const GD_AT: usize = 2;
const TABLES_AT: usize = 3;
const GRAINS_AT: usize = TABLES_AT + 64;
const GRAIN: usize = 4096;

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A 1 MiB seSparse extent: grain 0 stored (0xab, grain index 0), grain 5 stored (0xcd, grain
/// index 1: the index's low 12 bits sit in entry bits 48..60), grain 2 zeroed, the rest
/// unallocated.
fn sesparse(version: u64) -> Vec<u8> {
    let mut f = vec![0u8; (GRAINS_AT * SECTOR) + 2 * GRAIN];
    let h = &mut f[..SECTOR];
    put64(h, 0, 0xcafe_babe); // const header magic
    put64(h, 8, version);
    put64(h, 16, CAPACITY_SECTORS);
    put64(h, 24, 8); // grain size
    put64(h, 32, 64); // grain table size
    put64(h, 80, VOLATILE_AT as u64);
    put64(h, 88, 1);
    put64(h, 128, GD_AT as u64);
    put64(h, 136, 1);
    put64(h, 144, TABLES_AT as u64);
    put64(h, 152, 64);
    put64(h, 192, GRAINS_AT as u64);
    put64(h, 200, 16);
    put64(&mut f, VOLATILE_AT * SECTOR, 0xcafe_cafe); // volatile header magic, journal clean
    // Grain directory entry 0: grain table 0 (type 1 in the top nibble).
    put64(&mut f, GD_AT * SECTOR, 0x1000_0000_0000_0000);
    let gt = TABLES_AT * SECTOR;
    put64(&mut f, gt, 0x3000_0000_0000_0000);
    put64(&mut f, gt + 2 * 8, 0x1000_0000_0000_0000);
    put64(&mut f, gt + 5 * 8, 0x3001_0000_0000_0000);
    let grains = GRAINS_AT * SECTOR;
    f[grains..grains + GRAIN].fill(0xab);
    f[grains + GRAIN..grains + 2 * GRAIN].fill(0xcd);
    f
}

#[test]
fn bare_sesparse_is_vmdk_and_reads_like_qemu_through_a_descriptor() {
    let d = &scratch();
    write(d, "se.vmdk", &sesparse(0x0000_0002_0000_0001));
    let info = info_json(&["se.vmdk"], d);
    assert_eq!(info["format"], "vmdk", "{info}");
    assert_eq!(info["format-specific"]["create-type"], "seSparse", "{info}");
    assert_eq!(info["virtual-size"], CAPACITY_SECTORS * 512, "{info}");
    assert_eq!(info["convertible"], true, "{info}");

    // qemu reads seSparse only through a descriptor: the oracle.
    let desc = format!(
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"seSparse\"\nRW {CAPACITY_SECTORS} SESPARSE \"se.vmdk\"\n"
    );
    write(d, "se-desc.vmdk", desc.as_bytes());
    let expected = qemu_raw(d, "vmdk", "se-desc.vmdk");
    let ours = vmdisk_raw(d, &["se.vmdk"]);
    assert!(
        ours == expected,
        "bare seSparse differs from qemu's reading"
    );
    assert!(ours[..GRAIN].iter().all(|&b| b == 0xab));
    assert!(ours[5 * GRAIN..6 * GRAIN].iter().all(|&b| b == 0xcd));
    assert!(vmdisk_raw(d, &["se-desc.vmdk", "se.vmdk"]) == expected);
}

#[test]
fn sesparse_of_unknown_version_is_named_and_refused() {
    let d = &scratch();
    write(d, "se.vmdk", &sesparse(0x0000_0003_0000_0001));
    let out = run(vmdisk_bin(), &["info", "--json", "se.vmdk"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("seSparse version 0x300000001"), "{err}");
    let err = vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", "se.vmdk"], d);
    assert!(err.contains("seSparse version"), "{err}");
    assert!(!path(d, "o.raw").exists());
}
