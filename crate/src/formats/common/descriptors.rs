//! Text descriptors that list a disk's pieces in other files (VMDK extents, Parallels
//! storages): reading one whole, and matching the files it names by base name among the
//! supplied files only ([`ImageSet::find`], never opened as a path), with the findings a
//! missing or mis-sized piece gives.

use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, read_vec};

/// The whole of descriptor file `src` (`what` names it in a read error), refused as
/// unsupported with the message `too_large(name, len)` when it is longer than `max` bytes.
pub(crate) async fn read_descriptor(
    src: &dyn Source,
    max: u64,
    what: &str,
    too_large: impl FnOnce(&str, u64) -> String,
) -> Result<Vec<u8>> {
    if src.len() > max {
        return Err(Error::unsupported(too_large(src.name(), src.len())));
    }
    read_vec(src, 0, src.len(), what).await
}

/// A name as written in an image, safe to print (no control characters, bounded).
pub(crate) fn shown(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    format!("{clean:?}")
}

/// The supplied file `name` stands for, other than `not` (the descriptor itself, where a
/// driver reads that as missing). When there is none, a `missing-extent` finding goes to
/// `findings` and the error to read the piece with is returned. `piece` names the piece
/// ("VMDK extent"), `descriptor` the file that lists it ("the descriptor").
pub(crate) fn extent_file(
    set: &ImageSet,
    name: &str,
    not: Option<FileId>,
    piece: &str,
    descriptor: &str,
    findings: &mut Vec<Finding>,
) -> std::result::Result<FileId, Error> {
    if let Some(fid) = set.find(name).filter(|&f| Some(f) != not) {
        return Ok(fid);
    }
    let name = shown(base_name(name));
    findings.push(Finding::new(
        FindingCode::MissingExtent,
        Severity::Warning,
        format!("{piece} file {name} was not supplied: the disk cannot be read without it"),
    ));
    Err(Error::missing(format!(
        "{piece} file {name} was not supplied with {descriptor}"
    )))
}

/// The finding for a piece file `name` that holds `held` bytes where its descriptor line
/// gives it `len`.
pub(crate) fn extent_size(piece: &str, name: &str, held: u64, len: u64) -> Finding {
    let rest = if held < len {
        "the rest reads as zeros"
    } else {
        "the excess is ignored"
    };
    Finding::new(
        FindingCode::ExtentSize,
        Severity::Warning,
        format!(
            "{piece} {} holds {held} bytes but the descriptor gives it {len}: {rest}",
            shown(name)
        ),
    )
}

/// `Image::files` of a disk made of pieces: the main file, then each piece file once.
pub(crate) fn files_with_extents(
    main: FileId,
    pieces: impl IntoIterator<Item = FileId>,
) -> Vec<(FileId, &'static str)> {
    let mut files = vec![(main, "image")];
    for f in pieces {
        if !files.iter().any(|(x, _)| *x == f) {
            files.push((f, "extent"));
        }
    }
    files
}

/// The pieces of a disk laid end to end in guest order that guest `[start, end)` reaches,
/// each with the part of that range it holds, `[from, to)` from the piece's own start.
/// `span` gives a piece's guest start and length.
pub(crate) fn pieces_reached<'a, P>(
    pieces: &'a [P],
    span: impl Fn(&P) -> (u64, u64) + 'a,
    start: u64,
    end: u64,
) -> impl Iterator<Item = (&'a P, u64, u64)> + 'a {
    let first = pieces.partition_point(|p| {
        let (at, len) = span(p);
        at + len <= start
    });
    pieces[first..].iter().map_while(move |p| {
        let (at, len) = span(p);
        (at < end).then(|| (p, start.max(at) - at, end.min(at + len) - at))
    })
}
