//! The parent of a differencing disk: its locators and Unicode name, resolved among the
//! supplied files by base name and checked against the UUID the child records.

use super::dynamic::DynHeader;
use super::footer::{four_cc, read_footer};
use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::formats::common::bytes::{utf16, uuid};
use crate::formats::common::parent::in_parent;
use crate::image::Image;
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, base_name, check_range, is_plain_name, read_vec};

/// The largest parent locator vmdisk reads (a path; the spec reserves a few sectors).
pub(super) const MAX_LOCATOR: u64 = 64 << 10;

pub(super) struct Parent {
    /// The name the parent was resolved by (or the first name the image gives).
    pub(super) name: String,
    pub(super) image: Option<Box<dyn Image>>,
    /// (platform code, name) of every parent locator that could be decoded.
    pub(super) locators: Vec<(String, String)>,
}

/// Decode parent locator `code` holding `data`.
pub(super) fn locator_name(code: &[u8; 4], data: &[u8]) -> Option<String> {
    match code {
        b"W2ru" | b"W2ku" => utf16(data, false),
        b"MacX" => {
            let s = String::from_utf8_lossy(data);
            let s = s.trim_end_matches('\0').trim();
            let s = s.strip_prefix("file://").unwrap_or(s);
            let s: String = s.chars().filter(|c| !c.is_control()).collect();
            (!s.is_empty()).then_some(s)
        }
        // Deprecated ASCII Windows paths.
        b"Wi2r" | b"Wi2k" => {
            let s = String::from_utf8_lossy(data);
            let s: String = s
                .trim_end_matches('\0')
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            let s = s.trim().to_string();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    }
}

/// Find the parent of a differencing disk among the supplied files and open it.
pub(super) async fn open_parent(
    set: &ImageSet,
    file: FileId,
    depth: usize,
    h: &DynHeader,
    findings: &mut Vec<Finding>,
) -> Result<Parent> {
    let src = set.file(file);
    let mut locators = vec![];
    for &(code, at, len) in &h.locators {
        let len = u64::from(len);
        if len == 0 {
            continue;
        }
        if len > MAX_LOCATOR || check_range(&**src, at, len, "").is_err() {
            findings.push(Finding::new(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "VHD parent locator {} at offset {at} (+{len} bytes) is too long or past the end of the file; ignored",
                    four_cc(&code)
                ),
            ));
            continue;
        }
        let data = read_vec(&**src, at, len, "VHD parent locator").await?;
        if let Some(n) = locator_name(&code, &data) {
            locators.push((four_cc(&code), n));
        }
    }
    // Candidates: locators first (relative before absolute), then the Unicode name.
    let mut names: Vec<&str> = locators.iter().map(|(_, n)| n.as_str()).collect();
    if let Some(n) = &h.parent_name {
        names.push(n);
    }
    let paths: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !is_plain_name(n))
        .collect();
    if !paths.is_empty() {
        findings.push(Finding::new(
            FindingCode::BackingFile,
            Severity::Critical,
            format!(
                "the differencing VHD names its parent by path ({}), which would make a host read that file; only its base name is matched among the supplied files",
                paths
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let shown = names.first().map(|n| n.to_string());
    let Some(shown) = shown else {
        return Err(Error::corrupt(
            "the differencing VHD does not name its parent",
        ));
    };
    let Some((id, name)) = names
        .iter()
        .find_map(|n| set.find(n).map(|id| (id, n.to_string())))
    else {
        findings.push(Finding::new(
            FindingCode::BackingFile,
            Severity::Critical,
            format!("the parent VHD \"{}\" was not supplied", base_name(&shown)),
        ));
        return Ok(Parent {
            name: shown,
            image: None,
            locators,
        });
    };
    if id == file {
        return Err(Error::corrupt(format!(
            "{} names itself as its parent",
            src.name()
        )));
    }
    let psrc = set.file(id).clone();
    match read_footer(&*psrc).await {
        Ok(pf) if pf.footer.uuid != h.parent_uuid => findings.push(Finding::new(
            FindingCode::ParentMismatch,
            Severity::Critical,
            format!(
                "the parent {} has UUID {} but the differencing VHD expects {}: it is not the right parent",
                psrc.name(),
                uuid(pf.footer.uuid),
                uuid(h.parent_uuid)
            ),
        )),
        Ok(_) => {}
        Err(_) => findings.push(Finding::new(
            FindingCode::ParentMismatch,
            Severity::Critical,
            format!(
                "the parent {} of the differencing VHD is not a VHD",
                psrc.name()
            ),
        )),
    }
    let (_, image) = crate::image::open_file(set, id, depth + 1)
        .await
        .map_err(|e| in_parent(e, psrc.name()))?;
    Ok(Parent {
        name,
        image,
        locators,
    })
}
