//! The `DiskDescriptor.xml` of a Parallels Desktop `.hdd` bundle, shared by detection and the
//! bundle driver ([`super::bundle`]).
//!
//! Spec: qemu `docs/interop/prl-xml.txt` (Virtuozzo). That text leaves split images (several
//! storages) out; Parallels Desktop writes them as below, and dissect.hypervisor
//! (`disk/hdd.py`) reads them the same way:
//! ```text
//! <Parallels_disk_image Version="1.0">
//!   <Disk_Parameters> <Disk_size>sectors</Disk_size> ... </Disk_Parameters>
//!   <StorageData>
//!     <Storage> <Start>sector</Start> <End>sector</End> <Blocksize>sectors</Blocksize>
//!       <Image> <GUID>{...}</GUID> <Type>Plain|Compressed</Type> <File>name.hds</File> </Image>
//!     </Storage> ... (a split disk: several storages in guest order)
//!   </StorageData>
//!   <Snapshots> <Shot> <GUID/> <ParentGUID/> </Shot> ... </Snapshots>
//! </Parallels_disk_image>
//! ```
//! `Plain` storage is raw data; `Compressed` (expanding) storage is a Parallels image
//! (`WithoutFreeSpace` header). A storage with several `Image`s holds a snapshot chain.
//! `Padding` must be 0 (prl-xml.txt: other values are not described and must not be opened).

use roxmltree::{Document, Node, ParsingOptions};
use serde_json::{Value, json};

/// The root element that names a Parallels bundle descriptor.
pub(crate) const ROOT: &str = "Parallels_disk_image";
/// A descriptor larger than this is not one (Parallels writes a few KiB). It is also what
/// detection reads of every file (`probe::HEAD_LEN`), so detection sees a whole descriptor.
pub(crate) const MAX_DESCRIPTOR: u64 = 256 * 1024;
/// Storages a descriptor may list.
const MAX_STORAGES: usize = 4096;
/// How many storages detection and `details` list.
const LISTED_STORAGES: usize = 64;
/// XML nodes a descriptor may hold.
const MAX_NODES: u32 = 200_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StorageKind {
    /// Raw guest bytes.
    Plain,
    /// A Parallels expanding image.
    Compressed,
    Other(String),
}

/// One `Storage`: guest sectors `[start, end)` kept in `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Storage {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) kind: StorageKind,
    /// The file name as written (never opened as a path).
    pub(crate) file: String,
    /// How many `Image`s the storage lists (more than one: snapshots).
    pub(crate) images: usize,
    /// `Blocksize`: the cluster size, in sectors, every Compressed image of it must have.
    pub(crate) block_sectors: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BundleDescriptor {
    /// `Disk_size`, in sectors.
    pub(crate) disk_sectors: u64,
    pub(crate) name: Option<String>,
    pub(crate) uid: Option<String>,
    pub(crate) storages: Vec<Storage>,
}

impl BundleDescriptor {
    /// The first storages as detection and the driver's details list them.
    pub(crate) fn listed_storages(&self) -> Vec<Value> {
        let listed = self.storages.iter().take(LISTED_STORAGES);
        listed
            .map(|s| {
                let kind = match &s.kind {
                    StorageKind::Plain => "Plain",
                    StorageKind::Compressed => "Compressed",
                    StorageKind::Other(t) => t.as_str(),
                };
                json!({"start": s.start, "end": s.end, "type": kind, "file": s.file})
            })
            .collect()
    }
}

/// True when `head` looks like a bundle descriptor: XML text naming the root element. The
/// parse ([`parse_descriptor`]) decides.
pub(crate) fn looks_like_descriptor(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| head[i] == b'<')
        && head
            .windows(ROOT.len() + 1)
            .any(|w| w[0] == b'<' && &w[1..] == ROOT.as_bytes())
}

/// Parse descriptor bytes. Err says why they are not a usable bundle descriptor.
pub(crate) fn parse_descriptor(bytes: &[u8]) -> Result<BundleDescriptor, String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text (invalid byte at {})", e.valid_up_to()))?;
    let options = ParsingOptions {
        // No DTD: no entity is declared, expanded or fetched.
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != ROOT {
        return Err(format!(
            "the root element is <{}>, not <{ROOT}>",
            root.tag_name().name()
        ));
    }
    let params = child(root, "Disk_Parameters").ok_or("it has no <Disk_Parameters>")?;
    let disk_sectors = number(params, "Disk_size")?;
    if let Some(p) = text_of(params, "Padding").filter(|p| p != "0") {
        return Err(format!(
            "its Padding is {:?}; only 0 is described",
            shown(&p)
        ));
    }
    let mut storages = vec![];
    let data = child(root, "StorageData").ok_or("it has no <StorageData>")?;
    for s in data.children().filter(|n| n.has_tag_name("Storage")) {
        if storages.len() == MAX_STORAGES {
            return Err(format!("it lists more than {MAX_STORAGES} storages"));
        }
        let images: Vec<_> = s.children().filter(|n| n.has_tag_name("Image")).collect();
        let image = images.first().ok_or("a <Storage> lists no <Image>")?;
        let kind = match text_of(*image, "Type").unwrap_or_default().as_str() {
            "Plain" => StorageKind::Plain,
            "Compressed" => StorageKind::Compressed,
            other => StorageKind::Other(other.chars().take(40).collect()),
        };
        storages.push(Storage {
            start: number(s, "Start")?,
            end: number(s, "End")?,
            kind,
            file: text_of(*image, "File").ok_or("an <Image> names no <File>")?,
            images: images.len(),
            block_sectors: text_of(s, "Blocksize").and_then(|t| t.parse().ok()),
        });
    }
    check_layout(disk_sectors, &storages)?;
    Ok(BundleDescriptor {
        disk_sectors,
        name: text_of(params, "Name"),
        uid: text_of(params, "UID"),
        storages,
    })
}

/// The storages must tile the disk in guest order: from sector 0, each starting where the
/// one before ends, the last ending at `Disk_size`.
fn check_layout(disk_sectors: u64, storages: &[Storage]) -> Result<(), String> {
    if storages.is_empty() {
        return Err("it lists no storage".into());
    }
    let mut at = 0;
    for (i, s) in storages.iter().enumerate() {
        if s.start != at || s.end <= s.start {
            return Err(format!(
                "storage {i} covers sectors {}..{} where {at} was expected next",
                s.start, s.end
            ));
        }
        at = s.end;
    }
    if at != disk_sectors {
        return Err(format!(
            "its storages end at sector {at} but Disk_size is {disk_sectors}"
        ));
    }
    if disk_sectors.checked_mul(512).is_none() {
        return Err(format!("Disk_size {disk_sectors} sectors is too large"));
    }
    Ok(())
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn text_of(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|n| n.text().unwrap_or("").trim().to_string())
}

fn number(node: Node<'_, '_>, name: &str) -> Result<u64, String> {
    let t = text_of(node, name).ok_or_else(|| format!("a <{name}> is missing"))?;
    t.parse()
        .map_err(|_| format!("<{name}> is {:?}, not a number", shown(&t)))
}

fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(storages: &str, size: u64) -> String {
        format!(
            "<?xml version='1.0' encoding='UTF-8'?>\n<Parallels_disk_image Version=\"1.0\"><Disk_Parameters><Disk_size>{size}</Disk_size><Name>d</Name></Disk_Parameters><StorageData>{storages}</StorageData></Parallels_disk_image>"
        )
    }

    fn storage(start: u64, end: u64, kind: &str, file: &str) -> String {
        format!(
            "<Storage><Start>{start}</Start><End>{end}</End><Image><GUID>{{x}}</GUID><Type>{kind}</Type><File>{file}</File></Image></Storage>"
        )
    }

    #[test]
    fn parses_split_storages_in_order() {
        let x = xml(
            &(storage(0, 8, "Plain", "a.hds") + &storage(8, 20, "Compressed", "b.hds")),
            20,
        );
        assert!(looks_like_descriptor(x.as_bytes()));
        let d = parse_descriptor(x.as_bytes()).unwrap();
        assert_eq!(d.disk_sectors, 20);
        assert_eq!(d.name.as_deref(), Some("d"));
        assert_eq!(d.storages.len(), 2);
        assert_eq!(d.storages[0].kind, StorageKind::Plain);
        assert_eq!(d.storages[1].kind, StorageKind::Compressed);
        assert_eq!((d.storages[1].start, d.storages[1].end), (8, 20));
        assert_eq!(d.storages[1].file, "b.hds");
    }

    #[test]
    fn refuses_gaps_overlaps_and_other_roots() {
        let gap = xml(
            &(storage(0, 8, "Plain", "a") + &storage(9, 20, "Plain", "b")),
            20,
        );
        assert!(
            parse_descriptor(gap.as_bytes())
                .unwrap_err()
                .contains("storage 1")
        );
        let short = xml(&storage(0, 8, "Plain", "a"), 20);
        assert!(
            parse_descriptor(short.as_bytes())
                .unwrap_err()
                .contains("Disk_size")
        );
        let none = xml("", 20);
        assert!(parse_descriptor(none.as_bytes()).is_err());
        assert!(!looks_like_descriptor(b"<Envelope/>"));
        assert!(parse_descriptor(b"<Envelope><Parallels_disk_image/></Envelope>").is_err());
        let dtd = "<!DOCTYPE x [<!ENTITY a 'b'>]><Parallels_disk_image/>";
        assert!(parse_descriptor(dtd.as_bytes()).is_err());
    }
}
