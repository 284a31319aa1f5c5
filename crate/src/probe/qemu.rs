//! qemu's own formats: qcow2, qcow (v1) and QED.
//!
//! qcow2 and qcow share the magic `QFI\xfb`; the version field tells them apart (1 = qcow).
//! Specs: qemu `docs/interop/qcow2.txt`, `block/qcow.c`, `docs/interop/qed_spec.txt`.

use super::bytes::{be32, be64, has, le32, le64};
use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// The longest backing file name qemu writes or accepts.
const MAX_BACKING_NAME: u64 = 1023;

pub async fn detect(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let h = &cx.head;
    if has(h, 0, b"QFI\xfb") {
        let det = if be32(h, 4) == 1 {
            qcow(cx).await?
        } else {
            qcow2(cx)
        };
        scan.add(0, det);
    } else if has(h, 0, b"QED\0") {
        scan.add(0, qed(cx).await?);
    }
    Ok(())
}

fn qcow2(cx: &Ctx<'_>) -> Detection {
    let h = &cx.head;
    let mut d = Detection::new(Format::Qcow2);
    let version = be32(h, 4);
    d.set("version", version);
    // Only facts the qcow2 driver does not own: it reports features, backing file and safety.
    match version {
        2 => d.set("compat", "0.10"),
        3 => d.set("compat", "1.1"),
        v => d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown qcow2 version {v} (qemu knows 2 and 3)"),
        ),
    }
    // The v2 header is 72 bytes; v3 states its length at 100 (at least 104).
    let need = if version >= 3 {
        (be32(h, 100) as usize).max(104)
    } else {
        72
    };
    if h.len() < 32 {
        d.truncated("qcow2 header");
        return d;
    }
    d.virtual_size = Some(be64(h, 24));
    if h.len() < need.min(4096) {
        d.truncated("qcow2 header");
    }
    let cluster_bits = be32(h, 20);
    if (9..=21).contains(&cluster_bits) {
        d.set("cluster-size", 1u64 << cluster_bits);
    } else if h.len() >= 24 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("qcow2 cluster_bits {cluster_bits} is outside 9..21"),
        );
    }
    d
}

async fn qcow(cx: &Ctx<'_>) -> Result<Detection> {
    let h = &cx.head;
    let mut d = Detection::new(Format::Qcow);
    d.set("version", 1);
    if h.len() < 48 {
        d.truncated("qcow header");
        if h.len() < 32 {
            return Ok(d);
        }
    }
    d.virtual_size = Some(be64(h, 24));
    let cluster_bits = h.get(32).copied().unwrap_or(0);
    let l2_bits = h.get(33).copied().unwrap_or(0);
    // qemu's rules (block/qcow.c): clusters of 512 bytes to 64 KiB, L2 tables of 512 bytes to
    // 64 KiB whatever the cluster size (with a backing file qemu-img writes 512-byte clusters and
    // 32 KiB L2 tables).
    if (9..=16).contains(&cluster_bits) && (6..=13).contains(&l2_bits) {
        d.set("cluster-size", 1u64 << cluster_bits);
    } else if h.len() >= 34 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("qcow cluster_bits {cluster_bits} / l2_bits {l2_bits} are out of range"),
        );
    }
    match be32(h, 36) {
        0 => {}
        // The qcow driver reports the `encrypted` finding (it owns the image's safety facts).
        1 => d.set("encrypt", "aes"),
        m => d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown qcow encryption method {m}"),
        ),
    }
    backing(
        cx,
        &mut d,
        be64(h, 8),
        u64::from(be32(h, 16)),
        "qcow backing file name",
    )
    .await?;
    Ok(d)
}

async fn qed(cx: &Ctx<'_>) -> Result<Detection> {
    let h = &cx.head;
    let mut d = Detection::new(Format::Qed);
    if h.len() < 64 {
        d.truncated("QED header");
        if h.len() < 56 {
            return Ok(d);
        }
    }
    let cluster = le32(h, 4);
    let table = le32(h, 8);
    let header_clusters = le32(h, 12);
    let features = le64(h, 16);
    d.virtual_size = Some(le64(h, 48));
    d.set("cluster-size", cluster);
    d.set("table-size", table);
    let sane = cluster.is_power_of_two()
        && (4096..=64 << 20).contains(&cluster)
        && table.is_power_of_two()
        && table <= 16
        && header_clusters >= 1;
    if !sane {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("QED header fields out of range (cluster size {cluster}, table size {table}, header size {header_clusters})"),
        );
    }
    if features & 2 != 0 {
        d.set("dirty", true);
    }
    if features & !7 != 0 {
        d.finding(
            FindingCode::UnknownFeature,
            Severity::Critical,
            format!("unknown QED feature bits {:#x}", features & !7),
        );
    }
    if features & 1 != 0 {
        backing(
            cx,
            &mut d,
            u64::from(le32(h, 56)),
            u64::from(le32(h, 60)),
            "QED backing file name",
        )
        .await?;
    }
    Ok(d)
}

/// Record a backing file reference (`offset`/`len` of its name in the file) as a detail.
async fn backing(cx: &Ctx<'_>, d: &mut Detection, offset: u64, len: u64, what: &str) -> Result<()> {
    if offset == 0 || len == 0 {
        return Ok(());
    }
    if len > MAX_BACKING_NAME {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("{what} is {len} bytes long (at most {MAX_BACKING_NAME})"),
        );
        return Ok(());
    }
    let Some(name) = cx.bytes(offset, len, what).await? else {
        d.truncated(what);
        return Ok(());
    };
    // Only the detail: the qcow and QED drivers raise the `backing-file` finding, saying
    // whether the file was supplied and whether its name is a path.
    let name = String::from_utf8_lossy(&name).into_owned();
    d.set("backing-file", name);
    Ok(())
}
