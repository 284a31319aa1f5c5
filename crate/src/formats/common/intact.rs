//! The open-time integrity walk every driver shares: map the whole guest disk through the
//! driver's own tables (headers and tables only, never a data cluster) and check where each
//! entry points. Data stored past the end of the file becomes ONE Critical `truncated`
//! finding saying how much of the guest disk is lost; two guest units stored in the same host
//! bytes, or data stored over the header or a table, one Critical `corrupt` finding.
//!
//! Drivers either map a unit past the end as data (VHD, VDI) or fail the map with a
//! `Truncated` error (qcow2, VMDK, ...): the walk splits a failing range down to the unit so
//! both give the same count. Memory stays bounded: the map is taken a chunk at a time and the
//! host ranges kept for the overlap check are capped.

use crate::error::ErrorKind;
use crate::extent::{FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::image::Image;
use crate::report::{Finding, Severity};

/// Guest bytes mapped per `map_inside` call (the extents of one chunk are held at once).
const CHUNK: u64 = 64 << 20;
/// Host ranges kept for the overlap check (32 bytes each: 64 MiB at most).
const MAX_RANGES: usize = 2 << 20;
/// The `what` of a data range (else an index into [`Layout::metadata`]).
const DATA: u32 = u32::MAX;
/// Map calls spent splitting failing ranges; past it the rest of a failing chunk counts whole.
const MAX_SPLITS: u64 = 1 << 20;

/// Where a driver's metadata lives and how its tables divide the guest disk.
pub(crate) struct Layout {
    /// The file the image was opened from, and its length.
    pub file: FileId,
    pub file_len: u64,
    /// The guest bytes one table entry maps (cluster, grain, block): a failing map is split
    /// down to this size.
    pub unit: u64,
    /// Header and tables as (offset, length, name): data stored there is `corrupt`.
    pub metadata: Vec<(u64, u64, &'static str)>,
}

/// What the walk found.
#[derive(Default)]
pub(crate) struct Intact {
    /// Guest bytes whose data (or the table that maps them) lies past the end.
    pub lost: u64,
    first_lost: Option<(u64, Option<u64>, String)>,
    last_lost_end: u64,
    corrupt: Option<String>,
    /// (file, start, end, what) of every host range the map uses.
    ranges: Vec<(u64, u64, u64, u32)>,
    ranges_full: bool,
    splits: u64,
}

impl Intact {
    /// The findings: at most one `truncated` and one `corrupt`.
    pub(crate) fn findings(&self, file_len: u64) -> Vec<Finding> {
        let mut out = vec![];
        if let Some((guest, host, why)) = &self.first_lost {
            let first = match host {
                Some(h) => format!("first at host offset {h:#x}"),
                None => format!("first: {why}"),
            };
            out.push(Finding::new(
                FindingCode::Truncated,
                Severity::Critical,
                format!(
                    "guest data at {}..{} ({} in all, {} bytes) is stored past the end of the {} file; {first}",
                    size(*guest),
                    size(self.last_lost_end),
                    size(self.lost),
                    self.lost,
                    size(file_len),
                ),
            ));
        }
        if let Some(m) = &self.corrupt {
            out.push(Finding::new(FindingCode::Corrupt, Severity::Critical, m));
        }
        out
    }

    /// Why the data cannot be read, when the walk found data past the end.
    pub(crate) fn cut(&self, file_len: u64) -> Option<String> {
        let mut f = self.findings(file_len);
        f.retain(|f| f.code == FindingCode::Truncated);
        f.pop().map(|f| f.message)
    }

    fn lose(&mut self, start: u64, len: u64, host: Option<u64>, why: &str) {
        if len == 0 {
            return;
        }
        self.lost += len;
        self.first_lost
            .get_or_insert_with(|| (start, host, why.to_string()));
        self.last_lost_end = self.last_lost_end.max(start + len);
    }

    fn corrupt(&mut self, m: String) {
        self.corrupt.get_or_insert(m);
    }

    fn keep(&mut self, file: FileId, start: u64, end: u64) {
        if let Some(last) = self.ranges.last_mut()
            && last.0 == file.0 as u64
            && last.2 == start
            && last.3 == DATA
        {
            last.2 = end;
            return;
        }
        if self.ranges.len() >= MAX_RANGES {
            self.ranges_full = true;
            return;
        }
        self.ranges.push((file.0 as u64, start, end, DATA));
    }
}

/// Walk `image`'s whole map against `layout`. Stops quietly at an error that is neither
/// `Truncated` nor `Corrupt` (encryption, an unsupported extent: the driver reports those).
pub(crate) async fn walk(image: &dyn Image, layout: &Layout) -> Intact {
    let mut found = Intact::default();
    let size = image.virtual_size();
    let unit = layout.unit.clamp(512, CHUNK);
    let chunk = CHUNK / unit * unit;
    let mut pos = 0;
    while pos < size {
        let end = size.min(pos.saturating_add(chunk));
        if !map_range(image, layout, unit, pos, end, &mut found).await {
            return found;
        }
        pos = end;
    }
    for (i, &(offset, len, _)) in layout.metadata.iter().enumerate() {
        let end = offset.saturating_add(len).min(layout.file_len);
        found
            .ranges
            .push((layout.file.0 as u64, offset, end, i as u32));
    }
    check_overlaps(&mut found, layout);
    found
}

/// Map `[start, end)`, splitting it where the map fails. False when the walk must stop.
async fn map_range(
    image: &dyn Image,
    layout: &Layout,
    unit: u64,
    start: u64,
    end: u64,
    found: &mut Intact,
) -> bool {
    let mut todo = vec![(start, end)];
    while let Some((s, e)) = todo.pop() {
        match image.map_inside(s, e).await {
            Ok(extents) => {
                for x in extents {
                    note_extent(found, layout, x.start, x.len, &x.mapping);
                }
            }
            Err(err) => match err.kind {
                ErrorKind::Truncated | ErrorKind::Corrupt => {
                    found.splits += 1;
                    if e - s <= unit || found.splits > MAX_SPLITS {
                        if err.kind == ErrorKind::Truncated {
                            found.lose(s, e - s, None, &err.message);
                        } else {
                            found.corrupt(err.message);
                        }
                        continue;
                    }
                    // Split at a unit boundary; the lower half is mapped first.
                    let mid = (s + (e - s) / 2).div_ceil(unit) * unit;
                    let mid = if mid <= s || mid >= e { s + unit } else { mid };
                    todo.push((mid, e));
                    todo.push((s, mid));
                }
                _ => return false,
            },
        }
    }
    true
}

fn note_extent(found: &mut Intact, layout: &Layout, start: u64, len: u64, mapping: &Mapping) {
    let flen = layout.file_len;
    match *mapping {
        Mapping::Data { file, offset } if file == layout.file => {
            let end = offset.saturating_add(len);
            if end > flen {
                // The bytes from the end of the file on are lost.
                let inside = flen.saturating_sub(offset).min(len);
                found.lose(start + inside, len - inside, Some(offset.max(flen)), "");
            }
            found.keep(file, offset, end.min(flen.max(offset)));
        }
        // Compressed units may legitimately share a host cluster (qcow2): only their start is
        // checked, as its length is an upper bound.
        Mapping::Compressed { file, offset, .. } if file == layout.file && offset >= flen => {
            found.lose(start, len, Some(offset), "");
        }
        _ => {}
    }
}

/// Sort the kept host ranges and report the first two that overlap.
fn check_overlaps(found: &mut Intact, layout: &Layout) {
    if found.ranges_full {
        return;
    }
    let mut ranges = std::mem::take(&mut found.ranges);
    ranges.retain(|r| r.2 > r.1);
    ranges.sort_unstable();
    let name = |what: u32| layout.metadata.get(what as usize).map(|m| m.2);
    for w in ranges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.0 == b.0 && b.1 < a.2 {
            let what = match (name(a.3), name(b.3)) {
                (Some(x), Some(y)) => format!("the {x} and the {y} overlap"),
                (Some(x), None) | (None, Some(x)) => {
                    format!("guest data is stored over the {x}")
                }
                (None, None) => "two guest units are stored in the same host bytes".into(),
            };
            found.corrupt(format!(
                "{what}: host offsets {:#x}..{:#x} and {:#x}..{:#x}",
                a.1, a.2, b.1, b.2
            ));
            return;
        }
    }
}

/// Replace the driver's own `truncated` findings (one per table or block) by the walk's one,
/// and add its `corrupt` finding unless the driver has a critical one already.
pub(crate) fn merge_findings(findings: &mut Vec<Finding>, found: &Intact, file_len: u64) {
    for f in found.findings(file_len) {
        if f.code == FindingCode::Truncated {
            findings.retain(|d| d.code != FindingCode::Truncated);
        } else if findings
            .iter()
            .any(|d| d.code == FindingCode::Corrupt && d.severity == Severity::Critical)
        {
            continue;
        }
        findings.push(f);
    }
}

impl Intact {
    /// Merge the findings into a driver's (see [`merge_findings`]); returns why the data
    /// cannot be read as (truncated, message), as [`crate::formats::common::scan::readable`]
    /// takes it: a cut first, else an overlap.
    pub(crate) fn apply(
        &self,
        findings: &mut Vec<Finding>,
        file_len: u64,
    ) -> Option<(bool, String)> {
        merge_findings(findings, self, file_len);
        match self.cut(file_len) {
            Some(m) => Some((true, m)),
            None => self.corrupt.clone().map(|m| (false, m)),
        }
    }
}

/// `n` bytes as a person reads them: "512 MiB", "1.5 GiB", "300 bytes".
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} bytes")
    } else if v.fract() == 0.0 {
        format!("{v} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
#[path = "intact_tests.rs"]
mod tests;
