//! Mapping part of an image at open, so that a damaged or cut table shows up as a finding (and
//! blocks reading) before a conversion starts.

use crate::error::{Error, ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::image::Image;
use crate::report::{Finding, Severity};

/// Map the first `max` allocated L1 spans (of `span` guest bytes, L1 entries in `l1`).
/// Returns (truncated, message) for the first problem found.
pub(crate) async fn scan_spans(
    image: &dyn Image,
    l1: &[u64],
    span: u64,
    max: usize,
) -> Option<(bool, String)> {
    let size = image.virtual_size();
    for (i, _) in l1.iter().enumerate().filter(|(_, e)| **e != 0).take(max) {
        let start = i as u64 * span;
        if start >= size {
            break;
        }
        if let Err(e) = image.map(start, span.min(size - start)).await {
            return Some(problem(e));
        }
    }
    None
}

/// An error that makes the data unreadable as (truncated, message).
pub(crate) fn problem(e: Error) -> (bool, String) {
    let truncated = matches!(e.kind, ErrorKind::Truncated);
    (truncated, message(e))
}

/// The Critical finding for a problem (truncated, message) found at open.
pub(crate) fn scan_finding(found: &(bool, String)) -> Finding {
    let code = if found.0 {
        FindingCode::Truncated
    } else {
        FindingCode::Corrupt
    };
    Finding::new(code, Severity::Critical, &found.1)
}

/// An error's message as a finding states it.
pub(crate) fn message(e: Error) -> String {
    match e.kind {
        ErrorKind::Cancelled => "cancelled".into(),
        _ => e.message,
    }
}

/// `readable` for a driver that keeps why its data cannot be read as (truncated, message).
pub(crate) fn readable(blocked: &Option<(bool, String)>) -> Result<()> {
    match blocked {
        None => Ok(()),
        Some((true, m)) => Err(Error::truncated(m.clone())),
        Some((false, m)) => Err(Error::corrupt(m.clone())),
    }
}

/// Record a block that lies past the end of the file (VHD, VDI): a Critical `truncated` finding,
/// and the first such message as the reason the data cannot be read.
pub(crate) fn note_cut(findings: &mut Vec<Finding>, cut: &mut Option<String>, msg: String) {
    findings.push(Finding::new(
        FindingCode::Truncated,
        Severity::Critical,
        msg.clone(),
    ));
    cut.get_or_insert(msg);
}

/// `readable` for a driver whose only reason not to read is a cut file (VHD, VDI).
pub(crate) fn readable_unless_cut(cut: &Option<String>) -> Result<()> {
    match cut {
        Some(m) => Err(Error::truncated(m.clone())),
        None => Ok(()),
    }
}
