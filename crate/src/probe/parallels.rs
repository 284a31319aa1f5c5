//! Parallels (expanding) disk images. Spec: qemu `docs/interop/parallels.txt`. Read with the
//! driver's header parser (`formats::parallels::header`). A bundle's `DiskDescriptor.xml` (qemu
//! `docs/interop/prl-xml.txt`) is named from its content, with the driver's descriptor parser.

use super::{Ctx, Detection, Format, Scan};
use crate::finding_code::FindingCode;
use crate::formats::common::descriptors::shown;
use crate::formats::parallels::descriptor::{
    MAX_DESCRIPTOR, looks_like_descriptor, parse_descriptor,
};
use crate::formats::parallels::header::{HEADER_LEN, ParallelsHeader};
use crate::report::Severity;
use crate::source::is_plain_name;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    let Some(header) = ParallelsHeader::parse(h) else {
        if cx.len <= MAX_DESCRIPTOR && looks_like_descriptor(h) {
            scan.add(0, bundle_descriptor(h));
        }
        return;
    };
    let mut d = Detection::new(Format::Parallels);
    d.set("magic", String::from_utf8_lossy(&header.magic).into_owned());
    if h.len() < HEADER_LEN as usize {
        d.truncated("Parallels header");
        if h.len() < 44 {
            scan.add(0, d);
            return;
        }
    }
    let version = header.version.get();
    d.set("version", version);
    if version != 2 {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("unknown Parallels header version {version}"),
        );
    }
    d.virtual_size = header.sectors().checked_mul(512);
    let cluster = u64::from(header.tracks.get()) * 512;
    let entries = u64::from(header.bat_entries.get());
    d.set("cluster-size", cluster);
    d.set("bat-entries", entries);
    if cluster == 0 || entries.saturating_mul(cluster) < d.virtual_size.unwrap_or(0) {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            "the Parallels allocation table is too small for the disk size",
        );
    }
    if HEADER_LEN + entries * 4 > cx.len {
        d.finding(
            FindingCode::Truncated,
            Severity::Critical,
            "the Parallels allocation table runs past the end of the file",
        );
    }
    // The Parallels driver reports the `dirty` finding.
    if header.is_dirty() {
        d.set("dirty", true);
    }
    scan.add(0, d);
}

/// A Parallels bundle's `DiskDescriptor.xml`: the disk is the `.hds` storages it names.
fn bundle_descriptor(text: &[u8]) -> Detection {
    let mut d = Detection::new(Format::Parallels);
    d.set("descriptor-file", true);
    let desc = match parse_descriptor(text) {
        Ok(desc) => desc,
        Err(e) => {
            d.finding(
                FindingCode::Corrupt,
                Severity::Critical,
                format!("the Parallels disk descriptor is unusable: {e}"),
            );
            return d;
        }
    };
    d.virtual_size = desc.disk_sectors.checked_mul(512);
    d.set("storage-count", desc.storages.len());
    d.set("storages", desc.listed_storages());
    for s in &desc.storages {
        // prl-xml.txt allows paths, relative or absolute: only the base name is ever matched.
        if !is_plain_name(&s.file) {
            d.finding(
                FindingCode::ExternalExtent,
                Severity::Critical,
                format!(
                    "the Parallels storage {} is a path: a hypervisor would read that host file",
                    shown(&s.file)
                ),
            );
        }
    }
    d
}
