//! Envelope layout: where the DiskSections and VirtualSystems are.

use super::nodes::{attr_value, kind, ovf_children};
use super::*;

pub(super) struct Layout<'a, 'i> {
    pub(super) disk_nodes: Vec<Node<'a, 'i>>,
    /// Each system with the id of its enclosing collection.
    pub(super) systems: Vec<(Node<'a, 'i>, Option<&'a str>)>,
}

pub(super) fn layout<'a, 'i>(root: Node<'a, 'i>, problems: &mut Problems) -> Layout<'a, 'i> {
    let mut layout = Layout {
        disk_nodes: Vec::new(),
        systems: Vec::new(),
    };
    walk_content(root, 0, None, &mut layout, problems);
    layout
}

/// Visits the sections and content of the envelope or of a collection (recursion is bounded by
/// MAX_COLLECTION_DEPTH).
pub(super) fn walk_content<'a, 'i>(
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
                FindingCode::OvfNestingLimit,
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
pub(super) fn is_disk_section(node: Node) -> bool {
    matches!(kind(node), Some("DiskSection" | "SharedDiskSection"))
}

/// The default DeploymentOptionSection configuration: `ovf:default="true"`, else the first.
pub(super) fn default_configuration<'a>(root: Node<'a, '_>) -> Option<&'a str> {
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
pub(super) struct Properties<'a> {
    /// Property id (the key, and "class.key.instance" when the section has a class or
    /// instance) -> default value; None when two properties of one id disagree.
    values: BTreeMap<String, Option<&'a str>>,
}

impl<'a> Properties<'a> {
    pub(super) fn collect(root: Node<'a, '_>) -> Self {
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

    pub(super) fn get(&self, id: &str) -> Option<&'a str> {
        self.values.get(id).copied().flatten()
    }
}
