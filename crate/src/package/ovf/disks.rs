//! References and DiskSection.

use super::nodes::{attr_value, kind, number, ovf_attr, ovf_children};
use super::units::digits;
use super::*;

pub(super) fn read_files(root: Node, budget: &mut Budget, problems: &mut Problems) -> Vec<FileRef> {
    let nodes = ovf_children(root)
        .filter(|c| kind(*c) == Some("References"))
        .flat_map(|r| ovf_children(r).filter(|c| c.tag_name().name() == "File"));
    read_records(nodes, "Files", read_file, |f| &f.id, budget, problems)
}

/// Reads a record from each node while the budget lasts (a node that yields none costs
/// nothing), and warns about an id that `plural` already had.
fn read_records<'a, 'i: 'a, T>(
    nodes: impl Iterator<Item = Node<'a, 'i>>,
    plural: &str,
    mut read: impl FnMut(Node<'a, 'i>, &mut Problems) -> Option<T>,
    id: impl Fn(&T) -> &String,
    budget: &mut Budget,
    problems: &mut Problems,
) -> Vec<T> {
    let mut records = Vec::new();
    let mut ids = BTreeSet::new();
    for node in nodes {
        let Some(record) = read(node, problems) else {
            continue;
        };
        if !budget.take(problems) {
            break;
        }
        if !ids.insert(id(&record).clone()) {
            problems.warn(
                FindingCode::OvfDuplicateId,
                format!("two {plural} have the id {}", quoted(id(&record))),
            );
        }
        records.push(record);
    }
    records
}

pub(super) fn read_file(node: Node, problems: &mut Problems) -> Option<FileRef> {
    let (Some(id), Some(href)) = (
        attr_value(node, "id"),
        ovf_attr(node, "href").filter(|h| !h.is_empty()),
    ) else {
        problems.warn(
            FindingCode::OvfMissingAttribute,
            "a File has no ovf:id or no ovf:href; it is ignored",
        );
        return None;
    };
    let what = |attr: &str| format!("ovf:{attr} of File {}", quoted(id));
    let mut chunk_size = number::<u64>(attr_value(node, "chunkSize"), &what("chunkSize"), problems);
    if chunk_size == Some(0) {
        problems.warn(
            FindingCode::OvfBadValue,
            format!("{} is 0", what("chunkSize")),
        );
        chunk_size = None;
    }
    Some(FileRef {
        id: id.to_string(),
        href: href.to_string(),
        size: number(attr_value(node, "size"), &what("size"), problems),
        compression: attr_value(node, "compression").map(|c| capped(c, MAX_TEXT)),
        chunk_size,
    })
}

pub(super) fn read_disks(
    nodes: &[Node],
    files: &[FileRef],
    properties: &Properties,
    budget: &mut Budget,
    problems: &mut Problems,
) -> Vec<DiskDef> {
    let disk_nodes = nodes
        .iter()
        .flat_map(|s| ovf_children(*s).filter(|c| c.tag_name().name() == "Disk"));
    let disks = read_records(
        disk_nodes,
        "Disks",
        |node, problems| read_disk(node, properties, problems),
        |d| &d.id,
        budget,
        problems,
    );
    let file_ids: BTreeSet<&str> = files.iter().map(|f| f.id.as_str()).collect();
    let disk_ids: BTreeSet<&str> = disks.iter().map(|d| d.id.as_str()).collect();
    for disk in &disks {
        let refs = [
            (disk.file_ref.as_deref(), "file", &file_ids, "References"),
            (
                disk.parent_ref.as_deref(),
                "parent disk",
                &disk_ids,
                "DiskSection",
            ),
        ];
        for (name, what, known, section) in refs {
            if let Some(name) = name.filter(|n| !known.contains(n)) {
                problems.warn(
                    FindingCode::OvfDanglingRef,
                    format!(
                        "Disk {} names {what} {}, which {section} does not list",
                        quoted(&disk.id),
                        quoted(name)
                    ),
                );
            }
        }
    }
    disks
}

pub(super) fn read_disk(
    node: Node,
    properties: &Properties,
    problems: &mut Problems,
) -> Option<DiskDef> {
    let Some(id) = attr_value(node, "diskId") else {
        problems.warn(
            FindingCode::OvfMissingAttribute,
            "a Disk has no ovf:diskId; it is ignored",
        );
        return None;
    };
    let populated = format!("ovf:populatedSize of Disk {}", quoted(id));
    Some(DiskDef {
        id: id.to_string(),
        file_ref: attr_value(node, "fileRef").map(str::to_string),
        capacity: disk_capacity(node, id, properties, problems),
        populated_size: number(attr_value(node, "populatedSize"), &populated, problems),
        format: attr_value(node, "format").map(|f| capped(f, MAX_TEXT)),
        // oVirt writes parentRef="" for a disk without parent: attr_value makes that None.
        parent_ref: attr_value(node, "parentRef").map(str::to_string),
    })
}

/// `ovf:capacity` x `ovf:capacityAllocationUnits` in bytes. The capacity may be a `${property}`
/// reference, a plain integer, or (old descriptors) a number followed by units ("8 GB").
pub(super) fn disk_capacity(
    node: Node,
    id: &str,
    properties: &Properties,
    problems: &mut Problems,
) -> Option<u64> {
    let Some(raw) = attr_value(node, "capacity") else {
        problems.warn(
            FindingCode::OvfMissingCapacity,
            format!("Disk {} has no ovf:capacity", quoted(id)),
        );
        return None;
    };
    let value = match raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(name) => {
            let Some(value) = properties.get(name.trim()) else {
                problems.warn(
                    FindingCode::OvfMissingCapacity,
                    format!(
                        "the capacity of Disk {} is property {}, which has no default value",
                        quoted(id),
                        quoted(name)
                    ),
                );
                return None;
            };
            value.trim()
        }
        None => raw,
    };
    let what = format!("the capacity of Disk {}", quoted(id));
    let (count, inline_units) = quantity(value, &what, problems)?;
    let units_attr = attr_value(node, "capacityAllocationUnits");
    let units = match (inline_units, units_attr) {
        (Some((m, _)), None) => m,
        (None, attr) => byte_units(attr.unwrap_or("byte"), &what, problems)?,
        // "8 GB" with capacityAllocationUnits="byte" is consistent.
        (Some((m, _)), Some(attr)) if allocation_units(attr) == Some(1) => m,
        (Some((_, text)), Some(attr)) => {
            problems.warn(
                FindingCode::OvfUnknownUnits,
                format!(
                    "{what} carries units {} and also ovf:capacityAllocationUnits {}",
                    quoted(text),
                    quoted(attr)
                ),
            );
            return None;
        }
    };
    scaled(count, units, &what, problems)
}

/// "123" or "8 GB" / "8 byte * 2^30": the count and, when written inline, the units.
pub(super) fn quantity<'s>(
    value: &'s str,
    what: &str,
    problems: &mut Problems,
) -> Option<(u64, Option<(u64, &'s str)>)> {
    let end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let (count_text, rest) = value.split_at(end);
    let count = whole_number(if end == 0 { value } else { count_text }, what, problems)?;
    let rest = rest.trim().trim_start_matches('*').trim();
    if rest.is_empty() {
        return Some((count, None));
    }
    Some((count, Some((byte_units(rest, what, problems)?, rest))))
}

/// Plain decimal digits as u64; too many digits is an overflow, anything else a bad value.
pub(super) fn whole_number(text: &str, what: &str, problems: &mut Problems) -> Option<u64> {
    let n = digits(text);
    if n.is_none() {
        let (code, why) = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            (FindingCode::OvfSizeOverflow, "does not fit in 64 bits")
        } else {
            (FindingCode::OvfBadValue, "is not a number")
        };
        problems.warn(code, format!("{what} ({}) {why}", quoted(text)));
    }
    n
}

pub(super) fn byte_units(units: &str, what: &str, problems: &mut Problems) -> Option<u64> {
    let m = allocation_units(units);
    if m.is_none() {
        problems.warn(
            FindingCode::OvfUnknownUnits,
            format!(
                "{what} is in units {}, which vmdisk does not know as a multiple of bytes",
                quoted(units)
            ),
        );
    }
    m
}

pub(super) fn scaled(count: u64, units: u64, what: &str, problems: &mut Problems) -> Option<u64> {
    let bytes = count.checked_mul(units);
    if bytes.is_none() {
        problems.warn(
            FindingCode::OvfSizeOverflow,
            format!("{what} ({count} x {units} bytes) does not fit in 64 bits"),
        );
    }
    bytes
}

/// Disk and file ids for resolving HostResource.
pub(super) struct Index<'d> {
    disks: BTreeSet<&'d str>,
    files: BTreeSet<&'d str>,
    /// File id -> the first Disk stored in it (oVirt's HostResource names the file path).
    disk_of_file: BTreeMap<&'d str, &'d str>,
}

impl<'d> Index<'d> {
    pub(super) fn new(files: &'d [FileRef], disks: &'d [DiskDef]) -> Self {
        let mut disk_of_file = BTreeMap::new();
        for d in disks {
            if let Some(f) = d.file_ref.as_deref() {
                disk_of_file.entry(f).or_insert(d.id.as_str());
            }
        }
        Index {
            disks: disks.iter().map(|d| d.id.as_str()).collect(),
            files: files.iter().map(|f| f.id.as_str()).collect(),
            disk_of_file,
        }
    }

    /// "ovf:/disk/ID", "/disk/ID", "ovf://disk/ID", "ovf:/file/ID", or oVirt's bare
    /// "image-group/image": what it names and whether that exists.
    pub(super) fn resolve(&self, host: &str) -> (AttachTo, String, bool) {
        let path = host
            .strip_prefix("ovf:")
            .unwrap_or(host)
            .trim_start_matches('/');
        if let Some(id) = path.strip_prefix("disk/") {
            return (AttachTo::Disk, id.to_string(), self.disks.contains(id));
        }
        if let Some(id) = path.strip_prefix("file/") {
            return (AttachTo::File, id.to_string(), self.files.contains(id));
        }
        if self.disks.contains(host) {
            return (AttachTo::Disk, host.to_string(), true);
        }
        match self.disk_of_file.get(host) {
            Some(disk) => (AttachTo::Disk, disk.to_string(), true),
            None => (AttachTo::Disk, host.to_string(), false),
        }
    }
}
