//! The text `vmdisk check` prints, in the words of `qemu-img check` (qemu-img.c
//! `dump_human_image_check`), with the problems listed first.

use super::result::CheckResult;
use std::fmt::Write;

/// The human-readable report of `r` (and of its disks, each under its name).
pub fn human(r: &CheckResult) -> String {
    let mut out = String::new();
    if !r.disks.is_empty() {
        let _ = writeln!(out, "Package {} ({}):", r.filename, r.format);
    }
    one(r, &mut out);
    for d in &r.disks {
        let _ = writeln!(out, "\nDisk {} ({}):", d.filename, d.format);
        one(d, &mut out);
    }
    out
}

fn one(r: &CheckResult, out: &mut String) {
    for p in &r.problems {
        let _ = writeln!(out, "{p}");
    }
    if r.problems_not_shown > 0 {
        let _ = writeln!(out, "... and {} more problems", r.problems_not_shown);
    }
    if r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0 {
        let _ = writeln!(out, "No errors were found on the image.");
    } else {
        if r.corruptions > 0 {
            let _ = writeln!(
                out,
                "\n{} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.",
                r.corruptions
            );
        }
        if r.leaks > 0 {
            let _ = writeln!(
                out,
                "\n{} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.",
                r.leaks
            );
        }
        if r.check_errors > 0 {
            let _ = writeln!(
                out,
                "\n{} internal errors have occurred during the check.",
                r.check_errors
            );
        }
    }
    if r.total_clusters > 0 && r.allocated_clusters > 0 {
        let pct = |n: u64, of: u64| n as f64 * 100.0 / of as f64;
        let _ = writeln!(
            out,
            "{}/{} = {:.2}% allocated, {:.2}% fragmented, {:.2}% compressed clusters",
            r.allocated_clusters,
            r.total_clusters,
            pct(r.allocated_clusters, r.total_clusters),
            pct(r.fragmented_clusters, r.allocated_clusters),
            pct(r.compressed_clusters, r.allocated_clusters)
        );
    }
    if r.image_end_offset > 0 {
        let _ = writeln!(out, "Image end offset: {}", r.image_end_offset);
    }
}
