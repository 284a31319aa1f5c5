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
use crate::finding_code::FindingCode;
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
                FindingCode::OvfDuplicateId,
                format!("two VirtualSystems have the id {}", quoted(&sys.id)),
            );
        }
        systems.push(sys);
    }
    if systems.is_empty() {
        problems.warn(
            FindingCode::OvfNoVirtualSystem,
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

mod disks;
mod document;
mod hardware;
mod layout;
mod nodes;
mod problems;
mod units;

pub use units::allocation_units;

use disks::{Index, read_disks, read_files};
use document::{decode, envelope_family, envelope_version, parse_xml};
use hardware::read_system;
use layout::{Properties, default_configuration, layout};
use nodes::{capped, quoted};
use problems::{Budget, Problems};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_shapes;
