//! The OVF descriptor (DMTF DSP0243): the XML file of an OVF package or OVA that names the
//! package's files, the virtual disks they hold and the virtual machines that use them.
//!
//! [`parse`] turns descriptor bytes into an [`Envelope`]: `References/File`, `DiskSection/Disk`,
//! every `VirtualSystem` (also those inside nested `VirtualSystemCollection`s) with its guest OS,
//! CPU count, memory, disk attachments and network adapters, plus the [`Problem`]s found on the
//! way. It reads OVF 0.9 (VMware's `http://www.vmware.com/schema/ovf/1/envelope`, where sections
//! are `<Section xsi:type="ovf:DiskSection_Type">` and systems `<Content xsi:type=...>`), 1.x
//! and 2.x (VirtualBox's `StorageItem`/`EthernetPortItem` with sasd/epasd properties) as
//! VMware ovftool, VirtualBox, oVirt and virt-v2v write them. Elements are matched by
//! local name in an OVF namespace (or none: some writers leave children unprefixed) and item
//! properties in a CIM namespace (rasd, sasd, epasd, vssd); vendor elements are skipped.
//!
//! Safety: the descriptor is untrusted. Input over [`MAX_DESCRIPTOR_BYTES`] is refused before
//! parsing; a `<!DOCTYPE>` is refused outright (roxmltree with `allow_dtd: false`), so no
//! entity is ever declared, expanded or fetched; the XML node count is capped. Hrefs are
//! returned verbatim and never judged or opened here: the package driver does that centrally.
//! Output size is bounded too: at most [`MAX_RECORDS`] files, disks, systems, attachments and
//! adapters together, and strings that are copied into many records are shortened.
//!
//! Hardware is read from the first `VirtualHardwareSection` of a system, for the default
//! `DeploymentOptionSection` configuration (`ovf:default="true"`, else the first one); items
//! with `ovf:bound="min"`/`"max"` are ignored. A `${name}` capacity is resolved from the
//! default value of the `ProductSection` property of that name. oVirt quirks are accepted
//! quietly: the 1.x namespace with a trailing slash, the VM UUID as OS id, the nil UUID as a
//! disk's `Parent`, and bare `image-group/image` host resources (resolved through `fileRef`).
//!
//! Problem codes (all [`Severity::Warning`] unless noted); stable identifiers:
//! - `ovf-dangling-ref`: a Disk's `fileRef`/`parentRef`, an item's `HostResource` or `Parent`
//!   names nothing in the descriptor (or a hard disk item has no `HostResource`).
//! - `ovf-duplicate-id`: two Files, Disks, VirtualSystems or hardware items share one id.
//! - `ovf-missing-attribute`: a File without `ovf:id`/`ovf:href`, a Disk without `ovf:diskId`
//!   (skipped), or a VirtualSystem without `ovf:id`.
//! - `ovf-missing-capacity`: a Disk with no (resolvable) `ovf:capacity`.
//! - `ovf-unknown-units`: allocation units that are not a byte multiple vmdisk understands;
//!   [`Severity::Info`] when memory has no units and MiB is assumed.
//! - `ovf-size-overflow`: capacity or memory times its units does not fit in 64 bits.
//! - `ovf-bad-value`: a number that is not one (size, chunkSize, populatedSize, CPU count, ...).
//! - `ovf-no-virtual-system`: the envelope describes no VirtualSystem.
//! - `ovf-nesting-limit`: VirtualSystemCollections nest deeper than [`MAX_COLLECTION_DEPTH`];
//!   what lies deeper is ignored.
//! - `ovf-too-many`: more than [`MAX_RECORDS`] records; the rest is ignored.
//! - `ovf-version-mismatch` ([`Severity::Info`]): `ovf:version` disagrees with the namespace
//!   (oVirt and virt-v2v write "0.9" with the 1.x namespace).
//! - `ovf-problems-truncated` ([`Severity::Info`]): more than [`MAX_PROBLEMS`] problems; the
//!   rest are counted, not listed.

use crate::error::{Error, Result};
use crate::report::{Finding, Severity};
use roxmltree::{Document, Node, ParsingOptions};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Descriptors are a few KiB to a few hundred KiB; anything bigger is refused unparsed.
pub const MAX_DESCRIPTOR_BYTES: usize = 16 << 20;
/// XML nodes (elements, text, comments) at most; real descriptors have a few thousand.
pub const MAX_NODES: u32 = 1 << 18;
/// Collections nested deeper than this are ignored (exporters nest at most one or two).
pub const MAX_COLLECTION_DEPTH: usize = 8;
/// Files + disks + systems + attachments + adapters kept at most.
pub const MAX_RECORDS: usize = 16 << 10;
/// Problems listed at most.
pub const MAX_PROBLEMS: usize = 100;
/// Descriptive strings are cut to this many bytes.
const MAX_TEXT: usize = 1024;
/// Strings copied into many records (collection id, controller model) are cut shorter.
const MAX_SHARED_TEXT: usize = 128;
/// Input-derived names quoted in problem and error messages are cut to this.
const MAX_QUOTED: usize = 64;

const OVF_09: &str = "http://www.vmware.com/schema/ovf/1/envelope";
const OVF_1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
const OVF_2: &str = "http://schemas.dmtf.org/ovf/envelope/2";
const OVF_FUTURE_PREFIX: &str = "http://schemas.dmtf.org/ovf/envelope/";
/// rasd, sasd, epasd and vssd all live here (VirtualBox appends ".xsd" to sasd/epasd).
const CIM_PREFIX: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const VBOX: &str = "http://www.virtualbox.org/ovf/machine";
/// oVirt's "no parent" for a disk item.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// A non-fatal problem of the descriptor: exactly a report finding.
pub type Problem = Finding;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Envelope {
    /// "0.9", "1.x" or "2.x" from the namespace, or the `ovf:version` attribute when it agrees
    /// with the namespace (e.g. "1.0", "2.0").
    pub version: String,
    /// The `DeploymentOptionSection` configuration whose hardware is reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// `References/File`, document order.
    pub files: Vec<FileRef>,
    /// `DiskSection/Disk`, document order.
    pub disks: Vec<DiskDef>,
    /// Every VirtualSystem, also those in (nested) collections, document order.
    pub systems: Vec<VirtualSystem>,
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileRef {
    pub id: String,
    /// Verbatim: the package driver judges and resolves it.
    pub href: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `ovf:compression` verbatim: "gzip", "identity" (none), ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Set when the file is stored as `href.000000000`, `href.000000001`, ... of this size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskDef {
    /// `ovf:diskId`.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_ref: Option<String>,
    /// Bytes: `ovf:capacity` times `ovf:capacityAllocationUnits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub populated_size: Option<u64>,
    /// `ovf:format` URI, e.g.
    /// `http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VirtualSystem {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ovf:id` of the enclosing VirtualSystemCollection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// `vssd:VirtualSystemType`, e.g. "vmx-07", "virtualbox-2.2".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    pub disks: Vec<DiskAttachment>,
    pub nics: Vec<Nic>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Os {
    /// `ovf:id`: the CIM_OperatingSystem OsType code (e.g. 94 Ubuntu 64-bit, 101 other Linux 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `vmw:osType` / `ovf:osType`, or VirtualBox's `vbox:OSType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
}

/// What a drive's `HostResource` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachTo {
    /// A DiskSection Disk (`ovf:/disk/ID`, `/disk/ID`, oVirt's bare image path).
    Disk,
    /// A References File used directly (`ovf:/file/ID`), typically an ISO in a CD drive.
    File,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskAttachment {
    /// A Disk id, or a File id when `target` is `file`.
    pub disk_id: String,
    pub target: AttachTo,
    /// "disk", "cdrom" or "floppy", from the drive item's ResourceType (17, 15/16, 14).
    pub device: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<Controller>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_on_parent: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Controller {
    /// "ide", "scsi", "sata", "nvme", "virtio-scsi", "fc", "iscsi", "usb", "other-storage",
    /// ... or "resource-type-N" for a CIM ResourceType vmdisk has no name for.
    pub kind: String,
    /// `ResourceSubType` verbatim: "lsilogic", "VirtualSCSI", "PIIX4", "AHCI", ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The controller's `Address` (its bus number), else its `BusNumber`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Nic {
    /// The logical network (`Connection`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `ResourceSubType`: "E1000", "VmxNet3", "PCNet32", "virtio", ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `ElementName` (or `Caption` in OVF 0.9 and VirtualBox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Address`, which CIM defines as the MAC address for an Ethernet adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Parses an OVF descriptor. Errors only when the bytes are not an OVF envelope vmdisk can
/// read safely; everything else wrong with it lands in [`Envelope::problems`].
pub fn parse(xml: &[u8]) -> Result<Envelope> {
    let text = decode(xml)?;
    let doc = parse_xml(&text)?;
    let root = doc.root_element();
    let family = envelope_family(root)?;

    let mut problems = Problems::default();
    let version = envelope_version(root, family, &mut problems);
    let mut budget = Budget::default();
    let layout = layout(root, &mut problems);
    let configuration = default_configuration(root);
    let properties = Properties::collect(root);

    let files = read_files(root, &mut budget, &mut problems);
    let disks = read_disks(
        &layout.disk_nodes,
        &files,
        &properties,
        &mut budget,
        &mut problems,
    );
    let index = Index::new(&files, &disks);
    let mut systems = Vec::new();
    let mut system_ids = BTreeSet::new();
    for (node, collection) in &layout.systems {
        if !budget.take(&mut problems) {
            break;
        }
        let sys = read_system(
            *node,
            *collection,
            configuration,
            &index,
            &mut budget,
            &mut problems,
        );
        if !sys.id.is_empty() && !system_ids.insert(sys.id.clone()) {
            problems.warn(
                "ovf-duplicate-id",
                format!("two VirtualSystems have the id {}", quoted(&sys.id)),
            );
        }
        systems.push(sys);
    }
    if systems.is_empty() {
        problems.warn(
            "ovf-no-virtual-system",
            "the OVF descriptor describes no VirtualSystem",
        );
    }
    Ok(Envelope {
        version,
        configuration: configuration.map(|c| capped(c, MAX_TEXT)),
        files,
        disks,
        systems,
        problems: problems.finish(),
    })
}

/// "byte", "byte * 2^30", "byte*2^20", "byte * 1024^3", "gibibyte" style (DSP0004 programmatic
/// units) and the old "KiloBytes"/"MegaBytes"/"GigaBytes"/"TeraBytes" (and "KB".."TB") words,
/// which exporters mean as powers of 1024: the multiplier in bytes, None when unknown, not a
/// byte multiple (e.g. "hertz * 10^6") or too big for 64 bits.
pub fn allocation_units(units: &str) -> Option<u64> {
    let units = units.trim();
    if let Some(m) = legacy_unit_word(units) {
        return Some(m);
    }
    let mut multiplier: u64 = 1;
    let mut saw_byte = false;
    for factor in units.split('*').map(str::trim) {
        let m = match byte_unit(factor) {
            Some(m) if !saw_byte => {
                saw_byte = true;
                m
            }
            Some(_) => return None,
            None => number_factor(factor)?,
        };
        multiplier = multiplier.checked_mul(m)?;
    }
    saw_byte.then_some(multiplier)
}

fn legacy_unit_word(word: &str) -> Option<u64> {
    let shift = match word.to_ascii_lowercase().as_str() {
        "bytes" => 0,
        "kilobytes" | "kb" => 10,
        "megabytes" | "mb" => 20,
        "gigabytes" | "gb" => 30,
        "terabytes" | "tb" => 40,
        _ => return None,
    };
    Some(1 << shift)
}

/// "byte" with an optional DSP0004 decimal or binary prefix ("kilobyte", "gibibyte").
fn byte_unit(factor: &str) -> Option<u64> {
    let lower = factor.to_ascii_lowercase();
    let prefix = lower.strip_suffix("byte")?;
    let (base, exp): (u64, u32) = match prefix {
        "" => return Some(1),
        "kilo" => (10, 3),
        "mega" => (10, 6),
        "giga" => (10, 9),
        "tera" => (10, 12),
        "peta" => (10, 15),
        "exa" => (10, 18),
        "kibi" => (2, 10),
        "mebi" => (2, 20),
        "gibi" => (2, 30),
        "tebi" => (2, 40),
        "pebi" => (2, 50),
        "exbi" => (2, 60),
        _ => return None,
    };
    base.checked_pow(exp)
}

/// "1024", "2^30", "2 ^ 30": a positive whole multiplier.
fn number_factor(factor: &str) -> Option<u64> {
    let (base, exp) = match factor.split_once('^') {
        Some((b, e)) => (b.trim(), Some(e.trim())),
        None => (factor, None),
    };
    let base = digits(base)?;
    let value = match exp {
        Some(e) => base.checked_pow(u32::try_from(digits(e)?).ok()?)?,
        None => base,
    };
    (value > 0).then_some(value)
}

/// Plain ASCII digits only (no sign, no spaces), as u64.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Bytes to a document: size cap, encoding, DTD refusal, node cap.

fn decode(xml: &[u8]) -> Result<Cow<'_, str>> {
    if xml.len() > MAX_DESCRIPTOR_BYTES {
        return Err(Error::unsupported(format!(
            "OVF descriptor is {} bytes; vmdisk reads descriptors of up to {} MiB",
            xml.len(),
            MAX_DESCRIPTOR_BYTES >> 20
        )));
    }
    let text: Cow<'_, str> = if let Some(rest) = xml.strip_prefix(b"\xef\xbb\xbf") {
        Cow::Borrowed(utf8(rest)?)
    } else if let Some(rest) = xml.strip_prefix(b"\xff\xfe") {
        Cow::Owned(utf16(rest, u16::from_le_bytes)?)
    } else if let Some(rest) = xml.strip_prefix(b"\xfe\xff") {
        Cow::Owned(utf16(rest, u16::from_be_bytes)?)
    } else {
        Cow::Borrowed(utf8(xml)?)
    };
    match text.trim_start().chars().next() {
        None => Err(Error::not_an_image("the OVF descriptor is empty")),
        Some('<') => Ok(text),
        Some(_) => Err(Error::not_an_image(
            "the OVF descriptor is not XML (it does not start with '<')",
        )),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::not_an_image(format!(
            "the OVF descriptor is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// UTF-16 with a byte order mark: allowed by XML, written by some Windows tools.
fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String> {
    let units = bytes
        .chunks(2)
        .map(|c| unit([c[0], *c.get(1).unwrap_or(&0)]));
    char::decode_utf16(units)
        .collect::<std::result::Result<String, _>>()
        .map_err(|_| Error::not_an_image("the OVF descriptor is not valid UTF-16 text"))
}

fn parse_xml(text: &str) -> Result<Document<'_>> {
    let options = ParsingOptions {
        // The default, spelled out: no DTD means no entity is declared, expanded or fetched.
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(xml_error)?;
    // roxmltree lets an internal-subset-free `<!DOCTYPE x SYSTEM "...">` through (it never
    // reads it); no exporter writes one, so refuse that too rather than reason about it.
    if text[..doc.root_element().range().start].contains("<!DOCTYPE") {
        return Err(dtd_refused());
    }
    Ok(doc)
}

fn xml_error(e: roxmltree::Error) -> Error {
    use roxmltree::Error as X;
    match e {
        X::DtdDetected => dtd_refused(),
        X::NodesLimitReached | X::AttributesLimitReached | X::NamespacesLimitReached => {
            Error::unsupported(format!(
                "the OVF descriptor has more than {MAX_NODES} XML nodes, attributes or namespaces; \
                 vmdisk refuses descriptors that large"
            ))
        }
        e => Error::corrupt(format!(
            "the OVF descriptor is not well-formed XML: {}",
            one_line(&e.to_string())
        )),
    }
}

fn dtd_refused() -> Error {
    Error::unsupported(
        "the OVF descriptor contains a DTD (<!DOCTYPE>); vmdisk refuses DTDs so that no entity \
         is expanded or reads host files",
    )
}

/// The OVF family of the root element, or why this is not an OVF envelope.
fn envelope_family(root: Node) -> Result<&'static str> {
    let name = root.tag_name().name();
    let ns = root.tag_name().namespace();
    if name != "Envelope" {
        return Err(Error::not_an_image(format!(
            "not an OVF descriptor: the root element is {}, not an OVF Envelope",
            quoted(name)
        )));
    }
    match ns.map(|ns| (ns, family(ns))) {
        Some((_, Some(family))) => Ok(family),
        Some((ns, None)) if ns.starts_with(OVF_FUTURE_PREFIX) => Err(Error::unsupported(format!(
            "OVF descriptor of an unknown OVF version (namespace {}); \
             vmdisk reads OVF 0.9, 1.x and 2.x",
            quoted(ns)
        ))),
        Some((ns, None)) => Err(Error::not_an_image(format!(
            "not an OVF descriptor: <Envelope> is in namespace {}, not an OVF envelope namespace",
            quoted(ns)
        ))),
        None => Err(Error::not_an_image(format!(
            "not an OVF descriptor: <Envelope> has no namespace (OVF uses {OVF_1} or {OVF_2})"
        ))),
    }
}

fn family(ns: &str) -> Option<&'static str> {
    // oVirt and virt-v2v write the 1.x namespace with a trailing slash.
    match ns.strip_suffix('/').unwrap_or(ns) {
        OVF_09 => Some("0.9"),
        OVF_1 => Some("1.x"),
        OVF_2 => Some("2.x"),
        _ => None,
    }
}

/// `ovf:version` when it belongs to the namespace's family ("1.1" for envelope/1), else the
/// family.
fn envelope_version(root: Node, family: &'static str, problems: &mut Problems) -> String {
    let Some(attr) = ovf_attr(root, "version").map(str::trim) else {
        return family.to_string();
    };
    let major = family.split('.').next().unwrap_or_default();
    let agrees = if family == "0.9" {
        attr == "0.9"
    } else {
        attr.split('.').next() == Some(major)
            && attr.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    if agrees {
        return capped(attr, 16);
    }
    problems.push(
        "ovf-version-mismatch",
        Severity::Info,
        format!(
            "ovf:version is {} but the namespace is OVF {family}; read as OVF {family}",
            quoted(attr)
        ),
    );
    family.to_string()
}

// ---------------------------------------------------------------------------------------------
// Namespaces, attributes and values.

fn is_ovf_ns(ns: &str) -> bool {
    family(ns).is_some()
}

/// An OVF element: in an OVF namespace, or in none (writers that bind only `ovf:` and leave
/// children unprefixed).
fn is_ovf_element(node: Node) -> bool {
    node.is_element() && node.tag_name().namespace().is_none_or(is_ovf_ns)
}

/// An item property: rasd/sasd/epasd (any CIM class), or by mistake OVF or no namespace.
fn is_property_element(node: Node) -> bool {
    node.is_element()
        && node
            .tag_name()
            .namespace()
            .is_none_or(|ns| ns.starts_with(CIM_PREFIX) || is_ovf_ns(ns))
}

fn ovf_children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|c| is_ovf_element(*c))
}

fn ovf_child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    ovf_children(node).find(|c| c.tag_name().name() == name)
}

/// What an OVF element is: its local name, or for OVF 0.9's `<Section>`/`<Content>` the
/// `xsi:type` without "ovf:" and "_Type" (`ovf:DiskSection_Type` -> `DiskSection`).
fn kind<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    if !is_ovf_element(node) {
        return None;
    }
    let name = node.tag_name().name();
    if name != "Section" && name != "Content" {
        return Some(name);
    }
    let ty = node.attribute((XSI, "type"))?;
    let local = ty.rsplit(':').next()?;
    local.strip_suffix("_Type")
}

/// An attribute in an OVF namespace, else the same name without namespace (both are written).
fn ovf_attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    let mut plain = None;
    for a in node.attributes().filter(|a| a.name() == name) {
        match a.namespace() {
            Some(ns) if is_ovf_ns(ns) => return Some(a.value()),
            None => plain = plain.or(Some(a.value())),
            Some(_) => {}
        }
    }
    plain
}

/// A non-empty, trimmed attribute value.
fn attr_value<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    ovf_attr(node, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An element's trimmed text, None when empty.
fn text<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.text().map(str::trim).filter(|t| !t.is_empty())
}

/// A string cut to at most `max` bytes at a character boundary.
fn capped(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// An input string fit for a one-line message: quoted, short, no control characters.
fn quoted(s: &str) -> String {
    format!("\"{}\"", one_line(&capped(s, MAX_QUOTED)))
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A decimal attribute or element value; a non-number is a problem and None.
fn number<T: std::str::FromStr>(
    raw: Option<&str>,
    what: &str,
    problems: &mut Problems,
) -> Option<T> {
    let raw = raw?;
    let parsed = raw.parse().ok();
    if parsed.is_none() {
        problems.warn(
            "ovf-bad-value",
            format!("{what} is {}, not a number", quoted(raw)),
        );
    }
    parsed
}

// ---------------------------------------------------------------------------------------------
// Problems and the output budget.

#[derive(Default)]
struct Problems {
    list: Vec<Finding>,
    dropped: usize,
}

impl Problems {
    fn push(&mut self, code: &'static str, severity: Severity, message: impl Into<String>) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(Finding::new(
                code,
                severity,
                format!("OVF descriptor: {}", message.into()),
            ));
        } else {
            self.dropped += 1;
        }
    }

    fn warn(&mut self, code: &'static str, message: impl Into<String>) {
        self.push(code, Severity::Warning, message);
    }

    fn finish(mut self) -> Vec<Finding> {
        if self.dropped > 0 {
            self.list.push(Finding::new(
                "ovf-problems-truncated",
                Severity::Info,
                format!("OVF descriptor: {} more problems not listed", self.dropped),
            ));
        }
        self.list
    }
}

/// Caps the records kept, so a hostile descriptor cannot make the report huge.
#[derive(Default)]
struct Budget {
    used: usize,
    reported: bool,
}

impl Budget {
    fn take(&mut self, problems: &mut Problems) -> bool {
        if self.used < MAX_RECORDS {
            self.used += 1;
            return true;
        }
        if !self.reported {
            self.reported = true;
            problems.warn(
                "ovf-too-many",
                format!(
                    "more than {MAX_RECORDS} files, disks, systems and devices; the rest is ignored"
                ),
            );
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope layout: where the DiskSections and VirtualSystems are.

struct Layout<'a, 'i> {
    disk_nodes: Vec<Node<'a, 'i>>,
    /// Each system with the id of its enclosing collection.
    systems: Vec<(Node<'a, 'i>, Option<&'a str>)>,
}

fn layout<'a, 'i>(root: Node<'a, 'i>, problems: &mut Problems) -> Layout<'a, 'i> {
    let mut layout = Layout {
        disk_nodes: Vec::new(),
        systems: Vec::new(),
    };
    walk_content(root, 0, None, &mut layout, problems);
    layout
}

/// Visits the sections and content of the envelope or of a collection (recursion is bounded by
/// MAX_COLLECTION_DEPTH).
fn walk_content<'a, 'i>(
    node: Node<'a, 'i>,
    depth: usize,
    collection: Option<&'a str>,
    layout: &mut Layout<'a, 'i>,
    problems: &mut Problems,
) {
    for child in ovf_children(node) {
        match kind(child) {
            _ if is_disk_section(child) => layout.disk_nodes.push(child),
            Some("VirtualSystem") => {
                layout.systems.push((child, collection));
                // DSP0243 puts disks at the envelope; some writers put them in the system.
                layout
                    .disk_nodes
                    .extend(ovf_children(child).filter(|c| is_disk_section(*c)));
            }
            Some("VirtualSystemCollection") if depth < MAX_COLLECTION_DEPTH => {
                walk_content(child, depth + 1, attr_value(child, "id"), layout, problems)
            }
            Some("VirtualSystemCollection") => problems.warn(
                "ovf-nesting-limit",
                format!(
                    "VirtualSystemCollections nest deeper than {MAX_COLLECTION_DEPTH} levels; \
                     what lies deeper is ignored"
                ),
            ),
            _ => {}
        }
    }
}

/// OVF 2.0 adds SharedDiskSection, whose Disks are read like the others.
fn is_disk_section(node: Node) -> bool {
    matches!(kind(node), Some("DiskSection" | "SharedDiskSection"))
}

/// The default DeploymentOptionSection configuration: `ovf:default="true"`, else the first.
fn default_configuration<'a>(root: Node<'a, '_>) -> Option<&'a str> {
    let section = ovf_children(root).find(|c| kind(*c) == Some("DeploymentOptionSection"))?;
    let configs: Vec<_> = ovf_children(section)
        .filter(|c| c.tag_name().name() == "Configuration")
        .filter_map(|c| Some((attr_value(c, "id")?, attr_value(c, "default"))))
        .collect();
    let default = configs
        .iter()
        .find(|(_, d)| matches!(*d, Some("true" | "1")));
    default.or(configs.first()).map(|(id, _)| *id)
}

/// ProductSection property defaults, for `ovf:capacity="${name}"`.
struct Properties<'a> {
    /// Property id (the key, and "class.key.instance" when the section has a class or
    /// instance) -> default value; None when two properties of one id disagree.
    values: BTreeMap<String, Option<&'a str>>,
}

impl<'a> Properties<'a> {
    fn collect(root: Node<'a, '_>) -> Self {
        let mut values: BTreeMap<String, Option<&'a str>> = BTreeMap::new();
        for section in root
            .descendants()
            .filter(|n| kind(*n) == Some("ProductSection"))
        {
            let class = attr_value(section, "class");
            let instance = attr_value(section, "instance");
            for prop in ovf_children(section).filter(|c| c.tag_name().name() == "Property") {
                let (Some(key), Some(value)) = (attr_value(prop, "key"), attr_value(prop, "value"))
                else {
                    continue;
                };
                let full: Vec<&str> = [class, Some(key), instance].into_iter().flatten().collect();
                for id in [key.to_string(), full.join(".")] {
                    let slot = values.entry(id).or_insert(Some(value));
                    if *slot != Some(value) {
                        *slot = None;
                    }
                }
            }
        }
        Properties { values }
    }

    fn get(&self, id: &str) -> Option<&'a str> {
        self.values.get(id).copied().flatten()
    }
}

// ---------------------------------------------------------------------------------------------
// References and DiskSection.

fn read_files(root: Node, budget: &mut Budget, problems: &mut Problems) -> Vec<FileRef> {
    let mut files = Vec::new();
    let mut ids = BTreeSet::new();
    let nodes = ovf_children(root)
        .filter(|c| kind(*c) == Some("References"))
        .flat_map(|r| ovf_children(r).filter(|c| c.tag_name().name() == "File"));
    for node in nodes {
        let Some(file) = read_file(node, problems) else {
            continue;
        };
        if !budget.take(problems) {
            break;
        }
        if !ids.insert(file.id.clone()) {
            problems.warn(
                "ovf-duplicate-id",
                format!("two Files have the id {}", quoted(&file.id)),
            );
        }
        files.push(file);
    }
    files
}

fn read_file(node: Node, problems: &mut Problems) -> Option<FileRef> {
    let (Some(id), Some(href)) = (
        attr_value(node, "id"),
        ovf_attr(node, "href").filter(|h| !h.is_empty()),
    ) else {
        problems.warn(
            "ovf-missing-attribute",
            "a File has no ovf:id or no ovf:href; it is ignored",
        );
        return None;
    };
    let what = |attr: &str| format!("ovf:{attr} of File {}", quoted(id));
    let mut chunk_size = number::<u64>(attr_value(node, "chunkSize"), &what("chunkSize"), problems);
    if chunk_size == Some(0) {
        problems.warn("ovf-bad-value", format!("{} is 0", what("chunkSize")));
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

fn read_disks(
    nodes: &[Node],
    files: &[FileRef],
    properties: &Properties,
    budget: &mut Budget,
    problems: &mut Problems,
) -> Vec<DiskDef> {
    let mut disks = Vec::new();
    let mut ids = BTreeSet::new();
    let disk_nodes = nodes
        .iter()
        .flat_map(|s| ovf_children(*s).filter(|c| c.tag_name().name() == "Disk"));
    for node in disk_nodes {
        let Some(disk) = read_disk(node, properties, problems) else {
            continue;
        };
        if !budget.take(problems) {
            break;
        }
        if !ids.insert(disk.id.clone()) {
            problems.warn(
                "ovf-duplicate-id",
                format!("two Disks have the id {}", quoted(&disk.id)),
            );
        }
        disks.push(disk);
    }
    let file_ids: BTreeSet<&str> = files.iter().map(|f| f.id.as_str()).collect();
    for disk in &disks {
        if let Some(f) = disk.file_ref.as_deref().filter(|f| !file_ids.contains(f)) {
            problems.warn(
                "ovf-dangling-ref",
                format!(
                    "Disk {} names file {}, which References does not list",
                    quoted(&disk.id),
                    quoted(f)
                ),
            );
        }
        if let Some(p) = disk.parent_ref.as_deref().filter(|p| !ids.contains(*p)) {
            problems.warn(
                "ovf-dangling-ref",
                format!(
                    "Disk {} names parent disk {}, which DiskSection does not list",
                    quoted(&disk.id),
                    quoted(p)
                ),
            );
        }
    }
    disks
}

fn read_disk(node: Node, properties: &Properties, problems: &mut Problems) -> Option<DiskDef> {
    let Some(id) = attr_value(node, "diskId") else {
        problems.warn(
            "ovf-missing-attribute",
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
fn disk_capacity(
    node: Node,
    id: &str,
    properties: &Properties,
    problems: &mut Problems,
) -> Option<u64> {
    let Some(raw) = attr_value(node, "capacity") else {
        problems.warn(
            "ovf-missing-capacity",
            format!("Disk {} has no ovf:capacity", quoted(id)),
        );
        return None;
    };
    let value = match raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(name) => {
            let Some(value) = properties.get(name.trim()) else {
                problems.warn(
                    "ovf-missing-capacity",
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
                "ovf-unknown-units",
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
fn quantity<'s>(
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
fn whole_number(text: &str, what: &str, problems: &mut Problems) -> Option<u64> {
    let n = digits(text);
    if n.is_none() {
        let (code, why) = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            ("ovf-size-overflow", "does not fit in 64 bits")
        } else {
            ("ovf-bad-value", "is not a number")
        };
        problems.warn(code, format!("{what} ({}) {why}", quoted(text)));
    }
    n
}

fn byte_units(units: &str, what: &str, problems: &mut Problems) -> Option<u64> {
    let m = allocation_units(units);
    if m.is_none() {
        problems.warn(
            "ovf-unknown-units",
            format!(
                "{what} is in units {}, which vmdisk does not know as a multiple of bytes",
                quoted(units)
            ),
        );
    }
    m
}

fn scaled(count: u64, units: u64, what: &str, problems: &mut Problems) -> Option<u64> {
    let bytes = count.checked_mul(units);
    if bytes.is_none() {
        problems.warn(
            "ovf-size-overflow",
            format!("{what} ({count} x {units} bytes) does not fit in 64 bits"),
        );
    }
    bytes
}

/// Disk and file ids for resolving HostResource.
struct Index<'d> {
    disks: BTreeSet<&'d str>,
    files: BTreeSet<&'d str>,
    /// File id -> the first Disk stored in it (oVirt's HostResource names the file path).
    disk_of_file: BTreeMap<&'d str, &'d str>,
}

impl<'d> Index<'d> {
    fn new(files: &'d [FileRef], disks: &'d [DiskDef]) -> Self {
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
    fn resolve(&self, host: &str) -> (AttachTo, String, bool) {
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

// ---------------------------------------------------------------------------------------------
// VirtualSystem: OS and hardware.

fn read_system(
    node: Node,
    collection: Option<&str>,
    configuration: Option<&str>,
    index: &Index,
    budget: &mut Budget,
    problems: &mut Problems,
) -> VirtualSystem {
    let id = attr_value(node, "id").unwrap_or_default();
    if id.is_empty() {
        problems.warn("ovf-missing-attribute", "a VirtualSystem has no ovf:id");
    }
    let mut system = VirtualSystem {
        id: id.to_string(),
        name: ovf_child(node, "Name")
            .and_then(text)
            .map(|n| capped(n, MAX_TEXT)),
        collection: collection.map(|c| capped(c, MAX_SHARED_TEXT)),
        hardware_family: None,
        os: ovf_children(node)
            .find(|c| kind(*c) == Some("OperatingSystemSection"))
            .map(read_os),
        cpus: None,
        memory: None,
        disks: Vec::new(),
        nics: Vec::new(),
    };
    // DSP0243 allows one VirtualHardwareSection per platform; the first is the primary one.
    if let Some(hw) = ovf_children(node).find(|c| kind(*c) == Some("VirtualHardwareSection")) {
        read_hardware(hw, configuration, index, &mut system, budget, problems);
    }
    system
}

fn read_os(section: Node) -> Os {
    let os_type = section
        .attributes()
        .find(|a| a.name() == "osType")
        .map(|a| a.value().trim())
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let vbox = section.children().find(|c| {
                c.tag_name().namespace() == Some(VBOX) && c.tag_name().name() == "OSType"
            });
            vbox.and_then(text)
        });
    Os {
        // oVirt puts the VM's UUID here instead of a CIM code: no number, no complaint.
        id: attr_value(section, "id").and_then(|id| id.parse().ok()),
        description: ovf_child(section, "Description")
            .and_then(text)
            .map(|d| capped(d, MAX_TEXT)),
        os_type: os_type.map(|t| capped(t, MAX_TEXT)),
    }
}

/// One hardware item (`Item`, `StorageItem`, `EthernetPortItem`) by its CIM properties.
#[derive(Default)]
struct Item<'a> {
    instance_id: Option<&'a str>,
    resource_type: Option<&'a str>,
    sub_type: Option<&'a str>,
    host_resource: Option<&'a str>,
    parent: Option<&'a str>,
    address: Option<&'a str>,
    address_on_parent: Option<&'a str>,
    bus_number: Option<&'a str>,
    allocation_units: Option<&'a str>,
    virtual_quantity: Option<&'a str>,
    connection: Option<&'a str>,
    name: Option<&'a str>,
    configuration: Option<&'a str>,
    bound: Option<&'a str>,
}

impl<'a> Item<'a> {
    fn read(node: Node<'a, '_>) -> Self {
        let mut item = Item {
            configuration: attr_value(node, "configuration"),
            bound: attr_value(node, "bound"),
            ..Item::default()
        };
        for child in node.children().filter(|c| is_property_element(*c)) {
            let slot = match child.tag_name().name() {
                // OVF 0.9 and oVirt spell it InstanceId.
                "InstanceID" | "InstanceId" => &mut item.instance_id,
                "ResourceType" => &mut item.resource_type,
                "ResourceSubType" => &mut item.sub_type,
                "HostResource" => &mut item.host_resource,
                "Parent" => &mut item.parent,
                "Address" => &mut item.address,
                "AddressOnParent" => &mut item.address_on_parent,
                "BusNumber" => &mut item.bus_number,
                "AllocationUnits" => &mut item.allocation_units,
                "VirtualQuantity" => &mut item.virtual_quantity,
                "Connection" => &mut item.connection,
                "ElementName" => &mut item.name,
                // OVF 0.9 and VirtualBox name items by Caption.
                "Caption" if item.name.is_none() => &mut item.name,
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(child);
            }
        }
        item
    }

    fn resource_type(&self) -> Option<u32> {
        self.resource_type.and_then(|t| t.parse().ok())
    }

    /// Who this item is in messages.
    fn label(&self) -> String {
        match self.instance_id {
            Some(id) => format!("item {}", quoted(id)),
            None => "an item without InstanceID".into(),
        }
    }
}

/// Which deployment configurations an item belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// No `ovf:configuration`: every configuration.
    All,
    /// Lists the chosen configuration.
    Chosen,
    /// Lists only other configurations.
    Other,
}

/// The items of a VirtualHardwareSection that apply to `configuration`, document order: a
/// configuration-specific item replaces the general one of the same InstanceID.
fn effective_items<'a>(hw: Node<'a, '_>, configuration: Option<&str>) -> Vec<Item<'a>> {
    let items: Vec<Item> = ovf_children(hw)
        .filter(|c| {
            matches!(
                c.tag_name().name(),
                "Item" | "StorageItem" | "EthernetPortItem"
            )
        })
        .map(Item::read)
        .filter(|i| !matches!(i.bound, Some("min" | "max")))
        .collect();
    let scope = |i: &Item| match i.configuration {
        None => Scope::All,
        Some(list) if configuration.is_some_and(|c| list.split_whitespace().any(|x| x == c)) => {
            Scope::Chosen
        }
        Some(_) => Scope::Other,
    };
    let ids_in = |s: Scope| -> BTreeSet<&str> {
        items
            .iter()
            .filter(|i| scope(i) == s)
            .filter_map(|i| i.instance_id)
            .collect()
    };
    let (chosen, general) = (ids_in(Scope::Chosen), ids_in(Scope::All));
    let mut stand_ins = BTreeSet::new();
    let keep: Vec<bool> = items
        .iter()
        .map(|i| match (scope(i), i.instance_id) {
            (Scope::Chosen, _) => true,
            (Scope::All, Some(id)) => !chosen.contains(id),
            (Scope::All, None) => true,
            // No DeploymentOptionSection to choose from: keep one variant of each item, so the
            // system still has a CPU count and memory.
            (Scope::Other, Some(id)) if configuration.is_none() => {
                !general.contains(id) && stand_ins.insert(id)
            }
            (Scope::Other, _) => false,
        })
        .collect();
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(i, k)| k.then_some(i))
        .collect()
}

fn read_hardware(
    hw: Node,
    configuration: Option<&str>,
    index: &Index,
    system: &mut VirtualSystem,
    budget: &mut Budget,
    problems: &mut Problems,
) {
    system.hardware_family = ovf_child(hw, "System")
        .and_then(|s| {
            s.children()
                .find(|c| is_property_element(*c) && c.tag_name().name() == "VirtualSystemType")
        })
        .and_then(text)
        .map(|t| capped(t, MAX_TEXT));
    let items = effective_items(hw, configuration);
    // Parent lookups see the first item of an InstanceID.
    let mut by_id: BTreeMap<&str, &Item> = BTreeMap::new();
    for item in &items {
        let Some(id) = item.instance_id else { continue };
        if by_id.contains_key(id) {
            problems.warn(
                "ovf-duplicate-id",
                format!(
                    "VirtualSystem {} has two hardware items with InstanceID {}",
                    quoted(&system.id),
                    quoted(id)
                ),
            );
        } else {
            by_id.insert(id, item);
        }
    }
    for item in &items {
        match item.resource_type() {
            Some(3) if system.cpus.is_none() => {
                system.cpus = number(
                    item.virtual_quantity,
                    &format!("the CPU count of {}", item.label()),
                    problems,
                )
            }
            Some(4) if system.memory.is_none() => system.memory = memory(item, problems),
            Some(10 | 11) if budget.take(problems) => system.nics.push(nic(item)),
            // Floppy, CD, DVD and hard disk drives.
            Some(t @ 14..=17) => {
                if let Some(a) = attachment(item, t, &by_id, index, problems)
                    && budget.take(problems)
                {
                    system.disks.push(a);
                }
            }
            _ => {}
        }
    }
}

/// Memory in bytes: VirtualQuantity x AllocationUnits.
fn memory(item: &Item, problems: &mut Problems) -> Option<u64> {
    let what = format!("the memory size of {}", item.label());
    let count = whole_number(item.virtual_quantity?, &what, problems)?;
    let units = match item.allocation_units {
        Some(u) => byte_units(u, &what, problems)?,
        None => {
            // What virt-v2v assumes for every memory quantity.
            problems.push(
                "ovf-unknown-units",
                Severity::Info,
                format!("{what} has no AllocationUnits; MiB assumed"),
            );
            1 << 20
        }
    };
    scaled(count, units, &what, problems)
}

fn nic(item: &Item) -> Nic {
    Nic {
        connection: item.connection.map(|c| capped(c, MAX_TEXT)),
        kind: item.sub_type.map(|k| capped(k, MAX_TEXT)),
        name: item.name.map(|n| capped(n, MAX_TEXT)),
        mac: item.address.map(|m| capped(m, MAX_TEXT)),
    }
}

/// A drive item with the disk or file it holds and the controller it sits on. Drives without
/// HostResource (empty CD and floppy drives) are no attachment.
fn attachment(
    item: &Item,
    resource_type: u32,
    items: &BTreeMap<&str, &Item>,
    index: &Index,
    problems: &mut Problems,
) -> Option<DiskAttachment> {
    let device = match resource_type {
        17 => "disk",
        14 => "floppy",
        _ => "cdrom",
    };
    let Some(host) = item.host_resource else {
        if device == "disk" {
            problems.warn(
                "ovf-dangling-ref",
                format!("hard disk {} has no HostResource", item.label()),
            );
        }
        return None;
    };
    let (target, id, known) = index.resolve(host);
    if !known {
        let table = if target == AttachTo::File {
            "References"
        } else {
            "DiskSection"
        };
        problems.warn(
            "ovf-dangling-ref",
            format!(
                "{} {} uses {}, which {table} does not list",
                device,
                item.label(),
                quoted(host)
            ),
        );
    }
    let controller =
        item.parent
            .filter(|p| *p != NIL_UUID)
            .and_then(|parent| match items.get(parent) {
                Some(c) => Some(controller(c)),
                None => {
                    problems.warn(
                        "ovf-dangling-ref",
                        format!(
                            "{} {} names parent {}, which is no hardware item",
                            device,
                            item.label(),
                            quoted(parent)
                        ),
                    );
                    None
                }
            });
    Some(DiskAttachment {
        disk_id: id,
        target,
        device,
        controller,
        address_on_parent: number(
            item.address_on_parent,
            &format!("the AddressOnParent of {}", item.label()),
            problems,
        ),
    })
}

fn controller(item: &Item) -> Controller {
    let sub = item.sub_type.unwrap_or_default().to_ascii_lowercase();
    let kind = match item.resource_type() {
        Some(5) => "ide".to_string(),
        Some(6) => "scsi".into(),
        Some(7) => "fc".into(),
        Some(8) => "iscsi".into(),
        Some(9) => "infiniband".into(),
        Some(23) => "usb".into(),
        // "Other storage device": VirtualBox and VMware say which in ResourceSubType.
        Some(20) if sub.contains("ahci") || sub.contains("sata") => "sata".into(),
        Some(20) if sub.contains("nvme") => "nvme".into(),
        Some(20) if sub.contains("virtio") => "virtio-scsi".into(),
        Some(20) => "other-storage".into(),
        Some(1) => "other".into(),
        Some(t) => format!("resource-type-{t}"),
        None => "unknown".into(),
    };
    Controller {
        kind,
        model: item.sub_type.map(|m| capped(m, MAX_SHARED_TEXT)),
        // Address may also be a PCI address or such; only a bus number is an index.
        index: item
            .address
            .or(item.bus_number)
            .and_then(|a| a.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn codes(env: &Envelope) -> Vec<&'static str> {
        env.problems.iter().map(|p| p.code).collect()
    }

    fn has(env: &Envelope, code: &str) -> bool {
        env.problems.iter().any(|p| p.code == code)
    }

    /// A minimal OVF 1.0 envelope around `body` (References, DiskSection, systems...).
    fn envelope(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
{body}
</Envelope>"#
        )
    }

    const VS: &str = r#"<VirtualSystem ovf:id="vm"><Info>A virtual machine</Info></VirtualSystem>"#;

    /// What VMware ovftool 4.x writes for a vSphere VM: SCSI lsilogic, VMXNET3, GiB capacity.
    const VMWARE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!--Generated by VMware ovftool 4.4.3 (build-18663434), UTC time: 2023-04-11T09:12:55.107932Z-->
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="web01-disk1.vmdk" ovf:id="file1" ovf:size="1121325568"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="40" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="3221225472"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="web01">
    <Info>A virtual machine</Info>
    <Name>web01</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="ubuntu64Guest">
      <Info>The kind of installed guest operating system</Info>
      <Description>Ubuntu Linux (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>web01</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
        <vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>4096MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>4096</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>VirtualVideoCard</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>24</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="enable3DSupport" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="backing.writeThrough" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="wakeOnLanEnabled" vmw:value="true"/>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

    #[test]
    fn vmware_ovftool_1_0() {
        let env = parse(VMWARE.as_bytes()).unwrap();
        assert_eq!(env.version, "1.x");
        assert_eq!(env.configuration, None);
        assert_eq!(
            env.files,
            [FileRef {
                id: "file1".into(),
                href: "web01-disk1.vmdk".into(),
                size: Some(1_121_325_568),
                compression: None,
                chunk_size: None,
            }]
        );
        assert_eq!(env.disks.len(), 1);
        let d = &env.disks[0];
        assert_eq!(d.id, "vmdisk1");
        assert_eq!(d.file_ref.as_deref(), Some("file1"));
        assert_eq!(d.capacity, Some(40 << 30));
        assert_eq!(d.populated_size, Some(3 << 30));
        assert!(d.format.as_deref().unwrap().ends_with("#streamOptimized"));
        assert_eq!(d.parent_ref, None);

        let vm = &env.systems[0];
        assert_eq!(vm.id, "web01");
        assert_eq!(vm.name.as_deref(), Some("web01"));
        assert_eq!(vm.collection, None);
        assert_eq!(vm.hardware_family.as_deref(), Some("vmx-13"));
        let os = vm.os.as_ref().unwrap();
        assert_eq!(os.id, Some(101));
        assert_eq!(os.description.as_deref(), Some("Ubuntu Linux (64-bit)"));
        assert_eq!(os.os_type.as_deref(), Some("ubuntu64Guest"));
        assert_eq!(vm.cpus, Some(2));
        assert_eq!(vm.memory, Some(4096 << 20));
        assert_eq!(
            vm.disks,
            [DiskAttachment {
                disk_id: "vmdisk1".into(),
                target: AttachTo::Disk,
                device: "disk",
                controller: Some(Controller {
                    kind: "scsi".into(),
                    model: Some("lsilogic".into()),
                    index: Some(0)
                }),
                address_on_parent: Some(0),
            }]
        );
        assert_eq!(
            vm.nics,
            [Nic {
                connection: Some("VM Network".into()),
                kind: Some("VmxNet3".into()),
                name: Some("Network adapter 1".into()),
                mac: None,
            }]
        );
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn serialises_kebab_case_without_nones() {
        let env = parse(VMWARE.as_bytes()).unwrap();
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["disks"][0]["file-ref"], "file1");
        assert_eq!(v["disks"][0]["populated-size"], 3u64 << 30);
        assert!(v["disks"][0].get("parent-ref").is_none());
        assert!(v.get("configuration").is_none());
        assert_eq!(v["systems"][0]["disks"][0]["controller"]["kind"], "scsi");
        assert_eq!(v["systems"][0]["disks"][0]["target"], "disk");
        assert_eq!(v["systems"][0]["disks"][0]["address-on-parent"], 0);
        assert_eq!(v["systems"][0]["os"]["os-type"], "ubuntu64Guest");
        assert_eq!(v["systems"][0]["hardware-family"], "vmx-13");
        assert!(v["systems"][0]["nics"][0].get("mac").is_none());
    }

    /// VirtualBox 6/7 "OVF 1.0" export: Caption instead of ElementName, plain byte capacity,
    /// "MegaBytes", PIIX4 IDE and AHCI SATA, "/disk/" host resources, vbox:OSType.
    const VBOX_1_0: &str = r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="debian12-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="21474836480" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="6b0f8c1e-54b2-4c4a-9b3e-0d1f5f1c2a77"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="debian12">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>debian12</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>2 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>2048 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>2048 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Caption>ideController1</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>5</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>cdrom1</rasd:Caption>
        <rasd:Description>CD-ROM Drive</rasd:Description>
        <rasd:ElementName>cdrom1</rasd:ElementName>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.19-linux" uuid="{0c7f7d1e-1111-4a5b-9c2d-3e4f5a6b7c8d}" name="debian12" OSType="Debian_64">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="2"/>
        <Memory RAMSize="2048"/>
      </Hardware>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"#;

    #[test]
    fn virtualbox_ovf_1_0() {
        let env = parse(VBOX_1_0.as_bytes()).unwrap();
        assert_eq!(env.version, "1.0");
        assert_eq!(env.files[0].href, "debian12-disk001.vmdk");
        assert_eq!(env.files[0].size, None);
        assert_eq!(env.disks[0].capacity, Some(20 << 30));
        let vm = &env.systems[0];
        assert_eq!(vm.id, "debian12");
        assert_eq!(vm.name, None);
        assert_eq!(vm.hardware_family.as_deref(), Some("virtualbox-2.2"));
        let os = vm.os.as_ref().unwrap();
        assert_eq!(
            (os.id, os.os_type.as_deref()),
            (Some(96), Some("Debian_64"))
        );
        assert_eq!(vm.cpus, Some(2));
        assert_eq!(vm.memory, Some(2048 << 20));
        // The empty CD drive holds nothing: no attachment.
        assert_eq!(vm.disks.len(), 1);
        let c = vm.disks[0].controller.as_ref().unwrap();
        assert_eq!(
            (c.kind.as_str(), c.model.as_deref(), c.index),
            ("sata", Some("AHCI"), Some(0))
        );
        assert_eq!(vm.disks[0].disk_id, "vmdisk1");
        assert_eq!(vm.nics[0].kind.as_deref(), Some("E1000"));
        assert_eq!(vm.nics[0].connection.as_deref(), Some("NAT"));
        assert_eq!(
            vm.nics[0].name.as_deref(),
            Some("Ethernet adapter on 'NAT'")
        );
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    /// VirtualBox "OVF 2.0" export: envelope/2, disks as sasd StorageItem (VirtualBox writes
    /// the sasd/epasd namespaces with ".xsd"), NICs as epasd EthernetPortItem.
    const VBOX_2_0: &str = r#"<?xml version="1.0"?>
<Envelope ovf:version="2.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine" xmlns:epasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData.xsd" xmlns:sasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData.xsd">
  <References>
    <File ovf:id="file1" ovf:href="alma9-disk001.vmdk"/>
    <File ovf:id="file2" ovf:href="alma9-disk002.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="10737418240" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="a1b2c3d4-0000-4000-8000-000000000001"/>
    <Disk ovf:capacity="1073741824" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="a1b2c3d4-0000-4000-8000-000000000002"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="Bridged">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="alma9">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="80">
      <Info>The kind of installed guest operating system</Info>
      <Description>RedHat_64</Description>
      <vbox:OSType ovf:required="false">RedHat_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>alma9</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>4 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>8192 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>8192</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <StorageItem>
        <sasd:AddressOnParent>0</sasd:AddressOnParent>
        <sasd:Caption>disk1</sasd:Caption>
        <sasd:Description>Disk Image</sasd:Description>
        <sasd:HostResource>/disk/vmdisk1</sasd:HostResource>
        <sasd:InstanceID>4</sasd:InstanceID>
        <sasd:Parent>3</sasd:Parent>
        <sasd:ResourceType>17</sasd:ResourceType>
      </StorageItem>
      <StorageItem>
        <sasd:AddressOnParent>1</sasd:AddressOnParent>
        <sasd:Caption>disk2</sasd:Caption>
        <sasd:Description>Disk Image</sasd:Description>
        <sasd:HostResource>/disk/vmdisk2</sasd:HostResource>
        <sasd:InstanceID>5</sasd:InstanceID>
        <sasd:Parent>3</sasd:Parent>
        <sasd:ResourceType>17</sasd:ResourceType>
      </StorageItem>
      <EthernetPortItem>
        <epasd:AutomaticAllocation>true</epasd:AutomaticAllocation>
        <epasd:Caption>Ethernet adapter on 'Bridged'</epasd:Caption>
        <epasd:Connection>Bridged</epasd:Connection>
        <epasd:InstanceID>6</epasd:InstanceID>
        <epasd:ResourceSubType>virtio</epasd:ResourceSubType>
        <epasd:ResourceType>10</epasd:ResourceType>
      </EthernetPortItem>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

    #[test]
    fn virtualbox_ovf_2_0() {
        let env = parse(VBOX_2_0.as_bytes()).unwrap();
        assert_eq!(env.version, "2.0");
        assert_eq!(
            env.disks.iter().map(|d| d.capacity).collect::<Vec<_>>(),
            [Some(10 << 30), Some(1 << 30)]
        );
        let vm = &env.systems[0];
        assert_eq!(vm.cpus, Some(4));
        assert_eq!(vm.memory, Some(8 << 30));
        assert_eq!(
            vm.os.as_ref().unwrap().os_type.as_deref(),
            Some("RedHat_64")
        );
        let placed: Vec<_> = vm
            .disks
            .iter()
            .map(|a| {
                (
                    a.disk_id.as_str(),
                    a.controller.as_ref().unwrap().kind.as_str(),
                    a.address_on_parent,
                )
            })
            .collect();
        assert_eq!(
            placed,
            [("vmdisk1", "sata", Some(0)), ("vmdisk2", "sata", Some(1))]
        );
        assert_eq!(
            vm.disks[0].controller.as_ref().unwrap().model.as_deref(),
            Some("AHCI")
        );
        assert_eq!(vm.nics.len(), 1);
        assert_eq!(vm.nics[0].connection.as_deref(), Some("Bridged"));
        assert_eq!(vm.nics[0].kind.as_deref(), Some("virtio"));
        assert_eq!(
            vm.nics[0].name.as_deref(),
            Some("Ethernet adapter on 'Bridged'")
        );
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    /// OVF 0.9 as VMware ESX 3.5 / VirtualBox 2.2 wrote it: typed Section and Content elements,
    /// children unprefixed without a default namespace, rasd:InstanceId, MegaBytes.
    const OVF_0_9: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ovf:Envelope xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://www.vmware.com/schema/ovf/1/envelope" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ovf:version="0.9">
  <References>
    <File ovf:href="appliance-disk1.vmdk" ovf:id="file1" ovf:size="237913088"/>
  </References>
  <Section xsi:type="ovf:DiskSection_Type">
    <Info>Meta-information about the virtual disks</Info>
    <Disk ovf:capacity="2733637632" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/specifications/vmdk.html#sparse"/>
  </Section>
  <Section xsi:type="ovf:NetworkSection_Type">
    <Info>The list of logical networks</Info>
    <Network ovf:name="bridged">
      <Description>The bridged network</Description>
    </Network>
  </Section>
  <Content ovf:id="appliance" xsi:type="ovf:VirtualSystem_Type">
    <Info>A virtual machine</Info>
    <Section ovf:id="36" xsi:type="ovf:OperatingSystemSection_Type">
      <Info>The kind of installed guest operating system</Info>
    </Section>
    <Section xsi:type="ovf:VirtualHardwareSection_Type">
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:InstanceId>0</vssd:InstanceId>
        <vssd:VirtualSystemIdentifier>appliance</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-04</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>1 virtual CPU(s)</rasd:Caption>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:InstanceId>1</rasd:InstanceId>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:AllocationUnits>MegaHertz</rasd:AllocationUnits>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Caption>256MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:InstanceId>2</rasd:InstanceId>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:VirtualQuantity>256</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Caption>scsiController0</rasd:Caption>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:InstanceId>4</rasd:InstanceId>
        <rasd:ResourceType>6</rasd:ResourceType>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:Address>0</rasd:Address>
        <rasd:BusNumber>0</rasd:BusNumber>
      </Item>
      <Item>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:InstanceId>1001</rasd:InstanceId>
        <rasd:ResourceType>17</rasd:ResourceType>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:Parent>4</rasd:Parent>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
      </Item>
      <Item>
        <rasd:Caption>ethernet0</rasd:Caption>
        <rasd:Description>PCNet32 ethernet adapter on &quot;bridged&quot;</rasd:Description>
        <rasd:InstanceId>1002</rasd:InstanceId>
        <rasd:ResourceType>10</rasd:ResourceType>
        <rasd:ResourceSubType>PCNet32</rasd:ResourceSubType>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>bridged</rasd:Connection>
      </Item>
    </Section>
  </Content>
</ovf:Envelope>
"#;

    #[test]
    fn ovf_0_9_typed_sections() {
        let env = parse(OVF_0_9.as_bytes()).unwrap();
        assert_eq!(env.version, "0.9");
        assert_eq!(env.files[0].size, Some(237_913_088));
        assert_eq!(env.disks[0].capacity, Some(2_733_637_632));
        assert!(env.disks[0].format.as_deref().unwrap().ends_with("#sparse"));
        let vm = &env.systems[0];
        assert_eq!(vm.id, "appliance");
        assert_eq!(vm.os.as_ref().unwrap().id, Some(36));
        assert_eq!(vm.hardware_family.as_deref(), Some("vmx-04"));
        assert_eq!(vm.cpus, Some(1));
        assert_eq!(vm.memory, Some(256 << 20));
        assert_eq!(vm.disks[0].disk_id, "vmdisk1");
        assert_eq!(vm.disks[0].controller.as_ref().unwrap().kind, "scsi");
        assert_eq!(vm.nics[0].kind.as_deref(), Some("PCNet32"));
        assert_eq!(vm.nics[0].name.as_deref(), Some("ethernet0"));
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn collection_of_two_systems() {
        let xml = envelope(
            r#"<References>
    <File ovf:href="db-disk1.vmdk" ovf:id="file1"/>
    <File ovf:href="app-disk1.vmdk" ovf:id="file2"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="8589934592" ovf:diskId="db" ovf:fileRef="file1"/>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="app" ovf:fileRef="file2"/>
  </DiskSection>
  <VirtualSystemCollection ovf:id="shop">
    <Info>A vApp of two VMs</Info>
    <Name>shop</Name>
    <StartupSection><Info>Start order</Info><Item ovf:id="db" ovf:order="0"/><Item ovf:id="app" ovf:order="1"/></StartupSection>
    <VirtualSystem ovf:id="db">
      <Info>A virtual machine</Info><Name>database</Name>
      <VirtualHardwareSection><Info>hw</Info>
        <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType></Item>
        <Item><rasd:HostResource>ovf:/disk/db</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      </VirtualHardwareSection>
    </VirtualSystem>
    <VirtualSystem ovf:id="app">
      <Info>A virtual machine</Info><Name>application</Name>
      <VirtualHardwareSection><Info>hw</Info>
        <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType><rasd:Address>0</rasd:Address></Item>
        <Item><rasd:HostResource>ovf:/disk/app</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      </VirtualHardwareSection>
    </VirtualSystem>
  </VirtualSystemCollection>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        let summary: Vec<_> = env
            .systems
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.name.as_deref(),
                    s.collection.as_deref(),
                    s.disks[0].disk_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("db", Some("database"), Some("shop"), "db"),
                ("app", Some("application"), Some("shop"), "app")
            ]
        );
        assert_eq!(
            env.systems[0].disks[0]
                .controller
                .as_ref()
                .unwrap()
                .model
                .as_deref(),
            Some("VirtualSCSI")
        );
        assert_eq!(
            env.systems[1].disks[0].controller.as_ref().unwrap().kind,
            "ide"
        );
        assert_eq!(env.disks[1].capacity, Some(16 << 30));
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn nested_collections_and_depth_limit() {
        let mut body = String::new();
        for i in 0..MAX_COLLECTION_DEPTH + 3 {
            body.push_str(&format!(r#"<VirtualSystemCollection ovf:id="c{i}"><Info>x</Info><VirtualSystem ovf:id="vm{i}"><Info>x</Info></VirtualSystem>"#));
        }
        for _ in 0..MAX_COLLECTION_DEPTH + 3 {
            body.push_str("</VirtualSystemCollection>");
        }
        let env = parse(envelope(&body).as_bytes()).unwrap();
        let ids: Vec<_> = env
            .systems
            .iter()
            .map(|s| (s.id.clone(), s.collection.clone().unwrap()))
            .collect();
        assert_eq!(ids.len(), MAX_COLLECTION_DEPTH);
        assert_eq!(ids[0], ("vm0".to_string(), "c0".to_string()));
        assert_eq!(ids[3], ("vm3".to_string(), "c3".to_string()));
        assert_eq!(codes(&env), ["ovf-nesting-limit"]);
    }

    #[test]
    fn two_controllers_ide_and_scsi() {
        let xml = envelope(
            r#"<References>
    <File ovf:href="sys.vmdk" ovf:id="f-sys"/><File ovf:href="data.vmdk" ovf:id="f-data"/><File ovf:href="tools.iso" ovf:id="f-iso"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="sys" ovf:fileRef="f-sys"/>
    <Disk ovf:capacity="100" ovf:capacityAllocationUnits="byte*2^30" ovf:diskId="data" ovf:fileRef="f-data"/>
  </DiskSection>
  <VirtualSystem ovf:id="srv"><Info>A VM</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>IDE 0</rasd:ElementName><rasd:InstanceID>10</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>1</rasd:Address><rasd:ElementName>IDE 1</rasd:ElementName><rasd:InstanceID>11</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>12</rasd:InstanceID><rasd:ResourceSubType>lsilogicsas</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/sys</rasd:HostResource><rasd:InstanceID>20</rasd:InstanceID><rasd:Parent>11</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>3</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:InstanceID>21</rasd:InstanceID><rasd:Parent>12</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/file/f-iso</rasd:HostResource><rasd:InstanceID>22</rasd:InstanceID><rasd:Parent>10</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        let got: Vec<_> = env.systems[0]
            .disks
            .iter()
            .map(|a| {
                let c = a.controller.as_ref().unwrap();
                (
                    a.disk_id.as_str(),
                    a.target,
                    a.device,
                    c.kind.as_str(),
                    c.index,
                    a.address_on_parent,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("sys", AttachTo::Disk, "disk", "ide", Some(1), Some(1)),
                ("data", AttachTo::Disk, "disk", "scsi", Some(0), Some(3)),
                ("f-iso", AttachTo::File, "cdrom", "ide", Some(0), Some(0)),
            ]
        );
        assert_eq!(env.disks[1].capacity, Some(100 << 30));
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn chunked_and_gzip_files() {
        let xml = envelope(&format!(
            r#"<References>
    <File ovf:chunkSize="2147483648" ovf:href="big-disk1.vmdk" ovf:id="file1" ovf:size="5368709120"/>
    <File ovf:compression="gzip" ovf:href="small-disk1.vmdk.gz" ovf:id="file2" ovf:size="734003"/>
  </References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d2" ovf:fileRef="file2"/>
  </DiskSection>{VS}"#
        ));
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.files[0].chunk_size, Some(2 << 30));
        assert_eq!(env.files[0].size, Some(5 << 30));
        assert_eq!(env.files[0].compression, None);
        assert_eq!(env.files[1].compression.as_deref(), Some("gzip"));
        assert_eq!(env.files[1].chunk_size, None);
        assert_eq!(env.files[1].href, "small-disk1.vmdk.gz");
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn hrefs_are_returned_verbatim() {
        let xml = envelope(&format!(
            r#"<References><File ovf:href="../../etc/shadow" ovf:id="a"/><File ovf:href="http://example.com/x.vmdk" ovf:id="b"/><File href="/abs/c.vmdk" id="c"/></References>{VS}"#
        ));
        let env = parse(xml.as_bytes()).unwrap();
        let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
        // Unprefixed attributes (id=, href=) are read too.
        assert_eq!(
            hrefs,
            [
                "../../etc/shadow",
                "http://example.com/x.vmdk",
                "/abs/c.vmdk"
            ]
        );
    }

    fn memory_of(units: Option<&str>, quantity: &str) -> (Option<u64>, Vec<&'static str>) {
        let units = units
            .map(|u| format!("<rasd:AllocationUnits>{u}</rasd:AllocationUnits>"))
            .unwrap_or_default();
        let xml = envelope(&format!(
            r#"<VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
  <Item>{units}<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity></Item>
</VirtualHardwareSection></VirtualSystem>"#
        ));
        let env = parse(xml.as_bytes()).unwrap();
        (env.systems[0].memory, codes(&env))
    }

    #[test]
    fn memory_units() {
        assert_eq!(
            memory_of(Some("MegaBytes"), "512"),
            (Some(512 << 20), vec![])
        );
        assert_eq!(
            memory_of(Some("byte * 2^20"), "3072"),
            (Some(3 << 30), vec![])
        );
        assert_eq!(memory_of(Some("GigaBytes"), "2"), (Some(2 << 30), vec![]));
        assert_eq!(
            memory_of(Some("byte * 2^30"), " 4 "),
            (Some(4 << 30), vec![])
        );
        assert_eq!(
            memory_of(None, "1024"),
            (Some(1 << 30), vec!["ovf-unknown-units"])
        );
        assert_eq!(
            memory_of(Some("hertz * 10^6"), "1024"),
            (None, vec!["ovf-unknown-units"])
        );
        assert_eq!(
            memory_of(Some("byte * 2^60"), "1024"),
            (None, vec!["ovf-size-overflow"])
        );
        assert_eq!(
            memory_of(Some("MegaBytes"), "lots"),
            (None, vec!["ovf-bad-value"])
        );
    }

    #[test]
    fn allocation_unit_expressions() {
        assert_eq!(allocation_units("byte"), Some(1));
        assert_eq!(allocation_units("byte * 2^30"), Some(1 << 30));
        assert_eq!(allocation_units("byte*2^20"), Some(1 << 20));
        assert_eq!(allocation_units("  byte * 2 ^ 10 "), Some(1 << 10));
        assert_eq!(allocation_units("byte * 1024^3"), Some(1 << 30));
        assert_eq!(allocation_units("byte * 1024"), Some(1024));
        assert_eq!(allocation_units("byte * 10^9"), Some(1_000_000_000));
        assert_eq!(allocation_units("2^20 * byte"), Some(1 << 20));
        assert_eq!(allocation_units("gibibyte"), Some(1 << 30));
        assert_eq!(allocation_units("kilobyte"), Some(1000));
        assert_eq!(allocation_units("KiloBytes"), Some(1 << 10));
        assert_eq!(allocation_units("MegaBytes"), Some(1 << 20));
        assert_eq!(allocation_units("GigaBytes"), Some(1 << 30));
        assert_eq!(allocation_units("MB"), Some(1 << 20));
        assert_eq!(allocation_units("byte * 2^64"), None);
        assert_eq!(allocation_units("byte * 2^99999999999"), None);
        assert_eq!(allocation_units("hertz * 10^6"), None);
        assert_eq!(allocation_units("byte * byte"), None);
        assert_eq!(allocation_units("byte * 0"), None);
        assert_eq!(allocation_units("byte / 2"), None);
        assert_eq!(allocation_units("byte * -2^3"), None);
        assert_eq!(allocation_units("byte * 2^-3"), None);
        assert_eq!(allocation_units("2^30"), None);
        assert_eq!(allocation_units(""), None);
        assert_eq!(allocation_units("byte *"), None);
    }

    fn capacity_of(attrs: &str) -> (Option<u64>, Vec<&'static str>) {
        let xml = envelope(&format!(
            r#"<DiskSection><Info>d</Info><Disk ovf:diskId="d1" {attrs}/></DiskSection>{VS}"#
        ));
        let env = parse(xml.as_bytes()).unwrap();
        (env.disks[0].capacity, codes(&env))
    }

    #[test]
    fn disk_capacities() {
        assert_eq!(
            capacity_of(r#"ovf:capacity="1048576""#),
            (Some(1 << 20), vec![])
        );
        assert_eq!(
            capacity_of(r#"ovf:capacity="10737418240" ovf:capacityAllocationUnits="byte""#),
            (Some(10 << 30), vec![])
        );
        assert_eq!(
            capacity_of(r#"capacity="2" capacityAllocationUnits="byte * 2^40""#),
            (Some(2 << 40), vec![])
        );
        // Old descriptors with the units written into the capacity.
        assert_eq!(
            capacity_of(r#"ovf:capacity="8 GB""#),
            (Some(8 << 30), vec![])
        );
        assert_eq!(
            capacity_of(r#"ovf:capacity="8 byte * 2^30""#),
            (Some(8 << 30), vec![])
        );
        assert_eq!(capacity_of(""), (None, vec!["ovf-missing-capacity"]));
        assert_eq!(
            capacity_of(r#"ovf:capacity="4" ovf:capacityAllocationUnits="percent""#),
            (None, vec!["ovf-unknown-units"])
        );
        assert_eq!(
            capacity_of(
                r#"ovf:capacity="18446744073709551615" ovf:capacityAllocationUnits="byte * 2^30""#
            ),
            (None, vec!["ovf-size-overflow"])
        );
        assert_eq!(
            capacity_of(r#"ovf:capacity="99999999999999999999999999""#),
            (None, vec!["ovf-size-overflow"])
        );
        assert_eq!(
            capacity_of(r#"ovf:capacity="-1""#),
            (None, vec!["ovf-bad-value"])
        );
        assert_eq!(
            capacity_of(r#"ovf:capacity="8 GB" ovf:capacityAllocationUnits="byte * 2^20""#),
            (None, vec!["ovf-unknown-units"])
        );
    }

    #[test]
    fn capacity_from_product_property() {
        let xml = envelope(
            r#"<DiskSection><Info>d</Info>
    <Disk ovf:capacity="${disk.size}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1"/>
    <Disk ovf:capacity="${nothing}" ovf:diskId="d2"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info>
    <ProductSection><Info>p</Info><Property ovf:key="disk.size" ovf:type="int" ovf:value="2048"/></ProductSection>
  </VirtualSystem>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.disks[0].capacity, Some(2 << 30));
        assert_eq!(env.disks[1].capacity, None);
        assert_eq!(codes(&env), ["ovf-missing-capacity"]);
    }

    #[test]
    fn default_deployment_option_selects_items() {
        let xml = envelope(
            r#"<DeploymentOptionSection><Info>Profiles</Info>
    <Configuration ovf:id="small"><Label>small</Label><Description>1 CPU</Description></Configuration>
    <Configuration ovf:default="true" ovf:id="large"><Label>large</Label><Description>8 CPUs</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="large"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>
    <Item ovf:bound="min"><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
    <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="small large"><rasd:Connection>a</rasd:Connection><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
    <Item ovf:configuration="small"><rasd:Connection>b</rasd:Connection><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.configuration.as_deref(), Some("large"));
        let vm = &env.systems[0];
        assert_eq!(vm.cpus, Some(8));
        assert_eq!(vm.memory, Some(1 << 30));
        assert_eq!(
            vm.nics
                .iter()
                .map(|n| n.connection.as_deref())
                .collect::<Vec<_>>(),
            [Some("a")]
        );
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn configuration_items_without_deployment_section() {
        // Items name configurations that no DeploymentOptionSection defines: one variant of
        // each InstanceID stands in, and a general item beats configuration-specific ones.
        let xml = envelope(
            r#"<VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item ovf:configuration="a"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="b"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
    <Item ovf:configuration="b"><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>
    <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>16</rasd:VirtualQuantity></Item>
  </VirtualHardwareSection></VirtualSystem>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.configuration, None);
        assert_eq!(env.systems[0].cpus, Some(2));
        assert_eq!(env.systems[0].memory, Some(16 << 20));
        assert!(env.problems.is_empty(), "{:?}", env.problems);
    }

    #[test]
    fn ovirt_style_descriptor() {
        // oVirt / virt-v2v -o rhv: the 1.0 namespace with a trailing slash and
        // ovf:version="0.9", Section/Content with xsi:type, InstanceId, bare "group/image"
        // host resources, empty parentRef, a nil-UUID Parent, the VM UUID as OS id.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ovf:version="0.9">
  <References>
    <File ovf:href="3b1c7a5e-grp/9d2e4f60-img" ovf:id="3b1c7a5e-grp/9d2e4f60-img" ovf:size="1073741824" ovf:description="vm1_Disk1"/>
  </References>
  <Section xsi:type="ovf:DiskSection_Type">
    <Info>List of Virtual Disks</Info>
    <Disk ovf:diskId="9d2e4f60-img" ovf:size="10" ovf:actual_size="1" ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30" ovf:parentRef="" ovf:fileRef="3b1c7a5e-grp/9d2e4f60-img" ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html" ovf:volume-format="COW" ovf:volume-type="Sparse" ovf:disk-interface="VirtIO_SCSI" ovf:boot="true"/>
  </Section>
  <Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type">
    <Name>vm1</Name>
    <Section ovf:id="c1d2e3f4" ovf:required="false" xsi:type="ovf:OperatingSystemSection_Type">
      <Info>Guest Operating System</Info>
      <Description>rhel_8x64</Description>
    </Section>
    <Section xsi:type="ovf:VirtualHardwareSection_Type">
      <Info>1 CPU, 2048 Memory</Info>
      <System><vssd:VirtualSystemType>ENGINE 4.4.0.0</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>1 virtual cpu</rasd:Caption><rasd:InstanceId>1</rasd:InstanceId><rasd:ResourceType>3</rasd:ResourceType><rasd:num_of_sockets>1</rasd:num_of_sockets><rasd:cpu_per_socket>1</rasd:cpu_per_socket><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:Caption>2048 MB of memory</rasd:Caption><rasd:InstanceId>2</rasd:InstanceId><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Caption>vm1_Disk1</rasd:Caption><rasd:InstanceId>9d2e4f60-img</rasd:InstanceId><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>3b1c7a5e-grp/9d2e4f60-img</rasd:HostResource><rasd:Parent>00000000-0000-0000-0000-000000000000</rasd:Parent></Item>
      <Item><rasd:Caption>Ethernet adapter on ovirtmgmt</rasd:Caption><rasd:InstanceId>n1</rasd:InstanceId><rasd:ResourceType>10</rasd:ResourceType><rasd:ResourceSubType>3</rasd:ResourceSubType><rasd:Connection>ovirtmgmt</rasd:Connection><rasd:Name>nic1</rasd:Name><rasd:MACAddress>56:6f:1a:2b:00:01</rasd:MACAddress></Item>
    </Section>
  </Content>
</ovf:Envelope>"#;
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.version, "1.x");
        assert_eq!(env.disks[0].capacity, Some(10 << 30));
        assert_eq!(env.disks[0].parent_ref, None);
        let vm = &env.systems[0];
        assert_eq!((vm.id.as_str(), vm.name.as_deref()), ("out", Some("vm1")));
        assert_eq!(vm.memory, Some(2 << 30));
        assert_eq!(vm.disks[0].disk_id, "9d2e4f60-img");
        assert_eq!(vm.disks[0].target, AttachTo::Disk);
        assert_eq!(vm.nics[0].connection.as_deref(), Some("ovirtmgmt"));
        assert_eq!(vm.disks[0].controller, None);
        assert_eq!(vm.os.as_ref().unwrap().id, None);
        assert_eq!(
            vm.os.as_ref().unwrap().description.as_deref(),
            Some("rhel_8x64")
        );
        assert_eq!(codes(&env), ["ovf-version-mismatch"]);
        assert_eq!(env.problems[0].severity, Severity::Info);
    }

    #[test]
    fn structure_problems() {
        let xml = envelope(
            r#"<References>
    <File ovf:href="a.vmdk" ovf:id="file1"/>
    <File ovf:href="b.vmdk" ovf:id="file1"/>
    <File ovf:id="no-href"/>
    <File ovf:href="c.vmdk" ovf:id="file3" ovf:size="big" ovf:chunkSize="0"/>
  </References>
  <DiskSection><Info>d</Info>
    <Disk ovf:capacity="1" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:diskId="d1" ovf:fileRef="missing"/>
    <Disk ovf:capacity="1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:diskId="d3" ovf:parentRef="nobody" ovf:populatedSize="x"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>x</Info><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:HostResource>ovf:/disk/ghost</rasd:HostResource><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>99</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    <Item><rasd:HostResource>ovf:/file/nofile</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
  <VirtualSystem ovf:id="vm"><Info>x</Info></VirtualSystem>
  <VirtualSystem><Info>x</Info></VirtualSystem>"#,
        );
        let env = parse(xml.as_bytes()).unwrap();
        assert_eq!(env.files.len(), 3);
        assert_eq!(env.files[2].size, None);
        assert_eq!(env.files[2].chunk_size, None);
        assert_eq!(
            env.disks.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["d1", "d1", "d3"]
        );
        let vm = &env.systems[0];
        // Attachments to unknown disks are kept (and reported).
        assert_eq!(
            vm.disks
                .iter()
                .map(|a| a.disk_id.as_str())
                .collect::<Vec<_>>(),
            ["ghost", "d1", "nofile"]
        );
        assert_eq!(vm.disks[1].controller, None);
        let count = |code| env.problems.iter().filter(|p| p.code == code).count();
        assert_eq!(count("ovf-duplicate-id"), 4, "{:?}", env.problems); // file1, d1, InstanceID 2, vm
        assert_eq!(count("ovf-missing-attribute"), 3); // File without href, Disk without id, VS without id
        assert_eq!(count("ovf-bad-value"), 3); // size, chunkSize, populatedSize
        // Disk fileRef, parentRef; ghost disk, Parent 99, no HostResource, unknown file.
        assert_eq!(count("ovf-dangling-ref"), 6);
        assert!(
            env.problems
                .iter()
                .all(|p| p.message.starts_with("OVF descriptor: ") && !p.message.contains('\n'))
        );
        assert!(env.problems.iter().all(|p| p.severity == Severity::Warning));
    }

    #[test]
    fn no_virtual_system() {
        let env = parse(envelope("<References/>").as_bytes()).unwrap();
        assert!(env.systems.is_empty());
        assert_eq!(codes(&env), ["ovf-no-virtual-system"]);
        let env = parse(br#"<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"/>"#)
            .unwrap();
        assert_eq!(env.version, "2.x");
        assert!(has(&env, "ovf-no-virtual-system"));
    }

    #[test]
    fn problems_are_capped() {
        let files: String = (0..MAX_PROBLEMS + 50)
            .map(|_| r#"<File ovf:href="x" ovf:id="same"/>"#)
            .collect();
        let env =
            parse(envelope(&format!("<References>{files}</References>{VS}")).as_bytes()).unwrap();
        assert_eq!(env.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(env.problems.last().unwrap().code, "ovf-problems-truncated");
    }

    #[test]
    fn records_are_capped() {
        let files: String = (0..MAX_RECORDS + 10)
            .map(|i| format!(r#"<File ovf:href="x" ovf:id="f{i}"/>"#))
            .collect();
        let env =
            parse(envelope(&format!("<References>{files}</References>{VS}")).as_bytes()).unwrap();
        assert_eq!(env.files.len(), MAX_RECORDS);
        // The budget is spent: the system is dropped too, and both are reported.
        assert!(env.systems.is_empty());
        assert!(has(&env, "ovf-too-many"));
    }

    #[test]
    fn long_strings_are_cut() {
        let long = "m".repeat(100_000);
        let xml = envelope(&format!(
            r#"<VirtualSystemCollection ovf:id="{long}"><Info>x</Info><VirtualSystem ovf:id="vm"><Info>x</Info><Name>{long}</Name><VirtualHardwareSection><Info>hw</Info>
  <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>{long}</rasd:ResourceSubType></Item>
  <Item><rasd:HostResource>ovf:/disk/{long}</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
</VirtualHardwareSection></VirtualSystem></VirtualSystemCollection>"#
        ));
        let env = parse(xml.as_bytes()).unwrap();
        let vm = &env.systems[0];
        assert!(vm.collection.as_ref().unwrap().len() <= MAX_SHARED_TEXT + 3);
        assert!(vm.name.as_ref().unwrap().len() <= MAX_TEXT + 3);
        assert!(
            vm.disks[0]
                .controller
                .as_ref()
                .unwrap()
                .model
                .as_ref()
                .unwrap()
                .len()
                <= MAX_SHARED_TEXT + 3
        );
        assert!(
            env.problems.iter().all(|p| p.message.len() < 400),
            "{:?}",
            env.problems
        );
    }

    // ---- hostile and broken input ----

    #[test]
    fn billion_laughs_is_refused() {
        let mut xml =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [\n <!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            xml.push_str(&format!(
                " <!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        xml.push_str("]>\n");
        xml.push_str(
            &envelope(r#"<VirtualSystem ovf:id="vm"><Info>&lol9;</Info></VirtualSystem>"#)
                .replacen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "", 1),
        );
        let err = parse(xml.as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error { kind: ErrorKind::Unsupported, message: ref m } if m.contains("DTD")),
            "{err}"
        );
    }

    #[test]
    fn external_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE Envelope [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <VirtualSystem ovf:id="vm"><Info>x</Info><Name>&x;</Name></VirtualSystem>
</Envelope>"#;
        let err = parse(xxe.as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error { kind: ErrorKind::Unsupported, message: ref m } if m.contains("DTD")),
            "{err}"
        );
        // An external DTD subset without internal declarations is refused too.
        let ext = r#"<?xml version="1.0"?>
<!DOCTYPE Envelope SYSTEM "http://attacker.example/evil.dtd">
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>"#;
        assert!(matches!(
            parse(ext.as_bytes()),
            Err(Error {
                kind: ErrorKind::Unsupported,
                ..
            })
        ));
        let param = "<!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><r/>";
        assert!(matches!(
            parse(param.as_bytes()),
            Err(Error {
                kind: ErrorKind::Unsupported,
                ..
            })
        ));
        // Without a DTD an entity reference is just malformed.
        let undeclared = envelope(r#"<VirtualSystem ovf:id="vm"><Info>&x;</Info></VirtualSystem>"#);
        assert!(matches!(
            parse(undeclared.as_bytes()),
            Err(Error {
                kind: ErrorKind::Corrupt,
                ..
            })
        ));
    }

    #[test]
    fn not_an_envelope() {
        type Expect = fn(&Error) -> bool;
        let cases: [(&[u8], Expect); 9] = [
            (b"", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (b"   \n  ", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (b"KDMV\x01\0\0\0 not xml", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (b"<html><body>hello</body></html>", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (b"<?xml version='1.0'?><Envelope/>", |e| {
                matches!(
                    e,
                    Error {
                        kind: ErrorKind::NotAnImage,
                        ..
                    }
                )
            }),
            (
                b"<soap:Envelope xmlns:soap='http://www.w3.org/2003/05/soap-envelope'/>",
                |e| {
                    matches!(
                        e,
                        Error {
                            kind: ErrorKind::NotAnImage,
                            ..
                        }
                    )
                },
            ),
            (
                b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/3'/>",
                |e| {
                    matches!(
                        e,
                        Error {
                            kind: ErrorKind::Unsupported,
                            ..
                        }
                    )
                },
            ),
            (
                b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1'><References>",
                |e| {
                    matches!(
                        e,
                        Error {
                            kind: ErrorKind::Corrupt,
                            ..
                        }
                    )
                },
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err();
            assert!(
                expected(&err),
                "{:?}: {err}",
                String::from_utf8_lossy(input)
            );
            let text = err.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains("OVF descriptor"), "{text}");
        }
    }

    #[test]
    fn size_and_node_limits() {
        let huge = vec![b' '; MAX_DESCRIPTOR_BYTES + 1];
        assert!(
            matches!(parse(&huge), Err(Error { kind: ErrorKind::Unsupported, message: m }) if m.contains("MiB"))
        );
        let many: String = "<a/>".repeat(MAX_NODES as usize + 1);
        let err = parse(envelope(&many).as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error { kind: ErrorKind::Unsupported, message: ref m } if m.contains("nodes")),
            "{err}"
        );
    }

    #[test]
    fn deep_element_nesting() {
        // 100k nested vendor elements: no stack overflow, just ignored.
        let depth = 100_000;
        let body = format!(
            "<x:a xmlns:x='urn:x'>{}{VS}{}",
            "<x:a>".repeat(depth - 1),
            "</x:a>".repeat(depth)
        );
        let env = parse(envelope(&body).as_bytes());
        // The VirtualSystem sits inside the vendor element, so it is not a content element.
        assert!(has(&env.unwrap(), "ovf-no-virtual-system"));
    }

    #[test]
    fn encodings() {
        let bom = [b"\xef\xbb\xbf".as_slice(), VMWARE.as_bytes()].concat();
        assert_eq!(parse(&bom).unwrap().systems[0].id, "web01");
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend(VBOX_1_0.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(parse(&utf16).unwrap().systems[0].id, "debian12");
        let mut utf16be = vec![0xfe, 0xff];
        utf16be.extend(VBOX_1_0.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(parse(&utf16be).unwrap().systems[0].memory, Some(2 << 30));
        let latin1 = [VMWARE.as_bytes(), b"<!-- caf\xe9 -->"].concat();
        assert!(matches!(
            parse(&latin1),
            Err(Error {
                kind: ErrorKind::NotAnImage,
                ..
            })
        ));
    }

    /// xorshift64*: deterministic pseudo-random numbers for the mutation loop.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
        const INTERESTING: &[&[u8]] = &[
            b"<",
            b">",
            b"\"",
            b"&",
            b"/",
            b"${",
            b"}",
            b"0",
            b"9",
            b"-",
            b"*",
            b"^",
            b"99999999999999999999",
            b"<!DOCTYPE x>",
            b"ovf:/disk/",
            b"<Item>",
            b"</Item>",
            b"<VirtualSystemCollection>",
            b"\xff",
            b"\0",
        ];
        let mut data = base.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(data.len());
            match rng.below(6) {
                0 => data[at] = rng.next() as u8,
                1 => {
                    let end = (at + rng.below(64)).min(data.len());
                    data.drain(at..end);
                }
                2 => {
                    let piece = INTERESTING[rng.below(INTERESTING.len())];
                    data.splice(at..at, piece.iter().copied());
                }
                3 => {
                    let end = (at + rng.below(400)).min(data.len());
                    let copy = data[at..end].to_vec();
                    let to = rng.below(data.len());
                    data.splice(to..to, copy);
                }
                4 => data.truncate(at),
                _ => {
                    // Replace a digit run's neighbourhood with a huge number.
                    if let Some(p) = data[at..].iter().position(|b| b.is_ascii_digit()) {
                        let p = at + p;
                        data.splice(p..p + 1, b"18446744073709551616".iter().copied());
                    }
                }
            }
            if data.is_empty() {
                break;
            }
        }
        data
    }

    #[test]
    fn random_mutations_never_panic() {
        let bases = [VMWARE, VBOX_1_0, VBOX_2_0, OVF_0_9];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for round in 0..4000 {
            let base = bases[round % bases.len()].as_bytes();
            let input = mutate(&mut rng, base);
            if let Ok(env) = parse(&input) {
                parsed += 1;
                // Whatever parses must also serialise.
                serde_json::to_string(&env).unwrap();
            }
        }
        // Most single mutations keep the XML well-formed enough to exercise the OVF layer.
        assert!(parsed > 250, "only {parsed} mutated descriptors parsed");
        for len in [1, 7, 100, 4096] {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let _ = parse(&bytes);
                let mut xmlish = b"<".to_vec();
                xmlish.extend(
                    bytes
                        .iter()
                        .map(|b| b"<>/=\"' aEnvelope:"[*b as usize % 17]),
                );
                let _ = parse(&xmlish);
            }
        }
    }
}
