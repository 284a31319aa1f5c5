//! The VMDK text descriptor (VMware "Virtual Disk Format 5.0", section "The Descriptor"): read
//! leniently, shared by detection and the driver.

/// How many extent lines a descriptor keeps (more are counted in `dropped_extents`).
pub const MAX_EXTENTS: usize = 16384;

/// One extent line of a descriptor: `RW 204800 SPARSE "disk-s001.vmdk" [offset]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorExtent {
    /// `RW`, `RDONLY` or `NOACCESS`.
    pub access: String,
    pub sectors: u64,
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`, `VMFSSPARSE`, `VMFSRDM`, `VMFSRAW`, `SESPARSE`.
    pub kind: String,
    /// The file name as written (may be a path: never opened as such).
    pub file: Option<String>,
    /// For FLAT extents, the start of the data in the file, in sectors.
    pub offset: u64,
}

/// The parts of a VMDK text descriptor vmdisk uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub version: Option<String>,
    pub create_type: Option<String>,
    pub cid: Option<String>,
    pub parent_cid: Option<String>,
    pub parent_hint: Option<String>,
    pub adapter_type: Option<String>,
    pub extents: Vec<DescriptorExtent>,
    /// Lines that are neither comments, `key = value` pairs nor extent lines.
    pub bad_lines: usize,
    /// Extent lines past [`MAX_EXTENTS`], not kept.
    pub dropped_extents: usize,
    /// The `ddb.*` keys (disk database: geometry, adapter, UUID, ...) in file order, at most
    /// [`MAX_DDB`] of them.
    pub ddb: Vec<(String, String)>,
}

/// How many `ddb.*` keys a descriptor keeps.
const MAX_DDB: usize = 256;

/// Parse descriptor text leniently: unknown lines are counted, never fatal.
pub fn parse_descriptor(text: &str) -> Descriptor {
    let mut d = Descriptor::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(e) = parse_extent(line) {
            if d.extents.len() < MAX_EXTENTS {
                d.extents.push(e);
            } else {
                d.dropped_extents += 1;
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            d.bad_lines += 1;
            continue;
        };
        let key = key.trim();
        let value = unquote(value.trim()).to_string();
        // Keys are matched without regard to case: writers differ (`createtype`, `CID`).
        match key.to_ascii_lowercase().as_str() {
            "version" => d.version = Some(value),
            "createtype" => d.create_type = Some(value),
            "cid" => d.cid = Some(value),
            "parentcid" => d.parent_cid = Some(value),
            "parentfilenamehint" => d.parent_hint = Some(value),
            k if k.contains(char::is_whitespace) => d.bad_lines += 1,
            k if k.starts_with("ddb.") => {
                if k == "ddb.adaptertype" {
                    d.adapter_type = Some(value.clone());
                }
                if d.ddb.len() < MAX_DDB {
                    d.ddb.push((key.to_string(), value));
                }
            }
            _ => {}
        }
    }
    d
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_extent(line: &str) -> Option<DescriptorExtent> {
    let (access, rest) = line.split_once(char::is_whitespace)?;
    if !["RW", "RDONLY", "NOACCESS"].contains(&access.to_ascii_uppercase().as_str()) {
        return None;
    }
    let rest = rest.trim_start();
    let (sectors, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let sectors: u64 = sectors.parse().ok()?;
    let rest = rest.trim_start();
    let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let rest = rest.trim_start();
    let (file, rest) = if let Some(r) = rest.strip_prefix('"') {
        let end = r.find('"')?;
        (Some(r[..end].to_string()), &r[end + 1..])
    } else {
        (None, rest)
    };
    let offset = rest.trim().parse().unwrap_or(0);
    Some(DescriptorExtent {
        access: access.to_ascii_uppercase(),
        sectors,
        kind: kind.to_ascii_uppercase(),
        file,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_descriptors() {
        let d = parse_descriptor(
            "# Disk DescriptorFile\nversion=1\nCID=48e8fede\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n# Extent description\nRW 204800 FLAT \"a-flat.vmdk\" 0\nRDONLY 10 SPARSE \"../x y.vmdk\"\nRW 5 ZERO\n\nddb.adapterType = \"ide\"\nthis is junk\n",
        );
        assert_eq!(d.create_type.as_deref(), Some("monolithicFlat"));
        assert_eq!(d.adapter_type.as_deref(), Some("ide"));
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file.as_deref(), Some("a-flat.vmdk"));
        assert_eq!(d.extents[1].file.as_deref(), Some("../x y.vmdk"));
        assert_eq!(d.extents[2].kind, "ZERO");
        assert_eq!(d.bad_lines, 1);
        assert_eq!(d.ddb, vec![("ddb.adapterType".into(), "ide".into())]);
        let d = parse_descriptor("CREATETYPE = \"vmfs\"\r\ncid=1\r\nRW 1 VMFS \"a\"\r\n");
        assert_eq!(d.create_type.as_deref(), Some("vmfs"));
        assert_eq!(d.cid.as_deref(), Some("1"));
        assert_eq!(d.extents.len(), 1);
    }
}
