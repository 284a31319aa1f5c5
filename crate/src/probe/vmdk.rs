//! VMware VMDK: hosted sparse extents (`KDMV`), ESX sparse extents (`COWD`) and text descriptors.
//!
//! Spec: VMware "Virtual Disk Format 5.0" (sparse header layout in section "Hosted Sparse Extent
//! Header", descriptor grammar in "The Descriptor File"); qemu `block/vmdk.c` for what readers do.

use super::bytes::{find, has};
use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::formats::vmdk::sesparse_header::{SeSparseHeader, SeSparseProblem};
use crate::formats::vmdk::sparse_header::{
    CowdHeader, HOSTED_FIELDS_LEN, HostedHeader, NEWLINE_CHECK,
};
use crate::formats::vmdk::{Descriptor, parse_descriptor};
use crate::report::Severity;
use crate::source::is_plain_name;
use serde_json::json;

/// A descriptor larger than this is not a descriptor (qemu refuses far smaller ones).
const MAX_DESCRIPTOR: u64 = 1 << 20;
/// How many extents `details` lists.
const LISTED_EXTENTS: usize = 64;

pub async fn detect(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let h = &cx.head;
    if has(h, 0, b"KDMV") {
        scan.add(0, sparse(cx).await?);
    } else if has(h, 0, b"COWD") && CowdHeader::parse(h).version.get() == 1 {
        scan.add(0, cowd(cx));
    } else if SeSparseHeader::has_magic(h) {
        scan.add(0, sesparse(cx));
    } else if let Some(d) = descriptor_file(cx) {
        scan.add(0, d);
    }
    Ok(())
}

/// A hosted sparse extent: monolithicSparse, streamOptimized, or one extent of a split disk.
async fn sparse(cx: &Ctx<'_>) -> Result<Detection> {
    let h = &cx.head;
    let mut d = Detection::new(Format::Vmdk);
    if h.len() < HOSTED_FIELDS_LEN {
        d.truncated("VMDK sparse header");
        if h.len() < 20 {
            return Ok(d);
        }
    }
    let header = HostedHeader::parse(h);
    let version = header.version.get();
    let flags = header.flags.get();
    let capacity = header.capacity.get();
    let grain = header.grain_size.get();
    let desc_offset = header.descriptor_offset.get();
    let desc_size = header.descriptor_size.get();
    let gd_offset = header.gd_offset.get();
    d.set("version", version);
    if !(1..=3).contains(&version) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown VMDK sparse version {version} (1-3 exist)"),
        );
    }
    d.virtual_size = capacity.checked_mul(512);
    if grain.is_power_of_two() && (1..=1 << 16).contains(&grain) {
        d.set("grain-size", grain * 512);
    } else if h.len() >= 28 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("VMDK grain size {grain} sectors is not a power of two up to 65536"),
        );
    }
    // Bytes 73..77 are "\n \r\n": a file sent through a text-mode transfer has them rewritten.
    if flags & 1 != 0 && h.len() >= 77 && &header.newline_check != NEWLINE_CHECK {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VMDK newline check bytes are altered: the file went through a text-mode transfer",
        );
    }
    if flags & (1 << 16) != 0 {
        d.set(
            "compression",
            if header.compress_algorithm.get() == 1 {
                "deflate"
            } else {
                "unknown"
            },
        );
    }
    if gd_offset == u64::MAX {
        // streamOptimized written in one pass: the real grain directory offset is in the footer
        // (a copy of the header 1024 bytes before the end).
        d.set("footer", true);
        if let Some(f) = cx.footer(1024, 0).filter(|f| has(f, 0, b"KDMV")) {
            let c = HostedHeader::parse(f).capacity.get();
            if c != 0 && d.virtual_size == Some(0) {
                d.virtual_size = c.checked_mul(512);
            }
        }
    }
    if desc_offset == 0 || desc_size == 0 {
        // One extent of a split (twoGbMaxExtentSparse) disk: its descriptor is another file.
        d.set("embedded-descriptor", false);
        return Ok(d);
    }
    let len = desc_size.saturating_mul(512);
    if len > MAX_DESCRIPTOR {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("the embedded VMDK descriptor claims {len} bytes (at most {MAX_DESCRIPTOR})"),
        );
        return Ok(d);
    }
    let Some(at) = desc_offset.checked_mul(512) else {
        d.truncated("embedded VMDK descriptor");
        return Ok(d);
    };
    let Some(buf) = cx.bytes(at, len, "VMDK descriptor").await? else {
        d.truncated("embedded VMDK descriptor");
        return Ok(d);
    };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let desc = parse_descriptor(&String::from_utf8_lossy(&buf[..end]));
    if desc.create_type.is_none() && desc.extents.is_empty() {
        // An empty descriptor area: an extent of a split disk (qemu reserves the space).
        d.set("embedded-descriptor", false);
    } else {
        describe(&mut d, &desc, true);
    }
    Ok(d)
}

/// An ESX sparse extent (vmfsSparse, "COWD"): all fields 32-bit.
fn cowd(cx: &Ctx<'_>) -> Detection {
    let h = &cx.head;
    let mut d = Detection::new(Format::Vmdk);
    d.set("create-type", "vmfsSparse");
    d.set("version", 1);
    if h.len() < 32 {
        d.truncated("VMDK COWD header");
        if h.len() < 16 {
            return d;
        }
    }
    let header = CowdHeader::parse(h);
    d.virtual_size = Some(u64::from(header.disk_sectors.get()) * 512);
    let grain = header.granularity.get();
    if grain.is_power_of_two() {
        d.set("grain-size", u64::from(grain) * 512);
    } else {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("COWD grain size {grain} sectors is not a power of two"),
        );
    }
    d
}

/// A bare seSparse extent (ESXi 6.5+ snapshots): VMDK, though its descriptor is another file.
fn sesparse(cx: &Ctx<'_>) -> Detection {
    let mut d = Detection::new(Format::Vmdk);
    d.set("create-type", "seSparse");
    d.set("embedded-descriptor", false);
    let (header, problems) = SeSparseHeader::parse(&cx.head);
    d.set("version", format!("{:#x}", header.version.get()));
    d.virtual_size = header.capacity.get().checked_mul(512);
    d.set("grain-size", header.grain_size.get().saturating_mul(512));
    for p in problems {
        match p {
            SeSparseProblem::Cut => d.truncated("seSparse header"),
            // The driver refuses these: a layout nobody has described.
            p => d.finding(FindingCode::UnknownFeature, Severity::Critical, p.message()),
        }
    }
    d
}

/// A stand-alone descriptor: a small text file starting with `# Disk DescriptorFile` or holding
/// a `createType=` line.
fn descriptor_file(cx: &Ctx<'_>) -> Option<Detection> {
    if cx.len > super::HEAD_LEN {
        return None;
    }
    let t = &cx.head;
    let starts = t.starts_with(b"# Disk DescriptorFile");
    if !starts && (t.contains(&0) || find(t, b"createType=").is_none()) {
        return None;
    }
    let end = t.iter().position(|&b| b == 0).unwrap_or(t.len());
    let text = String::from_utf8_lossy(&t[..end]);
    let desc = parse_descriptor(&text);
    if !starts && desc.create_type.is_none() {
        return None;
    }
    let mut d = Detection::new(Format::Vmdk);
    d.set("descriptor-file", true);
    d.virtual_size = desc
        .extents
        .iter()
        .try_fold(0u64, |acc, e| acc.checked_add(e.sectors.checked_mul(512)?));
    describe(&mut d, &desc, false);
    Some(d)
}

/// Put a descriptor's facts and safety findings on the detection. `embedded`: the descriptor
/// lives inside a monolithic sparse file, whose data is that file itself (extent names unused).
fn describe(d: &mut Detection, desc: &Descriptor, embedded: bool) {
    if let Some(t) = &desc.create_type {
        d.set("create-type", t.as_str());
    }
    if let Some(a) = &desc.adapter_type {
        d.set("adapter-type", a.as_str());
    }
    if let Some(c) = &desc.cid {
        d.set("cid", c.as_str());
    }
    let listed: Vec<_> = desc
        .extents
        .iter()
        .take(LISTED_EXTENTS)
        .map(|e| {
            json!({
                "access": e.access, "type": e.kind, "sectors": e.sectors,
                "file": e.file, "offset": e.offset,
            })
        })
        .collect();
    d.set("extent-count", desc.extents.len() + desc.dropped_extents);
    d.set("extents", listed);
    if let Some(p) = desc
        .parent_hint
        .as_ref()
        .filter(|_| desc.parent_cid.as_deref() != Some("ffffffff"))
    {
        d.set("parent", p.as_str());
        d.finding(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("this VMDK is a delta disk: it depends on its parent {p:?}"),
        );
    }
    if desc.bad_lines > 0 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Warning,
            format!(
                "the VMDK descriptor has {} line(s) that are not VMDK descriptor syntax",
                desc.bad_lines
            ),
        );
    }
    let device = matches!(
        desc.create_type.as_deref(),
        Some("fullDevice" | "partitionedDevice" | "vmfsRaw" | "vmfsRDM" | "vmfsRDMP")
    );
    for e in &desc.extents {
        let rdm = matches!(e.kind.as_str(), "VMFSRDM" | "VMFSRAW");
        let Some(file) = &e.file else { continue };
        if embedded && file.is_empty() && !device && !rdm {
            // An empty name in a monolithic sparse file's own descriptor: the extent is the file
            // itself (FreeBSD mkimg writes `RW 10240 SPARSE ""`; qemu never opens the name).
            continue;
        }
        if device || rdm {
            d.finding(
                FindingCode::ExternalExtent,
                Severity::Critical,
                format!("the VMDK maps the host device {file:?} (raw device mapping)"),
            );
        } else if !is_plain_name(file) {
            let severity = if embedded {
                // qemu ignores the extent lines of a monolithic sparse file; still suspicious.
                Severity::Warning
            } else {
                Severity::Critical
            };
            d.finding(
                FindingCode::ExternalExtent,
                severity,
                format!(
                    "the VMDK extent {file:?} is a path: a hypervisor would read that host file"
                ),
            );
        }
    }
    if !embedded && desc.extents.is_empty() {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the VMDK descriptor lists no extents",
        );
    }
}
