//! The open-time integrity walk every driver shares: map the whole guest disk through the
//! driver's own tables (headers and tables only, never a data cluster) and check where each
//! entry points. Data stored past the end of its file becomes ONE Critical `truncated`
//! finding saying how much of the guest disk is lost and the first host offset; two guest
//! units stored in the same host bytes, or data stored over the header or a table, one
//! Critical `corrupt` finding.
//!
//! Drivers map a unit past the end as data at its (past-the-end) host offset, so the walk
//! knows where it was. A second-level table past the end (a qcow2 L2 table, a VMDK grain
//! table) is declared with the guest range it maps: that range counts as lost, the message
//! says the table itself is missing, and the walk does not map it. A driver that still fails
//! the map with a `Truncated` error is split down to the unit so the count stays the same.
//! Memory stays bounded: the map is taken a chunk at a time and the host ranges kept for the
//! overlap check are capped.

use crate::error::ErrorKind;
use crate::extent::{Extent, FileId, Mapping};
use crate::finding_code::FindingCode;
use crate::formats::common::extents::push;
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

/// Header or table bytes of one file: data stored there is `corrupt`.
pub(crate) struct Meta {
    pub file: FileId,
    pub offset: u64,
    pub len: u64,
    pub name: &'static str,
    /// For a table that maps part of the guest disk (an L2 table): that guest range. When the
    /// table lies (partly) past the end of its file, the range counts as lost.
    pub maps: Option<(u64, u64)>,
}

/// Where a driver's metadata lives and how its tables divide the guest disk.
pub(crate) struct Layout {
    /// The files the data lives in, with their lengths (the first is the one opened).
    pub files: Vec<(FileId, u64)>,
    /// The guest bytes one table entry maps (cluster, grain, block): a failing map is split
    /// down to this size.
    pub unit: u64,
    pub metadata: Vec<Meta>,
}

impl Layout {
    /// The layout of a one-file image, its metadata added with [`Layout::meta`].
    pub(crate) fn new(file: FileId, file_len: u64, unit: u64) -> Layout {
        Layout {
            files: vec![(file, file_len)],
            unit,
            metadata: vec![],
        }
    }

    /// Add header or table bytes of the first file.
    pub(crate) fn meta(&mut self, offset: u64, len: u64, name: &'static str) {
        let file = self.files[0].0;
        self.meta_in(file, offset, len, name);
    }

    /// Add header or table bytes of `file`.
    pub(crate) fn meta_in(&mut self, file: FileId, offset: u64, len: u64, name: &'static str) {
        self.metadata.push(Meta {
            file,
            offset,
            len,
            name,
            maps: None,
        });
    }

    /// Add a table of `file` that maps guest `[from, to)`.
    pub(crate) fn table(
        &mut self,
        file: FileId,
        at: (u64, u64),
        name: &'static str,
        maps: (u64, u64),
    ) {
        self.metadata.push(Meta {
            file,
            offset: at.0,
            len: at.1,
            name,
            maps: Some(maps),
        });
    }

    fn len_of(&self, file: FileId) -> Option<u64> {
        self.files.iter().find(|f| f.0 == file).map(|f| f.1)
    }
}

/// The first lost guest byte: where, and what lay past the end (data at a host offset, a
/// table, or only the driver's word).
struct FirstLost {
    guest: u64,
    host: Option<u64>,
    file_len: u64,
    /// A table past the end, as (name, guest range it maps).
    table: Option<(&'static str, u64, u64)>,
    why: String,
}

/// What the walk found.
#[derive(Default)]
pub(crate) struct Intact {
    /// Guest bytes whose data (or the table that maps them) lies past the end.
    pub lost: u64,
    first_lost: Option<FirstLost>,
    last_lost_end: u64,
    /// Tables past the end.
    missing_tables: u64,
    corrupt: Option<String>,
    /// (file, start, end, what) of every host range the map uses.
    ranges: Vec<(u64, u64, u64, u32)>,
    ranges_full: bool,
    splits: u64,
}

impl Intact {
    /// The findings: at most one `truncated` and one `corrupt`.
    pub(crate) fn findings(&self) -> Vec<Finding> {
        let mut out = vec![];
        if let Some(f) = &self.first_lost {
            let first = match (f.host, f.table) {
                (Some(h), Some((t, from, to))) => format!(
                    "first at host offset {h:#x}, the {t} mapping guest {}..{}: the table itself is missing",
                    size(from),
                    size(to)
                ),
                (Some(h), None) => format!("first at host offset {h:#x}"),
                _ => format!("first: {}", f.why),
            };
            let mut m = format!(
                "guest data at {}..{} ({} in all, {} bytes) is lost past the end of the {} file; {first}",
                size(f.guest),
                size(self.last_lost_end),
                size(self.lost),
                self.lost,
                size(f.file_len),
            );
            if self.missing_tables > 0 {
                m += &format!(
                    "; {} missing table(s) count as the whole guest range each maps",
                    self.missing_tables
                );
            }
            out.push(Finding::new(FindingCode::Truncated, Severity::Critical, m));
        }
        if let Some(m) = &self.corrupt {
            out.push(Finding::new(FindingCode::Corrupt, Severity::Critical, m));
        }
        out
    }

    /// Why the data cannot be read, when the walk found data past the end.
    pub(crate) fn cut(&self) -> Option<String> {
        let mut f = self.findings();
        f.retain(|f| f.code == FindingCode::Truncated);
        f.pop().map(|f| f.message)
    }

    fn lose(&mut self, start: u64, len: u64, first: FirstLost) {
        if len == 0 {
            return;
        }
        self.lost += len;
        if self.first_lost.as_ref().is_none_or(|f| start < f.guest) {
            self.first_lost = Some(FirstLost {
                guest: start,
                ..first
            });
        }
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
    let skip = missing_tables(layout, size, &mut found);
    let unit = layout.unit.clamp(512, CHUNK);
    let chunk = CHUNK / unit * unit;
    let mut pos = 0;
    while pos < size {
        let end = size.min(pos.saturating_add(chunk));
        for (s, e) in outside(&skip, pos, end) {
            if !map_range(image, layout, unit, s, e, &mut found).await {
                return found;
            }
        }
        pos = end;
    }
    for (i, m) in layout.metadata.iter().enumerate() {
        let flen = layout.len_of(m.file).unwrap_or(0);
        let end = m.offset.saturating_add(m.len).min(flen);
        found
            .ranges
            .push((m.file.0 as u64, m.offset, end, i as u32));
    }
    check_overlaps(&mut found, layout);
    found
}

/// Count the guest range of each table that lies (partly) past the end of its file as lost;
/// returns those ranges, sorted, for the walk to leave unmapped.
fn missing_tables(layout: &Layout, size: u64, found: &mut Intact) -> Vec<(u64, u64)> {
    let mut skip = vec![];
    for m in &layout.metadata {
        let (Some((from, to)), Some(flen)) = (m.maps, layout.len_of(m.file)) else {
            continue;
        };
        if m.offset.checked_add(m.len).is_some_and(|e| e <= flen) {
            continue;
        }
        let (from, to) = (from.min(size), to.min(size));
        if from >= to {
            continue;
        }
        found.missing_tables += 1;
        let first = FirstLost {
            guest: from,
            host: Some(m.offset),
            file_len: flen,
            table: Some((m.name, from, to)),
            why: String::new(),
        };
        found.lose(from, to - from, first);
        skip.push((from, to));
    }
    skip.sort_unstable();
    skip
}

/// The parts of `[start, end)` outside the sorted ranges `skip`.
fn outside(skip: &[(u64, u64)], start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = vec![];
    let mut pos = start;
    for &(s, e) in skip {
        if e <= pos || s >= end {
            continue;
        }
        if s > pos {
            out.push((pos, s));
        }
        pos = pos.max(e);
    }
    if pos < end {
        out.push((pos, end));
    }
    out
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
                            let first = FirstLost {
                                guest: s,
                                host: None,
                                file_len: layout.files[0].1,
                                table: None,
                                why: err.message,
                            };
                            found.lose(s, e - s, first);
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
    let past = |host: u64, flen: u64| FirstLost {
        guest: start,
        host: Some(host),
        file_len: flen,
        table: None,
        why: String::new(),
    };
    match *mapping {
        Mapping::Data { file, offset } => {
            let Some(flen) = layout.len_of(file) else {
                return;
            };
            let end = offset.saturating_add(len);
            if end > flen {
                // The bytes from the end of the file on are lost.
                let inside = flen.saturating_sub(offset).min(len);
                found.lose(start + inside, len - inside, past(offset.max(flen), flen));
            }
            found.keep(file, offset, end.min(flen.max(offset)));
        }
        // Compressed units may legitimately share a host cluster (qcow2): only their start is
        // checked, as its length is an upper bound.
        Mapping::Compressed { file, offset, .. } => {
            if let Some(flen) = layout.len_of(file).filter(|&l| offset >= l) {
                found.lose(start, len, past(offset, flen));
            }
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
    let name = |what: u32| layout.metadata.get(what as usize).map(|m| m.name);
    for w in ranges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.0 == b.0 && b.1 < a.2 {
            let what = match (name(a.3), name(b.3)) {
                // Two blocks' bitmaps (VHD) sharing bytes: their blocks share them too.
                (Some(x), Some(y)) if x == y => {
                    format!("two {x}s are stored in the same host bytes")
                }
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
pub(crate) fn merge_findings(findings: &mut Vec<Finding>, found: &Intact) {
    for f in found.findings() {
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
    pub(crate) fn apply(&self, findings: &mut Vec<Finding>) -> Option<(bool, String)> {
        merge_findings(findings, self);
        match self.cut() {
            Some(m) => Some((true, m)),
            None => self.corrupt.clone().map(|m| (false, m)),
        }
    }
}

/// Map guest `[pos, end)` to a cluster that starts at host offset `at`, past the end of
/// `file`: mapped all the same, so the walk counts it and names its offset (the driver
/// refuses to read it then).
pub(crate) fn push_past_end(out: &mut Vec<Extent>, file: FileId, pos: u64, end: u64, at: u64) {
    push(out, pos, end - pos, Mapping::Data { file, offset: at });
}

impl Intact {
    /// [`Intact::apply`] for a driver that keeps why its data cannot be read as (truncated,
    /// message): the walk's cut replaces an open-time cut (its count is the whole one); an
    /// overlap is kept unless another reason is there first.
    pub(crate) fn settle(&self, findings: &mut Vec<Finding>, blocked: &mut Option<(bool, String)>) {
        match self.apply(findings) {
            Some((true, m)) if blocked.as_ref().is_none_or(|b| b.0) => *blocked = Some((true, m)),
            Some(b) => _ = blocked.get_or_insert(b),
            None => {}
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
