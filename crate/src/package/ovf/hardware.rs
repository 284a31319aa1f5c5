//! VirtualSystem: OS and hardware.

use super::disks::{byte_units, scaled, whole_number};
use super::nodes::{attr_value, is_property_element, kind, number, ovf_child, ovf_children, text};
use super::*;

pub(super) fn read_system(
    node: Node,
    collection: Option<&str>,
    configuration: Option<&str>,
    index: &Index,
    budget: &mut Budget,
    problems: &mut Problems,
) -> VirtualSystem {
    let id = attr_value(node, "id").unwrap_or_default();
    if id.is_empty() {
        problems.warn(
            FindingCode::OvfMissingAttribute,
            "a VirtualSystem has no ovf:id",
        );
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

pub(super) fn read_os(section: Node) -> Os {
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
pub(super) struct Item<'a> {
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
pub(super) enum Scope {
    /// No `ovf:configuration`: every configuration.
    All,
    /// Lists the chosen configuration.
    Chosen,
    /// Lists only other configurations.
    Other,
}

/// The items of a VirtualHardwareSection that apply to `configuration`, document order: a
/// configuration-specific item replaces the general one of the same InstanceID.
pub(super) fn effective_items<'a>(hw: Node<'a, '_>, configuration: Option<&str>) -> Vec<Item<'a>> {
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

pub(super) fn read_hardware(
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
                FindingCode::OvfDuplicateId,
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
pub(super) fn memory(item: &Item, problems: &mut Problems) -> Option<u64> {
    let what = format!("the memory size of {}", item.label());
    let count = whole_number(item.virtual_quantity?, &what, problems)?;
    let units = match item.allocation_units {
        Some(u) => byte_units(u, &what, problems)?,
        None => {
            // What virt-v2v assumes for every memory quantity.
            problems.push(
                FindingCode::OvfUnknownUnits,
                Severity::Info,
                format!("{what} has no AllocationUnits; MiB assumed"),
            );
            1 << 20
        }
    };
    scaled(count, units, &what, problems)
}

pub(super) fn nic(item: &Item) -> Nic {
    Nic {
        connection: item.connection.map(|c| capped(c, MAX_TEXT)),
        kind: item.sub_type.map(|k| capped(k, MAX_TEXT)),
        name: item.name.map(|n| capped(n, MAX_TEXT)),
        mac: item.address.map(|m| capped(m, MAX_TEXT)),
    }
}

/// A drive item with the disk or file it holds and the controller it sits on. Drives without
/// HostResource (empty CD and floppy drives) are no attachment.
pub(super) fn attachment(
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
                FindingCode::OvfDanglingRef,
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
            FindingCode::OvfDanglingRef,
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
                        FindingCode::OvfDanglingRef,
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

pub(super) fn controller(item: &Item) -> Controller {
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
