//! Table entries pointing at host bytes another entry uses.

use super::cut::with_code;
use super::*;

/// qcow2: L2 entry 1 set to L2 entry 0's host cluster (qcow2.txt "Cluster mapping").
#[test]
fn qcow2_two_clusters_in_one() {
    let dir = &scratch();
    qemu_img(&["create", "-q", "-f", "qcow2", "d.qcow2", "64M"], dir);
    qemu_io("d.qcow2", &["write -P 0x5a 0 1M"], dir);
    assert!(with_code(dir, "d.qcow2", "corrupt").is_empty());
    let f = std::fs::read(path(dir, "d.qcow2")).unwrap();
    let be = |at: usize| u64::from_be_bytes(f[at..at + 8].try_into().unwrap());
    let l1 = be(40) as usize;
    let l2 = (be(l1) & 0x00ff_ffff_ffff_fe00) as usize;
    write_at(&path(dir, "d.qcow2"), l2 as u64 + 8, &be(l2).to_be_bytes());
    let found = with_code(dir, "d.qcow2", "corrupt");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "critical");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("same host bytes")
    );
    // qemu-img check counts the shared cluster's refcount as wrong too.
    assert!(!run("qemu-img", &["check", "d.qcow2"], dir).status.success());
    vmdisk_fails(
        &["convert", "-O", "raw", "--output", "o.raw", "d.qcow2"],
        dir,
    );
}

/// qcow2: an L2 entry pointing at the L1 table's cluster.
#[test]
fn qcow2_data_over_a_table() {
    let dir = &scratch();
    qemu_img(&["create", "-q", "-f", "qcow2", "t.qcow2", "64M"], dir);
    qemu_io("t.qcow2", &["write -P 0x5a 0 64k"], dir);
    let f = std::fs::read(path(dir, "t.qcow2")).unwrap();
    let be = |at: usize| u64::from_be_bytes(f[at..at + 8].try_into().unwrap());
    let l1 = be(40);
    let l2 = be(l1 as usize) & 0x00ff_ffff_ffff_fe00;
    write_at(&path(dir, "t.qcow2"), l2, &(1u64 << 63 | l1).to_be_bytes());
    let found = with_code(dir, "t.qcow2", "corrupt");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("over the L1 table"),
        "{found:?}"
    );
}

/// VDI: block map entry 1 set to entry 0's data block.
#[test]
fn vdi_two_blocks_in_one() {
    let dir = &scratch();
    qemu_img(&["create", "-q", "-f", "vdi", "d.vdi", "64M"], dir);
    qemu_io("d.vdi", &["write -P 0x5a 0 2M"], dir);
    assert!(with_code(dir, "d.vdi", "corrupt").is_empty());
    let f = std::fs::read(path(dir, "d.vdi")).unwrap();
    let map = u32::from_le_bytes(f[0x154..0x158].try_into().unwrap()) as u64;
    write_at(&path(dir, "d.vdi"), map + 4, &0u32.to_le_bytes());
    let found = with_code(dir, "d.vdi", "corrupt");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "critical");
}
