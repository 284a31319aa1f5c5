//! Problems and the output budget.

use super::*;

#[derive(Default)]
pub(super) struct Problems {
    list: Vec<Finding>,
    dropped: usize,
}

impl Problems {
    pub(super) fn push(
        &mut self,
        code: FindingCode,
        severity: Severity,
        message: impl Into<String>,
    ) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(Finding::new(
                code,
                severity,
                format!("OVF descriptor: {}", message.into()),
            ));
        } else {
            self.dropped += 1;
        }
    }

    pub(super) fn warn(&mut self, code: FindingCode, message: impl Into<String>) {
        self.push(code, Severity::Warning, message);
    }

    pub(super) fn finish(mut self) -> Vec<Finding> {
        if self.dropped > 0 {
            self.list.push(Finding::new(
                FindingCode::OvfProblemsTruncated,
                Severity::Info,
                format!("OVF descriptor: {} more problems not listed", self.dropped),
            ));
        }
        self.list
    }
}

/// Caps the records kept, so a hostile descriptor cannot make the report huge.
#[derive(Default)]
pub(super) struct Budget {
    used: usize,
    reported: bool,
}

impl Budget {
    pub(super) fn take(&mut self, problems: &mut Problems) -> bool {
        if self.used < MAX_RECORDS {
            self.used += 1;
            return true;
        }
        if !self.reported {
            self.reported = true;
            problems.warn(
                FindingCode::OvfTooMany,
                format!(
                    "more than {MAX_RECORDS} files, disks, systems and devices; the rest is ignored"
                ),
            );
        }
        false
    }
}
