//! Namespaces, attributes and values: how elements and properties are matched and read.

use super::document::family;
use super::*;

pub(super) fn is_ovf_ns(ns: &str) -> bool {
    family(ns).is_some()
}

/// An OVF element: in an OVF namespace, or in none (writers that bind only `ovf:` and leave
/// children unprefixed).
pub(super) fn is_ovf_element(node: Node) -> bool {
    node.is_element() && node.tag_name().namespace().is_none_or(is_ovf_ns)
}

/// An item property: rasd/sasd/epasd (any CIM class), or by mistake OVF or no namespace.
pub(super) fn is_property_element(node: Node) -> bool {
    node.is_element()
        && node
            .tag_name()
            .namespace()
            .is_none_or(|ns| ns.starts_with(CIM_PREFIX) || is_ovf_ns(ns))
}

pub(super) fn ovf_children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|c| is_ovf_element(*c))
}

pub(super) fn ovf_child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    ovf_children(node).find(|c| c.tag_name().name() == name)
}

/// What an OVF element is: its local name, or for OVF 0.9's `<Section>`/`<Content>` the
/// `xsi:type` without "ovf:" and "_Type" (`ovf:DiskSection_Type` -> `DiskSection`).
pub(super) fn kind<'a>(node: Node<'a, '_>) -> Option<&'a str> {
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
pub(super) fn ovf_attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
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
pub(super) fn attr_value<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    ovf_attr(node, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An element's trimmed text, None when empty.
pub(super) fn text<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.text().map(str::trim).filter(|t| !t.is_empty())
}

/// A string cut to at most `max` bytes at a character boundary.
pub(super) fn capped(s: &str, max: usize) -> String {
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
pub(super) fn quoted(s: &str) -> String {
    format!("\"{}\"", one_line(&capped(s, MAX_QUOTED)))
}

pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A decimal attribute or element value; a non-number is a problem and None.
pub(super) fn number<T: std::str::FromStr>(
    raw: Option<&str>,
    what: &str,
    problems: &mut Problems,
) -> Option<T> {
    let raw = raw?;
    let parsed = raw.parse().ok();
    if parsed.is_none() {
        problems.warn(
            FindingCode::OvfBadValue,
            format!("{what} is {}, not a number", quoted(raw)),
        );
    }
    parsed
}
