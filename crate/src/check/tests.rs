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
