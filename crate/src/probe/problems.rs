//! Header problems of the Bochs, cloop and DMG parsers, as detection findings.

use super::Detection;
use crate::error::{Error, ErrorKind};
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// Each problem (the error its driver would refuse the file with) as a Critical finding: the
/// format is still named, but its driver refuses the file. A variant the driver does not read
/// is `unsupported-format`, a file cut short `truncated`, anything else `corrupt`.
pub(super) fn report(d: &mut Detection, problems: Vec<Error>) {
    for e in problems {
        let code = match e.kind {
            ErrorKind::Truncated => FindingCode::Truncated,
            ErrorKind::Unsupported => FindingCode::UnsupportedFormat,
            _ => FindingCode::Corrupt,
        };
        d.finding(code, Severity::Critical, e.message);
    }
}
