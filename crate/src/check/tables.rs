//! The check every format with a block table gets, from its driver's extent map (VMDK grain
//! tables, VHD/VHDX BATs, VDI block maps, QED and Parallels tables): each stored run lies in
//! its file, no two guest ranges share host bytes, and each compressed unit (a
//! streamOptimized VMDK grain) decodes to exactly one unit. The drivers already refuse
//! unaligned entries and most entries past the end while mapping; such a refusal is one
//! corruption here.

use super::Progress;
use super::result::{CheckResult, Kind};
use crate::codec::decompress;
use crate::engine::MAP_WINDOW;
use crate::error::{Error, ErrorKind, Result};
use crate::extent::{FileId, Mapping};
use crate::image::Image;
use crate::source::{ImageSet, read_vec};
use std::collections::HashSet;

/// The most stored runs one check keeps to compare (32 bytes each: 1 GiB).
const MAX_RUNS: usize = 32 << 20;

/// A stored run: `[start, end)` of `file`, holding guest bytes from `guest`.
struct Run {
    file: FileId,
    start: u64,
    end: u64,
    guest: u64,
}

pub async fn check(
    set: &ImageSet,
    image: &dyn Image,
    r: &mut CheckResult,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let own: Vec<FileId> = image.files().into_iter().map(|(f, _)| f).collect();
    let size = image.virtual_size();
    progress.set_total(size.div_ceil(MAP_WINDOW));
    let mut runs: Vec<Run> = vec![];
    let mut seen_units = HashSet::new();
    let mut unit_buf = vec![];
    let mut pos = 0;
    while pos < size {
        let len = MAP_WINDOW.min(size - pos);
        let extents = match image.map(pos, len).await {
            Ok(e) => e,
            Err(e) if matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Truncated) => {
                r.note(Kind::Corruption, format!("guest offset {pos:#x}: {e}"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for x in extents {
            let (file, start, stored) = match x.mapping {
                Mapping::Data { file, offset } => (file, offset, x.len),
                Mapping::Compressed {
                    file,
                    offset,
                    len,
                    codec,
                    unit,
                    ..
                } => {
                    if !seen_units.insert((file.0, offset)) {
                        continue;
                    }
                    let src = &**set.file(file);
                    unit_buf.resize(unit as usize, 0);
                    let decoded = match read_vec(src, offset, len, "a compressed grain").await {
                        Ok(input) => decompress(codec, &input, &mut unit_buf),
                        Err(e) => Err(e),
                    };
                    // The driver's length only bounds the unit (up to the next grain it
                    // knows of); the bytes the stream used are what it occupies.
                    let used = match decoded {
                        Ok(used) => used as u64,
                        Err(e) => {
                            r.note(
                                Kind::Corruption,
                                format!(
                                    "guest offset {:#x}: the compressed unit at {offset:#x} does not decode to {unit} bytes ({e})",
                                    x.start
                                ),
                            );
                            len
                        }
                    };
                    (file, offset, used)
                }
                Mapping::Zero | Mapping::Unallocated => continue,
            };
            if !own.contains(&file) {
                continue;
            }
            let flen = set.file(file).len();
            if start.saturating_add(stored) > flen {
                r.note(
                    Kind::Corruption,
                    format!(
                        "guest offset {:#x}: stored at {start:#x} (+{stored} bytes), past the end of {}",
                        x.start,
                        set.file(file).name()
                    ),
                );
                continue;
            }
            if runs.len() >= MAX_RUNS {
                return Err(Error::unsupported(format!(
                    "the image is stored in more than {MAX_RUNS} separate runs: too many to compare"
                )));
            }
            runs.push(Run {
                file,
                start,
                end: start + stored,
                guest: x.start,
            });
        }
        pos += len;
        progress.step(1)?;
    }
    shared_runs(runs, set, r);
    Ok(())
}

/// Two guest ranges stored in the same host bytes: each run that overlaps an earlier one is
/// one corruption (qemu's vdi and parallels checks count a block used twice the same way).
fn shared_runs(mut runs: Vec<Run>, set: &ImageSet, r: &mut CheckResult) {
    runs.sort_unstable_by_key(|x| (x.file.0, x.start));
    let mut reach: Option<(FileId, u64, u64)> = None;
    for x in &runs {
        match reach {
            Some((f, end, guest)) if f == x.file && x.start < end => {
                r.note(
                    Kind::Corruption,
                    format!(
                        "guest offsets {guest:#x} and {:#x} are both stored at {:#x} of {}",
                        x.guest,
                        x.start,
                        set.file(x.file).name()
                    ),
                );
                if x.end > end {
                    reach = Some((f, x.end, x.guest));
                }
            }
            _ => reach = Some((x.file, x.end, x.guest)),
        }
    }
}
