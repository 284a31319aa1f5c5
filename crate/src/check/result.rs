//! What a check found, in the shape of `qemu-img check --output=json` (qapi `ImageCheck`:
//! counters that are zero are left out, as qemu-img leaves them out), plus the problems as
//! one-line messages.

use serde::Serialize;

/// How many problem messages a result keeps; the rest are only counted.
pub const MAX_PROBLEMS: usize = 50;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckResult {
    pub filename: String,
    pub format: String,
    /// Problems that stopped part of the check from running (an unreadable table).
    pub check_errors: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub corruptions: u64,
    /// Clusters whose stored refcount is higher than their use.
    #[serde(skip_serializing_if = "is_zero")]
    pub leaks: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub image_end_offset: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub allocated_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub fragmented_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub compressed_clusters: u64,
    /// The first [`MAX_PROBLEMS`] problems, one line each.
    pub problems: Vec<String>,
    /// How many more problems were found than `problems` lists.
    #[serde(skip_serializing_if = "is_zero")]
    pub problems_not_shown: u64,
    /// A package's disks, each checked on its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<CheckResult>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which kind of problem a message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    CheckError,
    Corruption,
    Leak,
}

impl CheckResult {
    pub fn new(filename: &str, format: &str) -> Self {
        CheckResult {
            filename: filename.to_string(),
            format: format.to_string(),
            ..Default::default()
        }
    }

    /// Count one problem of `kind` and keep its message while there is room.
    pub fn note(&mut self, kind: Kind, message: impl Into<String>) {
        match kind {
            Kind::CheckError => self.check_errors += 1,
            Kind::Corruption => self.corruptions += 1,
            Kind::Leak => self.leaks += 1,
        }
        self.keep(message.into());
    }

    /// Keep a message without counting it (a summary of problems counted elsewhere).
    pub fn keep(&mut self, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(message);
        } else {
            self.problems_not_shown += 1;
        }
    }

    /// Totals over this result and its disks.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.disks.iter().fold(
            (self.check_errors, self.corruptions, self.leaks),
            |(e, c, l), d| {
                let (de, dc, dl) = d.totals();
                (e + de, c + dc, l + dl)
            },
        )
    }

    /// qemu-img check's exit status: 1 when the check could not run (wholly or in part),
    /// 2 for corruptions, 3 for leaks only, 0 when clean (qemu-img.c `img_check`).
    pub fn exit_code(&self) -> i32 {
        match self.totals() {
            (e, _, _) if e > 0 => 1,
            (_, c, _) if c > 0 => 2,
            (_, _, l) if l > 0 => 3,
            _ => 0,
        }
    }
}
