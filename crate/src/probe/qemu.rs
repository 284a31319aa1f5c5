//! qemu's own formats: qcow2, qcow (v1) and QED.
//!
//! qcow2 and qcow share the magic `QFI\xfb`; the version field tells them apart (1 = qcow).
//! Specs: qemu `docs/interop/qcow2.txt`, `block/qcow.c`, `docs/interop/qed_spec.txt`.
//!
//! Each header is read by its driver's parser; detection turns the parser's problems into
//! findings by its own rules (it names the format even when the driver would refuse it).

use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::formats::qcow::header as qcow_header;
use crate::formats::qcow2::header::{self as qcow2_header, MAGIC};
use crate::formats::qed::header as qed_header;
use crate::report::Severity;
use core::mem::offset_of;
use qcow_header::QcowHeader;
use qcow2_header::Qcow2Header;
use qed_header::QedHeader;

/// With the size field (which ends where the next field starts) a cut header still names the
/// disk size; without it detection reports only the truncation.
const QCOW2_SIZE_END: usize = offset_of!(Qcow2Header, crypt_method);
const QCOW_SIZE_END: usize = offset_of!(QcowHeader, cluster_bits);
const QED_SIZE_END: usize = offset_of!(QedHeader, backing_filename_offset);
/// qcow's cluster_bits and l2_bits are judged only when the file holds both.
const QCOW_BITS_END: usize = offset_of!(QcowHeader, padding);

pub async fn detect(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let h = &cx.head;
    if h.starts_with(MAGIC) {
        let det = if Qcow2Header::read(h).version.get() == 1 {
            qcow(cx).await?
        } else {
            qcow2(cx)
        };
        scan.add(0, det);
    } else if h.starts_with(qed_header::MAGIC) {
        scan.add(0, qed(cx).await?);
    }
    Ok(())
}

fn qcow2(cx: &Ctx<'_>) -> Detection {
    let h = &cx.head;
    let (header, problems) = qcow2_header::parse(h);
    let mut d = Detection::new(Format::Qcow2);
    d.set("version", header.version);
    // Only facts the qcow2 driver does not own: it reports features, backing file and safety.
    match header.version {
        2 => d.set("compat", "0.10"),
        3 => d.set("compat", "1.1"),
        _ => {}
    }
    for p in &problems {
        if let qcow2_header::Problem::UnknownVersion(v) = p {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("unknown qcow2 version {v} (qemu knows 2 and 3)"),
            );
        }
    }
    if h.len() < QCOW2_SIZE_END {
        d.truncated("qcow2 header");
        return d;
    }
    d.virtual_size = Some(header.size);
    // The whole stated header, v2 72 bytes, v3 its header_length (at least 104).
    if h.len() < (header.stated_length() as usize).min(4096) {
        d.truncated("qcow2 header");
    }
    // The driver refuses small clusters as corrupt and large ones as unsupported.
    let cluster_bits = header.cluster_bits;
    if (9..=21).contains(&cluster_bits) {
        d.set("cluster-size", header.cluster_size());
    } else {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("qcow2 cluster_bits {cluster_bits} is outside 9..21"),
        );
    }
    d
}

async fn qcow(cx: &Ctx<'_>) -> Result<Detection> {
    use qcow_header::Problem;
    let h = &cx.head;
    let (header, problems) = qcow_header::parse(h);
    let mut d = Detection::new(Format::Qcow);
    d.set("version", 1);
    if h.len() < qcow_header::HEADER_LEN as usize {
        d.truncated("qcow header");
        if h.len() < QCOW_SIZE_END {
            return Ok(d);
        }
    }
    d.virtual_size = Some(header.size.get());
    let bad_bits = problems
        .iter()
        .any(|p| matches!(p, Problem::ClusterBits(_) | Problem::L2Bits(_)));
    if !bad_bits {
        d.set("cluster-size", 1u64 << header.cluster_bits);
    } else if h.len() >= QCOW_BITS_END {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!(
                "qcow cluster_bits {} / l2_bits {} are out of range",
                header.cluster_bits, header.l2_bits
            ),
        );
    }
    // The qcow driver reports the `encrypted` finding (it owns the image's safety facts).
    if header.crypt_method.get() == 1 {
        d.set("encrypt", "aes");
    }
    for p in &problems {
        if let Problem::CryptMethod(m) = p {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("unknown qcow encryption method {m}"),
            );
        }
    }
    // A name longer than qemu allows: the driver's own problem, stated as it states it.
    let too_long = problems
        .iter()
        .find(|p| matches!(p, Problem::BackingNameTooLong(_)))
        .map(Problem::message);
    let what = "qcow backing file name";
    backing(cx, &mut d, header.backing_name(), too_long, what).await?;
    Ok(d)
}

async fn qed(cx: &Ctx<'_>) -> Result<Detection> {
    use qed_header::Problem;
    let h = &cx.head;
    let (header, problems) = qed_header::parse(h);
    let mut d = Detection::new(Format::Qed);
    if h.len() < qed_header::HEADER_LEN as usize {
        d.truncated("QED header");
        if h.len() < QED_SIZE_END {
            return Ok(d);
        }
    }
    let cluster = header.cluster_size.get();
    let table = header.table_size.get();
    let header_clusters = header.header_size.get();
    d.virtual_size = Some(header.image_size.get());
    d.set("cluster-size", cluster);
    d.set("table-size", table);
    // The driver also refuses a header area past 4 GiB and a bad image size.
    let insane = problems.iter().any(|p| {
        matches!(
            p,
            Problem::ClusterSize(_) | Problem::TableSize(_) | Problem::HeaderSize(0)
        )
    });
    if insane {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("QED header fields out of range (cluster size {cluster}, table size {table}, header size {header_clusters})"),
        );
    }
    let features = header.features.get();
    if features & qed_header::F_NEED_CHECK != 0 {
        d.set("dirty", true);
    }
    for p in &problems {
        if let Problem::UnknownFeatures(bits) = p {
            d.finding(
                FindingCode::UnknownFeature,
                Severity::Critical,
                format!("unknown QED feature bits {bits:#x}"),
            );
        }
    }
    // A name longer than qemu allows: the driver's own problem, stated as it states it.
    let too_long = problems
        .iter()
        .find(|p| matches!(p, Problem::BackingNameTooLong(_)))
        .map(Problem::message);
    let what = "QED backing file name";
    backing(cx, &mut d, header.backing_name(), too_long, what).await?;
    Ok(d)
}

/// Record a backing file reference (`name`: offset and length of its name in the file) as a
/// detail; `too_long` is the parser's message when the name is longer than qemu allows.
async fn backing(
    cx: &Ctx<'_>,
    d: &mut Detection,
    name: Option<(u64, u64)>,
    too_long: Option<String>,
    what: &str,
) -> Result<()> {
    let Some((offset, len)) = name else {
        return Ok(());
    };
    if let Some(message) = too_long {
        d.finding(FindingCode::Corrupt, Severity::Critical, message);
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
