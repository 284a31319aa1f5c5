//! Tar archives (OVA packages, and the tar inside UEC and GCE tarballs): the one tar parser,
//! used by detection and by the package drivers alike.
//!
//! Headers are the `tar` crate's typed views of the 512-byte blocks; the walk is ours, async
//! and by offset: member data is never read here, only skipped, so an OVA's headers cost a
//! few small reads whatever its size, and a tar inside a compressed stream is walked by the
//! stream's forward reads. Formats: POSIX ustar (prefix + name), GNU (`L`/`K` long names,
//! base-256 numbers, old-GNU sparse `S` members with extension blocks), pax (`path`,
//! `linkpath`, `size`: members over 8 GiB), v7 headers after a ustar first one.
//!
//! Specs: POSIX.1-2017 `pax` (ustar and extended headers); GNU tar manual, "Basic Tar Format"
//! and "Sparse Formats" (old GNU format).

use crate::error::{Error, ErrorKind, Result};
use crate::source::Source;

pub const BLOCK: u64 = 512;
/// Headers walked at most: an OVA or UEC tarball has a handful of members.
pub const MAX_MEMBERS: usize = 4096;
/// A GNU long name or a pax header larger than this is not believed.
const MAX_META: u64 = 1 << 20;
/// Old-GNU sparse extension blocks followed at most (21 segments each).
const MAX_SPARSE_BLOCKS: usize = 1 << 14;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    /// An old-GNU sparse file: `segments` are `(offset in the file, length)`, ascending; their
    /// bytes are stored back to back from the member's data offset, the rest reads as zeros.
    Sparse {
        segments: Vec<(u64, u64)>,
    },
    Directory,
    Symlink(String),
    Hardlink(String),
    /// Anything else (devices, FIFOs, vendor types): the type flag.
    Other(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The path as stored (after long names and pax), `/`-separated.
    pub path: String,
    pub kind: Kind,
    /// The member's logical size (for a sparse file, its real size).
    pub size: u64,
    /// Where its stored bytes start in the archive.
    pub data: u64,
    /// Bytes stored in the archive (less than `size` for a sparse file).
    pub stored: u64,
    /// Where its first header block starts (the long-name or pax block when there is one).
    pub header: u64,
}

impl Member {
    /// The last path component.
    pub fn name(&self) -> &str {
        self.path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.path)
    }

    pub fn is_file(&self) -> bool {
        matches!(self.kind, Kind::Regular | Kind::Sparse { .. })
    }

    /// Metadata that tools leave beside the real members: pax headers extracted by a tar that
    /// did not understand them (`PaxHeader/x`, `PaxHeaders.123/x`) and macOS AppleDouble
    /// files (`._x`).
    pub fn is_noise(&self) -> bool {
        self.name().starts_with("._")
            || self
                .path
                .split('/')
                .any(|c| c == "PaxHeader" || c.starts_with("PaxHeaders."))
    }
}

/// How the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The end-of-archive block, or the end of the file right after a member.
    Complete,
    /// A header or a member's data runs past the end of the file.
    Truncated { at: u64 },
    /// A block that is not a valid header where one must be.
    Bad { at: u64, why: String },
    /// More than [`MAX_MEMBERS`] members: the rest were not examined.
    TooMany,
}

#[derive(Clone, Debug)]
pub struct Listing {
    pub members: Vec<Member>,
    pub end: End,
    /// Where the walk stopped (the end-of-archive block, or the failing header).
    pub stopped_at: u64,
}

/// A valid tar header at the start of `block` (ustar or GNU magic, right checksum): what
/// detection asks before calling a file a tar.
pub fn is_header(block: &[u8]) -> bool {
    block.len() >= BLOCK as usize
        && block[257..262] == *b"ustar"
        && checksum_ok(&block[..BLOCK as usize])
}

/// The header checksum: the byte sum with the checksum field read as spaces. Old tars summed
/// signed bytes; both are accepted, as GNU tar does.
fn checksum_ok(block: &[u8]) -> bool {
    let header = tar::Header::from_byte_slice(block);
    let Ok(stored) = header.cksum() else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    stored == unsigned || i64::from(stored) == i64::from(signed)
}

/// What one header block says, before long names and pax records are applied.
enum Block {
    /// An all-zero block: the end of the archive.
    End,
    Header(Box<tar::Header>),
}

fn block(bytes: &[u8], at: u64) -> Result<Block> {
    if bytes.iter().all(|&b| b == 0) {
        return Ok(Block::End);
    }
    if !checksum_ok(bytes) {
        return Err(Error::corrupt(format!(
            "tar header at offset {at} has a bad checksum"
        )));
    }
    let mut header = Box::new(tar::Header::new_old());
    header.as_mut_bytes().copy_from_slice(bytes);
    Ok(Block::Header(header))
}

/// Text of a long-name block or pax value: up to the first NUL.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Extended attributes that apply to the next member.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl Pending {
    fn pax(&mut self, records: &[u8], at: u64) -> Result<()> {
        for record in tar::PaxExtensions::new(records) {
            let record = record
                .map_err(|_| Error::corrupt(format!("bad pax record in the header at {at}")))?;
            let value = || String::from_utf8_lossy(record.value_bytes()).into_owned();
            match record.key_bytes() {
                b"path" => self.path = Some(value()),
                b"linkpath" => self.link = Some(value()),
                b"size" => {
                    let size = value().trim().parse().map_err(|_| {
                        Error::corrupt(format!("bad pax size in the header at {at}"))
                    })?;
                    self.size = Some(size);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn number(field: std::io::Result<u64>, what: &str, at: u64) -> Result<u64> {
    field.map_err(|_| Error::corrupt(format!("bad {what} in the tar header at offset {at}")))
}

/// Walk the archive's headers from offset 0. Reads only headers (and the long names, pax
/// records and sparse maps they point to), never member data. A bad block ends the walk with
/// [`End::Bad`]; only a failing read is an error.
pub async fn list(src: &dyn Source) -> Result<Listing> {
    let mut walk = Walk::new(src);
    let mut members = vec![];
    while let Some(m) = walk.next().await? {
        members.push(m);
    }
    Ok(Listing {
        members,
        end: walk.end.clone().unwrap_or(End::Complete),
        stopped_at: walk.pos,
    })
}

/// The walk one member at a time, so a caller can read a member's first bytes before the walk
/// moves on (in a compressed stream, going back costs decoding again).
pub struct Walk<'a> {
    src: &'a dyn Source,
    /// The next header's offset.
    pub pos: u64,
    pending: Pending,
    count: usize,
    /// How the walk ended, once it has.
    pub end: Option<End>,
}

impl<'a> Walk<'a> {
    pub fn new(src: &'a dyn Source) -> Self {
        Walk {
            src,
            pos: 0,
            pending: Pending::default(),
            count: 0,
            end: None,
        }
    }

    /// The next member, or None once the walk has ended (see [`Walk::end`]).
    pub async fn next(&mut self) -> Result<Option<Member>> {
        let mut first = None;
        while self.end.is_none() {
            if self.count >= MAX_MEMBERS {
                self.end = Some(End::TooMany);
                break;
            }
            if self.pos == self.src.len() {
                // No end-of-archive blocks: tolerated, as GNU tar does.
                self.end = Some(End::Complete);
                break;
            }
            let pos = self.pos;
            let mut bytes = [0u8; BLOCK as usize];
            // In a compressed stream, skipping a member's data is decoding it: in steps.
            self.src.advance(pos).await?;
            match read(self.src, pos, &mut bytes).await {
                Ok(true) => {}
                // A stream of unknown length learns it here: ending right at a header is the
                // end of an archive without end-of-archive blocks.
                Ok(false)
                | Err(Error {
                    kind: ErrorKind::Truncated,
                    ..
                }) if pos == self.src.len() => {
                    self.end = Some(End::Complete);
                    break;
                }
                Ok(false)
                | Err(Error {
                    kind: ErrorKind::Truncated,
                    ..
                }) => {
                    self.end = Some(End::Truncated { at: pos });
                    break;
                }
                Err(e) => return Err(e),
            }
            let header = match block(&bytes, pos) {
                Ok(Block::End) => {
                    self.end = Some(End::Complete);
                    break;
                }
                Ok(Block::Header(h)) => h,
                Err(e) => {
                    self.end = Some(End::Bad {
                        at: pos,
                        why: e.to_string(),
                    });
                    break;
                }
            };
            let start = *first.get_or_insert(pos);
            match member(self.src, &header, pos, &mut self.pending).await {
                Ok(Step::Meta { next }) => self.pos = next,
                Ok(Step::Member(mut m, next)) => {
                    m.header = start;
                    self.count += 1;
                    if m.data
                        .checked_add(m.stored)
                        .is_none_or(|e| e > self.src.len())
                    {
                        self.end = Some(End::Truncated { at: m.data });
                    }
                    self.pos = next;
                    return Ok(Some(m));
                }
                Ok(Step::Truncated)
                | Err(Error {
                    kind: ErrorKind::Truncated,
                    ..
                }) => {
                    self.end = Some(End::Truncated { at: pos });
                }
                Err(e) if e.kind == ErrorKind::Io => return Err(e),
                Err(e) => {
                    self.end = Some(End::Bad {
                        at: pos,
                        why: e.to_string(),
                    })
                }
            }
        }
        Ok(None)
    }
}

enum Step {
    /// A long-name or pax block was taken in; the next header is at `next`.
    Meta { next: u64 },
    /// A member, and where the next header is.
    Member(Member, u64),
    /// A long name, pax record or sparse map runs past the end of the file.
    Truncated,
}

/// Read a block fully, or report that the file ends first.
async fn read(src: &dyn Source, at: u64, buf: &mut [u8]) -> Result<bool> {
    match at.checked_add(buf.len() as u64) {
        Some(end) if end <= src.len() => {
            src.read_at(at, buf).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The data after a header at `pos`: `len` bytes rounded up to whole blocks.
fn after(pos: u64, len: u64) -> Result<u64> {
    len.checked_next_multiple_of(BLOCK)
        .and_then(|n| (pos + BLOCK).checked_add(n))
        .ok_or_else(|| Error::corrupt(format!("tar member at {pos} has an impossible size")))
}

async fn member(
    src: &dyn Source,
    header: &tar::Header,
    pos: u64,
    pending: &mut Pending,
) -> Result<Step> {
    use tar::EntryType as T;
    let stored = number(header.entry_size(), "size", pos)?;
    let kind = header.entry_type();
    if matches!(
        kind,
        T::GNULongName | T::GNULongLink | T::XHeader | T::XGlobalHeader
    ) {
        if stored > MAX_META {
            return Err(Error::corrupt(format!(
                "tar extended header at {pos} claims {stored} bytes"
            )));
        }
        let mut data = vec![0u8; stored as usize];
        if !read(src, pos + BLOCK, &mut data).await? {
            return Ok(Step::Truncated);
        }
        match kind {
            T::GNULongName => pending.path = Some(text(&data)),
            T::GNULongLink => pending.link = Some(text(&data)),
            T::XHeader => pending.pax(&data, pos)?,
            // Global pax records (a commit id from `git archive`): nothing we use.
            _ => {}
        }
        return Ok(Step::Meta {
            next: after(pos, stored)?,
        });
    }
    let path = pending
        .path
        .take()
        .unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
    let link = pending.link.take().or_else(|| {
        header
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    });
    let mut stored = pending.size.take().unwrap_or(stored);
    let mut data = pos + BLOCK;
    let (kind, size) = match kind {
        T::Regular | T::Continuous => (Kind::Regular, stored),
        // A pre-POSIX tar marks a directory by its trailing slash.
        T::Directory => (Kind::Directory, 0),
        T::Symlink => (Kind::Symlink(link.unwrap_or_default()), 0),
        T::Link => (Kind::Hardlink(link.unwrap_or_default()), 0),
        T::GNUSparse => {
            let gnu = header
                .as_gnu()
                .ok_or_else(|| Error::corrupt(format!("sparse tar member at {pos} is not GNU")))?;
            let real = number(gnu.real_size(), "real size", pos)?;
            let (segments, next) = match sparse_map(src, gnu, pos).await? {
                Some(map) => map,
                None => return Ok(Step::Truncated),
            };
            check_segments(&segments, real, stored, pos)?;
            data = next;
            (Kind::Sparse { segments }, real)
        }
        other => (Kind::Other(other.as_byte()), stored),
    };
    if !matches!(kind, Kind::Regular | Kind::Sparse { .. } | Kind::Other(_)) {
        // Directories and links store nothing, whatever their size field says.
        stored = 0;
    }
    let kind = match kind {
        Kind::Regular if path.ends_with('/') => Kind::Directory,
        k => k,
    };
    let next = after(data - BLOCK, stored)?;
    Ok(Step::Member(
        Member {
            path,
            kind,
            size,
            data,
            stored,
            header: pos,
        },
        next,
    ))
}

/// The old-GNU sparse map: four segments in the header, then extension blocks of 21 while the
/// "extended" flag is set. Returns the segments and where the member's data starts.
async fn sparse_map(
    src: &dyn Source,
    gnu: &tar::GnuHeader,
    pos: u64,
) -> Result<Option<(Vec<(u64, u64)>, u64)>> {
    let mut segments = vec![];
    let mut push = |s: &tar::GnuSparseHeader| -> Result<()> {
        if !s.is_empty() {
            segments.push((
                number(s.offset(), "sparse offset", pos)?,
                number(s.length(), "sparse length", pos)?,
            ));
        }
        Ok(())
    };
    gnu.sparse.iter().try_for_each(&mut push)?;
    let mut at = pos + BLOCK;
    let mut extended = gnu.is_extended();
    for _ in 0..MAX_SPARSE_BLOCKS {
        if !extended {
            return Ok(Some((segments, at)));
        }
        let mut bytes = [0u8; BLOCK as usize];
        if !read(src, at, &mut bytes).await? {
            return Ok(None);
        }
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(&bytes);
        ext.sparse().iter().try_for_each(&mut push)?;
        extended = ext.is_extended();
        at += BLOCK;
    }
    Err(Error::corrupt(format!(
        "sparse tar member at {pos} has more than {MAX_SPARSE_BLOCKS} map blocks"
    )))
}

/// Segments must ascend without overlap, end inside the real size, and add up to the bytes
/// stored (GNU tar's own rule), or the member cannot be laid out.
fn check_segments(segments: &[(u64, u64)], real: u64, stored: u64, pos: u64) -> Result<()> {
    let bad = |why: &str| Err(Error::corrupt(format!("sparse tar member at {pos}: {why}")));
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in segments {
        if off < end {
            return bad("its segments overlap or are out of order");
        }
        end = match off.checked_add(len) {
            Some(e) if e <= real => e,
            _ => return bad("a segment lies past its real size"),
        };
        total += len;
    }
    if total != stored {
        return bad("its segments do not add up to the bytes stored");
    }
    Ok(())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::native::block_on;
    use crate::source::MemSource;

    fn listing(data: Vec<u8>) -> Listing {
        block_on(list(&MemSource::new("t.tar", data))).unwrap()
    }

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(vec![]);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn members_with_long_names_and_offsets() {
        let long = format!("{}/disk.vmdk", "d".repeat(150));
        let tar = archive(&[("a.ovf", b"<xml/>"), (&long, &[7u8; 1000])]);
        assert!(is_header(&tar));
        let l = listing(tar.clone());
        assert_eq!(l.end, End::Complete);
        assert_eq!(l.members.len(), 2);
        assert_eq!(l.members[0].path, "a.ovf");
        assert_eq!(l.members[1].path, long);
        assert_eq!(l.members[1].name(), "disk.vmdk");
        let m = &l.members[1];
        assert_eq!(
            &tar[m.data as usize..(m.data + m.size) as usize],
            &[7u8; 1000]
        );
        // The long name's own block comes first.
        assert!(m.header < m.data - BLOCK);
    }

    #[test]
    fn truncated_and_damaged_archives_end_the_walk() {
        let tar = archive(&[("a", &[1u8; 3000]), ("b", b"x")]);
        let l = listing(tar[..2000].to_vec());
        assert!(matches!(l.end, End::Truncated { .. }), "{:?}", l.end);
        let mut bad = tar.clone();
        bad[512 * 7 + 10] ^= 0xff; // the second header
        let l = listing(bad);
        assert_eq!(l.members.len(), 1);
        assert!(matches!(l.end, End::Bad { at: 3584, .. }), "{:?}", l.end);
    }

    #[test]
    fn noise_members() {
        let m = |p: &str| Member {
            path: p.into(),
            kind: Kind::Regular,
            size: 0,
            data: 0,
            stored: 0,
            header: 0,
        };
        assert!(m("PaxHeader/disk.vmdk").is_noise());
        assert!(m("./PaxHeaders.1234/disk.vmdk").is_noise());
        assert!(m("dir/._disk.vmdk").is_noise());
        assert!(!m("disk.vmdk").is_noise());
    }

    #[test]
    fn sparse_segments_must_add_up() {
        assert!(check_segments(&[(0, 10), (100, 5)], 200, 15, 0).is_ok());
        assert!(check_segments(&[(0, 10), (5, 5)], 200, 15, 0).is_err());
        assert!(check_segments(&[(0, 10), (195, 10)], 200, 20, 0).is_err());
        assert!(check_segments(&[(0, 10)], 200, 11, 0).is_err());
        assert!(check_segments(&[(u64::MAX, 10)], u64::MAX, 10, 0).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let base = archive(&[("a.ovf", b"<x/>"), ("disk", &[1u8; 700])]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut t = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % t.len();
                t[i] = (x >> 32) as u8;
            }
            let _ = listing(t);
        }
    }
}
