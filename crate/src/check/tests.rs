//! Unit tests of the check's pieces.

use super::refcounts::entry_at;
use super::result::{CheckResult, Kind, MAX_PROBLEMS};

#[test]
fn refcount_entries_of_every_width() {
    // 1-bit entries are packed from the low bit of each byte (qemu get_refcount_ro0).
    assert_eq!(entry_at(&[0b0000_0100], 0, 2), 1);
    assert_eq!(entry_at(&[0b0000_0100], 0, 1), 0);
    assert_eq!(entry_at(&[0b1110_0100], 1, 3), 3);
    assert_eq!(entry_at(&[0x5a], 2, 1), 5);
    assert_eq!(entry_at(&[0, 7, 0x12, 0x34], 4, 1), 0x1234);
    assert_eq!(entry_at(&[0, 0, 0, 0, 0, 0, 1, 2], 5, 1), 0x102);
    assert_eq!(entry_at(&[0, 0, 0, 0, 0, 0, 0, 9], 6, 0), 9);
}

#[test]
fn exit_codes_follow_qemu_img() {
    let mut r = CheckResult::new("a", "qcow2");
    assert_eq!(r.exit_code(), 0);
    r.note(Kind::Leak, "leak");
    assert_eq!(r.exit_code(), 3);
    r.note(Kind::Corruption, "bad");
    assert_eq!(r.exit_code(), 2);
    let mut pkg = CheckResult::new("p", "ova");
    pkg.disks.push(r);
    assert_eq!(pkg.exit_code(), 2);
    pkg.note(Kind::CheckError, "could not read");
    assert_eq!(pkg.exit_code(), 1);
}

#[test]
fn problems_are_capped_and_counted() {
    let mut r = CheckResult::new("a", "qcow2");
    for i in 0..MAX_PROBLEMS + 7 {
        r.note(Kind::Corruption, format!("problem {i}"));
    }
    assert_eq!(r.problems.len(), MAX_PROBLEMS);
    assert_eq!(r.problems_not_shown, 7);
    assert_eq!(r.corruptions, (MAX_PROBLEMS + 7) as u64);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["corruptions"], 57);
    assert!(json.get("leaks").is_none(), "zero counters are left out");
    assert_eq!(json["check-errors"], 0);
}

/// A snapshot table entry with no extra data, unpadded: the L1 table's place and size,
/// then the ID and the name.
fn snapshot_entry(l1_offset: u64, l1_size: u32, id: &str, name: &str) -> Vec<u8> {
    let mut e = vec![0u8; 40];
    e[0..8].copy_from_slice(&l1_offset.to_be_bytes());
    e[8..12].copy_from_slice(&l1_size.to_be_bytes());
    e[12..14].copy_from_slice(&(id.len() as u16).to_be_bytes());
    e[14..16].copy_from_slice(&(name.len() as u16).to_be_bytes());
    e.extend_from_slice(id.as_bytes());
    e.extend_from_slice(name.as_bytes());
    e
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn a_snapshot_table_the_driver_refuses_is_still_walked() {
    use super::qcow2_snapshots;
    use crate::error::ErrorKind;
    use crate::formats::qcow2::snapshot::read_table;
    use crate::native::block_on;
    use crate::source::MemSource;

    // The table at byte 100, which is not cluster aligned: entries start 8-aligned, at 104
    // (44 bytes) and 152 (43 bytes), so the table ends at 195.
    let mut file = vec![0u8; 104];
    file.extend(snapshot_entry(4096, 3, "1", "abc"));
    file.resize(152, 0);
    file.extend(snapshot_entry(8192, 5, "2", "de"));
    file.resize(200, 0);

    let src = MemSource::new("t", file.clone());
    let err = block_on(read_table(&src, 100, 2, 512)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
    let (l1s, len) = block_on(qcow2_snapshots::read(&src, 100, 2)).unwrap();
    let l1s: Vec<_> = l1s.iter().map(|s| (s.l1_table_offset, s.l1_size)).collect();
    assert_eq!((l1s, len), (vec![(4096, 3), (8192, 5)], 95));

    // Cut inside the second name: the check cannot measure the table.
    let src = MemSource::new("t", file[..194].to_vec());
    let err = block_on(qcow2_snapshots::read(&src, 100, 2)).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Truncated, "{err}");
}
