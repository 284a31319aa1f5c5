//! Bytes to a document: size cap, encoding, DTD refusal, node cap; the envelope's namespace and version.

use super::nodes::{one_line, ovf_attr};
use super::*;

pub(super) fn decode(xml: &[u8]) -> Result<Cow<'_, str>> {
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

pub(super) fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::not_an_image(format!(
            "the OVF descriptor is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// UTF-16 with a byte order mark: allowed by XML, written by some Windows tools.
pub(super) fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String> {
    let units = bytes
        .chunks(2)
        .map(|c| unit([c[0], *c.get(1).unwrap_or(&0)]));
    char::decode_utf16(units)
        .collect::<std::result::Result<String, _>>()
        .map_err(|_| Error::not_an_image("the OVF descriptor is not valid UTF-16 text"))
}

pub(super) fn parse_xml(text: &str) -> Result<Document<'_>> {
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

pub(super) fn xml_error(e: roxmltree::Error) -> Error {
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

pub(super) fn dtd_refused() -> Error {
    Error::unsupported(
        "the OVF descriptor contains a DTD (<!DOCTYPE>); vmdisk refuses DTDs so that no entity \
         is expanded or reads host files",
    )
}

/// The OVF family of the root element, or why this is not an OVF envelope.
pub(super) fn envelope_family(root: Node) -> Result<&'static str> {
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

pub(super) fn family(ns: &str) -> Option<&'static str> {
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
pub(super) fn envelope_version(
    root: Node,
    family: &'static str,
    problems: &mut Problems,
) -> String {
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
        FindingCode::OvfVersionMismatch,
        Severity::Info,
        format!(
            "ovf:version is {} but the namespace is OVF {family}; read as OVF {family}",
            quoted(attr)
        ),
    );
    family.to_string()
}
