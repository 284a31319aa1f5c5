//! Header problems of the Bochs, cloop and DMG parsers, as detection findings.

use super::Detection;
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// Each (cut short, message) problem as a Critical `truncated` or `corrupt` finding: the format
/// is still named, but its driver refuses the file.
pub(super) fn report(d: &mut Detection, problems: Vec<(bool, String)>) {
    for (truncated, message) in problems {
        let code = if truncated {
            FindingCode::Truncated
        } else {
            FindingCode::Corrupt
        };
        d.finding(code, Severity::Critical, message);
    }
}
