//! Mapping part of an image at open, so that a damaged or cut table shows up as a finding (and
//! blocks reading) before a conversion starts.

use crate::error::{Error, ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};

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
