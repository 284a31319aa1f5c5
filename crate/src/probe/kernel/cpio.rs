//! Initramfs: newc cpio archives, concatenated, with what follows an early archive named.

use super::super::bytes::{slice, text};
use super::super::{Detection, Format};
use super::compression;
use crate::finding_code::FindingCode;
use crate::report::Severity;
use serde_json::{Value, json};

/// cpio members listed in details.
const LISTED_MEMBERS: usize = 16;
/// cpio headers walked at most (a 256 KiB head holds at most ~2400).
const MAX_HEADERS: usize = 4096;
/// Parts of a concatenated initramfs followed at most.
const MAX_PARTS: usize = 16;
/// Problems reported per archive at most (a damaged archive can fail every checksum).
const MAX_PROBLEMS: usize = 4;

/// The ARI detection for a cpio archive at the start of a file of `len` bytes, of which the
/// first `seen` bytes were walked.
pub(super) fn initramfs(c: &Cpio, seen: u64, len: u64) -> Detection {
    let mut d = Detection::new(Format::Ari);
    d.virtual_size = Some(len);
    d.set("archive", c.kind);
    d.set("layout", c.layout());
    d.set("members", c.members.clone());
    d.set("member-count", c.member_count);
    d.set("parts", c.parts.iter().map(Part::json).collect::<Vec<_>>());
    if let Some(next) = c.then {
        // Early microcode first, then the real (compressed) initramfs: the usual layout.
        d.set("followed-by", next);
    }
    let whole = seen >= len;
    match c.end {
        End::Cut if whole => d.truncated("cpio archive (no TRAILER!!! record)"),
        End::Cut | End::Padding | End::Limit if !whole => d.set("examined-bytes", seen),
        _ => {}
    }
    if c.parts.iter().any(|p| p.kind == CpioFormat::Odc.name()) {
        d.finding(
            FindingCode::UnsupportedFormat,
            Severity::Warning,
            "an odc cpio archive: the kernel unpacks only newc initramfs archives",
        );
    }
    if c.then == Some("lz4") {
        d.finding(
            FindingCode::UnsupportedFormat,
            Severity::Warning,
            "the archive after the early cpio is lz4 in the frame format: the kernel reads only the legacy format (lz4 -l)",
        );
    }
    for (code, severity, message) in &c.problems {
        d.finding(*code, *severity, message.as_str());
    }
    d
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CpioFormat {
    Newc,
    NewcCrc,
    Odc,
}

impl CpioFormat {
    fn at(buf: &[u8], at: usize) -> Option<Self> {
        match slice(buf, at, 6) {
            b"070701" => Some(CpioFormat::Newc),
            b"070702" => Some(CpioFormat::NewcCrc),
            b"070707" => Some(CpioFormat::Odc),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CpioFormat::Newc => "cpio (newc)",
            CpioFormat::NewcCrc => "cpio (newc, crc)",
            CpioFormat::Odc => "cpio (odc)",
        }
    }

    fn header_len(self) -> usize {
        if self == CpioFormat::Odc { 76 } else { 110 }
    }

    /// `n` rounded up to the archive's alignment, counted from the archive's start `base`.
    fn align(self, base: u64, n: u64) -> u64 {
        if self == CpioFormat::Odc {
            n
        } else {
            base + (n - base).div_ceil(4) * 4
        }
    }
}

/// The fields of one cpio header that matter here.
struct Header {
    filesize: u64,
    namesize: u64,
    /// newc's check field (the byte sum of the data for 070702).
    check: u64,
}

/// The `width`-byte ASCII number at `at`: every byte a digit of `radix` (no sign, no spaces).
fn number(h: &[u8], at: usize, width: usize, radix: u32) -> Option<u64> {
    let field = slice(h, at, width);
    if field.len() != width {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(radix)?;
        n.checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))
    })
}

/// Parse the header at the start of `h`; None when it is cut short or any field is not a number.
fn header(h: &[u8], format: CpioFormat) -> Option<Header> {
    if format == CpioFormat::Odc {
        // dev ino mode uid gid nlink rdev (6 each) mtime (11) namesize (6) filesize (11)
        const WIDTHS: [usize; 10] = [6, 6, 6, 6, 6, 6, 6, 11, 6, 11];
        let mut fields = [0u64; 10];
        let mut at = 6;
        for (f, w) in fields.iter_mut().zip(WIDTHS) {
            *f = number(h, at, w, 8)?;
            at += w;
        }
        return Some(Header {
            namesize: fields[8],
            filesize: fields[9],
            check: 0,
        });
    }
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let mut fields = [0u64; 13];
    for (i, f) in fields.iter_mut().enumerate() {
        *f = number(h, 6 + i * 8, 8, 16)?;
    }
    Some(Header {
        filesize: fields[6],
        namesize: fields[11],
        check: fields[12],
    })
}

/// Where the walk of a cpio buffer stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// After the last archive's trailer, only zeros up to the end of the buffer.
    Padding,
    /// The buffer ends inside an archive, before its trailer.
    Cut,
    /// Something that is not a cpio archive follows (`Cpio::then`): the walk stops there.
    Next,
    /// A damaged header (reported in `problems`).
    Broken,
    /// The header or part limit.
    Limit,
}

/// One piece of a concatenated initramfs.
pub struct Part {
    pub offset: u64,
    /// A cpio format name, a compression name, or `data`.
    pub kind: &'static str,
    /// Members (trailer excluded) of a cpio part.
    pub members: Option<usize>,
}

impl Part {
    fn json(&self) -> Value {
        let mut j = json!({"offset": self.offset, "format": self.kind});
        if let Some(n) = self.members {
            j["members"] = n.into();
        }
        j
    }
}

/// A cpio archive at the start of a buffer, and what follows it.
pub struct Cpio {
    /// The format of the first archive.
    pub kind: &'static str,
    /// The first members of the uncompressed archives: name and size.
    pub members: Vec<Value>,
    pub member_count: usize,
    /// What follows the uncompressed archives inside the buffer (`gzip`, `xz`, ..., `data`).
    pub then: Option<&'static str>,
    /// The archives and the compressed part found, in file order.
    pub parts: Vec<Part>,
    pub end: End,
    /// Findings: damaged headers, checksum mismatches, misaligned archives, unknown data.
    pub problems: Vec<(FindingCode, Severity, String)>,
}

impl Cpio {
    /// `cpio`, `early cpio + xz`, `early cpio + early cpio + zstd`, ...: an uncompressed archive
    /// that something follows is an early one.
    pub fn layout(&self) -> String {
        let n = self.parts.len();
        let names: Vec<&str> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| match (p.members.is_some(), i + 1 < n) {
                (true, true) => "early cpio",
                (true, false) => "cpio",
                (false, _) => p.kind,
            })
            .collect();
        names.join(" + ")
    }

    fn problem(&mut self, code: FindingCode, severity: Severity, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push((code, severity, message));
        }
    }
}

/// Whether `h` could be the start of a cpio header cut by the end of the buffer.
fn magic_prefix(h: &[u8]) -> bool {
    let n = h.len().min(6);
    [b"070701", b"070702", b"070707"]
        .iter()
        .any(|m| m[..n] == h[..n])
}

/// A buffer index from a file offset: past the end (or past `usize` on 32-bit targets) clips to
/// an empty slice.
fn idx(at: u64) -> usize {
    usize::try_from(at).unwrap_or(usize::MAX)
}

/// Parse the cpio archives at the start of `buf` (a prefix of a file or of a decompressed
/// stream), the zero padding between them and what follows the last one. None when `buf` does
/// not start with a complete, well-formed cpio header.
pub fn cpio(buf: &[u8]) -> Option<Cpio> {
    let first = CpioFormat::at(buf, 0)?;
    header(buf, first)?;
    let len = buf.len() as u64;
    let mut c = Cpio {
        kind: first.name(),
        members: vec![],
        member_count: 0,
        then: None,
        parts: vec![],
        end: End::Padding,
        problems: vec![],
    };
    let mut at = 0u64;
    let mut headers = 0usize;
    // Each round starts at a cpio magic (the first header, or one found after a trailer).
    'parts: while let Some(format) = CpioFormat::at(buf, idx(at)) {
        if c.parts.len() >= MAX_PARTS {
            c.end = End::Limit;
            break;
        }
        if !at.is_multiple_of(4) && format != CpioFormat::Odc {
            c.problem(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the cpio archive at offset {at} is not 4-byte aligned: the kernel takes it for compressed data and stops unpacking (\"invalid magic\")"
                ),
            );
        }
        let base = at;
        let part = c.parts.len();
        c.parts.push(Part {
            offset: at,
            kind: format.name(),
            members: Some(0),
        });
        // The headers of this archive, up to its trailer.
        loop {
            headers += 1;
            if headers > MAX_HEADERS {
                c.end = End::Limit;
                break 'parts;
            }
            let h = slice(buf, idx(at), format.header_len());
            // Each header has its own magic: the kernel takes 070701 and 070702 alike.
            let hf = CpioFormat::at(h, 0);
            let fields = hf
                .filter(|f| (*f == CpioFormat::Odc) == (format == CpioFormat::Odc))
                .and_then(|f| Some((f, header(h, f)?)));
            let Some((hf, hd)) = fields else {
                if h.len() < format.header_len() && magic_prefix(h) {
                    c.end = End::Cut;
                } else {
                    c.end = End::Broken;
                    c.problem(
                        FindingCode::Corrupt,
                        Severity::Critical,
                        format!(
                            "the cpio header at offset {at} is damaged (the kernel stops unpacking there)"
                        ),
                    );
                }
                break 'parts;
            };
            let name_at = at + format.header_len() as u64;
            let name_end = name_at + hd.namesize;
            if name_end > len {
                c.end = End::Cut;
                break 'parts;
            }
            let raw = slice(buf, idx(name_at), idx(hd.namesize.min(4096)));
            let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
            let data_at = format.align(base, name_end);
            let data_end = data_at + hd.filesize;
            let next = format.align(base, data_end);
            if raw == b"TRAILER!!!" {
                at = next;
                break;
            }
            c.member_count += 1;
            if let Some(n) = c.parts[part].members.as_mut() {
                *n += 1;
            }
            let name = text(raw).unwrap_or_default();
            if hf == CpioFormat::NewcCrc && data_end <= len {
                let data = slice(buf, idx(data_at), idx(hd.filesize));
                let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
                if u64::from(sum) != hd.check {
                    c.problem(
                        FindingCode::Corrupt,
                        Severity::Critical,
                        format!(
                            "the cpio member {name:?} fails its checksum (header 0x{:08x}, data 0x{sum:08x}): the kernel rejects it",
                            hd.check
                        ),
                    );
                }
            }
            if c.members.len() < LISTED_MEMBERS {
                c.members.push(json!({"name": name, "size": hd.filesize}));
            }
            at = next;
        }
        // Zero padding, then another archive, a compressed one, or something else.
        let rest = buf.get(idx(at)..).unwrap_or(&[]);
        let Some(p) = rest.iter().position(|&b| b != 0) else {
            c.end = End::Padding;
            break;
        };
        at += p as u64;
        if CpioFormat::at(buf, idx(at)).is_some() {
            continue;
        }
        let kind = compression(&rest[p..]).unwrap_or("data");
        if kind == "data" {
            c.problem(
                FindingCode::Corrupt,
                Severity::Warning,
                format!(
                    "the bytes at offset {at}, after the cpio trailer, are neither an archive nor compressed data the kernel knows: it stops unpacking there (\"invalid magic\")"
                ),
            );
        }
        c.parts.push(Part {
            offset: at,
            kind,
            members: None,
        });
        c.then = Some(kind);
        c.end = End::Next;
        break;
    }
    Some(c)
}
