//! Tables edited by hand: an L2 table past the end, data over a refcount block, two BAT
//! entries sharing one block.

use super::cut::{the_one, with_code};
use super::*;

const MIB: u64 = 1 << 20;

fn be(f: &[u8], at: u64) -> u64 {
    u64::from_be_bytes(f[at as usize..at as usize + 8].try_into().unwrap())
}

fn le(f: &[u8], at: u64, n: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&f[at as usize..at as usize + n]);
    u64::from_le_bytes(b)
}

/// A new image `name` made by `qemu-img create -q ARGS name SIZE` (`create` = "ARGS SIZE")
/// and the qemu-io `writes` ("a; b"), with no finding yet: its bytes.
fn fresh(dir: &std::path::Path, name: &str, create: &str, writes: &str) -> Vec<u8> {
    let mut args: Vec<&str> = create.split_whitespace().collect();
    let size = args.pop().unwrap();
    qemu_img(&[&["create", "-q"][..], &args, &[name, size]].concat(), dir);
    let writes: Vec<&str> = writes.split("; ").collect();
    qemu_io(name, &writes, dir);
    for code in ["truncated", "corrupt"] {
        assert!(with_code(dir, name, code).is_empty(), "{name}: {code}");
    }
    std::fs::read(path(dir, name)).unwrap()
}

/// One critical `corrupt` finding saying `says`, and convert refuses.
fn corrupt_and_refused(dir: &std::path::Path, name: &str, says: &str) {
    let m = the_one(dir, &[name], "corrupt");
    assert!(m.contains(says), "{m}");
    vmdisk_fails(&["convert", "-O", "raw", "--output", "o.raw", name], dir);
}

/// qcow2 (qcow2.txt "Cluster mapping"): L1 entry 1 of a 1 GiB disk with 64 KiB clusters moved
/// to 256 MiB, far past the end: the 512 MiB that L2 table maps are lost, not the 64 KiB of
/// data it held, and the message says the table is missing. Entry 0's data stays.
#[test]
fn qcow2_l2_table_past_the_end() {
    let dir = &scratch();
    let writes = "write -P 1 0 64k; write -P 2 600M 64k";
    let f = fresh(dir, "l.qcow2", "-f qcow2 1G", writes);
    let l1 = be(&f, 40);
    let far = 256 * MIB;
    assert!(far > f.len() as u64);
    let far_entry = (1u64 << 63 | far).to_be_bytes();
    write_at(&path(dir, "l.qcow2"), l1 + 8, &far_entry);
    let m = the_one(dir, &["l.qcow2"], "truncated");
    assert!(m.contains(&format!("{} bytes)", 512 * MIB)), "{m}");
    assert!(m.contains("first at host offset 0x10000000"), "{m}");
    let table = "the L2 table mapping guest 512 MiB..1 GiB: the table itself is missing";
    assert!(m.contains(table), "{m}");
    assert!(m.contains("guest data at 512 MiB..1 GiB"), "{m}");
    // qemu-img check sees the L2 table past the end too.
    assert!(!run("qemu-img", &["check", "l.qcow2"], dir).status.success());
    let err = vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "l.qcow2"],
        dir,
    );
    assert!(err.contains("past the end"), "{err}");
}

/// qcow2 (qcow2.txt "Host cluster management"): L2 entry 0 pointed at refcount block 0.
#[test]
fn qcow2_data_over_a_refcount_block() {
    let dir = &scratch();
    let f = fresh(dir, "r.qcow2", "-f qcow2 64M", "write -P 0x5a 0 64k");
    let l2 = be(&f, be(&f, 40)) & 0x00ff_ffff_ffff_fe00;
    let block = be(&f, be(&f, 48)) & !0x1ff;
    assert!(block != 0);
    write_at(
        &path(dir, "r.qcow2"),
        l2,
        &(1u64 << 63 | block).to_be_bytes(),
    );
    corrupt_and_refused(dir, "r.qcow2", "over the refcount block");
    // qemu-img check finds the damage as well.
    assert!(!run("qemu-img", &["check", "r.qcow2"], dir).status.success());
}

/// VHD ("Block Allocation Table and Data Blocks"): BAT entry 1 set to entry 0's block. The
/// image opens and is reported; convert refuses.
#[test]
fn vhd_two_blocks_in_one() {
    let dir = &scratch();
    let f = fresh(dir, "d.vhd", "-f vpc 64M", "write -P 0x5a 0 4M");
    // Footer copy at 0: data offset at 16; dynamic header: table offset at 16.
    let bat = be(&f, be(&f, 16) + 16);
    let first = &f[bat as usize..bat as usize + 4].to_vec();
    write_at(&path(dir, "d.vhd"), bat + 4, first);
    corrupt_and_refused(dir, "d.vhd", "same host bytes");
}

/// The file offset of the VHDX BAT region ([MS-VHDX] 2.2.3: region table at 192 KiB, 16-byte
/// header, 32-byte entries of GUID, offset, length, flags).
pub fn vhdx_bat(f: &[u8]) -> u64 {
    // 2DC27766-F623-4200-9D64-115E9BFD4A08 as stored (little-endian first three fields).
    let guid = [
        0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a,
        0x08,
    ];
    let table = 192 << 10;
    let count = le(f, table + 8, 4);
    (0..count)
        .map(|i| table + 16 + i * 32)
        .find(|&e| f[e as usize..e as usize + 16] == guid)
        .map(|e| le(f, e + 16, 8))
        .expect("a BAT region")
}

/// VHDX (2.5): BAT entry 1 set to entry 0's payload block.
#[test]
fn vhdx_two_blocks_in_one() {
    let dir = &scratch();
    let create = "-f vhdx -o block_size=1M 64M";
    let f = fresh(dir, "d.vhdx", create, "write -P 0x5a 0 2M");
    let bat = vhdx_bat(&f);
    let first = le(&f, bat, 8);
    assert_eq!(first & 7, 6, "block 0 fully present");
    write_at(&path(dir, "d.vhdx"), bat + 8, &first.to_le_bytes());
    let m = the_one(dir, &["d.vhdx"], "corrupt");
    assert!(m.contains("same host bytes"), "{m}");
    vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "d.vhdx"],
        dir,
    );
}
