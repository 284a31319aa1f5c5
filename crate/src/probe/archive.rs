//! Archives and compressed files: tar (an OVA when it holds an `.ovf`), gzip (a UEC tarball or a
//! compressed initrd), zstd, xz, lz4, and the compressors that never hold a bootable image as such
//! (bzip2, zip, ...). See the module docs of `probe` for the rule on compressed files.
//!
//! Specs: POSIX `ustar` and pax (IEEE 1003.1), GNU tar long names (`L`) and base-256 sizes;
//! RFC 1952 (gzip); RFC 8878 (zstd frame header); the xz file format 1.1 (stream header);
//! DMTF DSP0243 (OVF: the descriptor is the first member of an OVA).

use super::bytes::{has, le32, slice};
use super::fs::{self, BTRFS_SB};
use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::report::Severity;
use crate::source::Source;
use async_trait::async_trait;
use serde_json::Value;
use std::io::Read;

/// Tar headers walked at most (an OVA has a handful of members).
const MAX_TAR_HEADERS: usize = 1024;
/// Members listed in details.
const LISTED: usize = 64;
/// OVA members probed for their own format (each probe reads one head).
const PROBED_MEMBERS: usize = 8;
/// A GNU long name or pax header larger than this is not believed.
const MAX_META: u64 = 64 << 10;
/// Decompressed bytes examined at most inside a gzip file (the compressed input is the head).
const INFLATE_BUDGET: u64 = 32 << 20;
/// Decompressed prefix kept for sniffing (cpio listing, what a compressed file holds).
const PREFIX: usize = 256 << 10;
/// Bytes kept from the start of each of the first tar members in a gzip (Btrfs needs 68 KiB).
const SAMPLE: usize = BTRFS_SB + 4096;
const SAMPLED_MEMBERS: usize = 8;
/// The largest zstd window decoded here (the decoder allocates it).
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// The compressor whose magic starts `b`.
pub fn compression(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0x1f, 0x8b, 8]) {
        Some("gzip")
    } else if b.starts_with(b"\xfd7zXZ\0") {
        Some("xz")
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Some("lz4-legacy")
    } else if b.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Some("lz4")
    } else if b.starts_with(b"BZh") && b.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        Some("bzip2")
    } else if b.starts_with(b"\x89LZO\0\r\n\x1a\n") {
        Some("lzo")
    } else if b.starts_with(b"PK\x03\x04") {
        Some("zip")
    } else if b.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Some("7z")
    } else {
        None
    }
}

pub async fn detect(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    if is_tar(&cx.head) {
        tar(cx, scan).await?;
    }
    match compression(&cx.head) {
        Some("gzip") => gzip(cx, scan),
        Some("zstd") => zstd(cx, scan),
        Some("xz") => xz(cx, scan),
        Some("lz4-legacy") => scan.add_weak(unverified(
            cx,
            "lz4-legacy",
            "lz4 legacy-frame data, the framing the kernel reads for initramfs",
        )),
        Some("zip") => scan.reject("zip", "a zip archive: extract the disk image from it first"),
        Some("7z") => scan.reject(
            "7z",
            "a 7-Zip archive: extract the disk image from it first",
        ),
        Some(c) => scan.reject(c, format!("a {c}-compressed file: decompress it first")),
        None => {}
    }
    Ok(())
}

// ---- tar ----------------------------------------------------------------------------------

enum TarBlock {
    End,
    Bad,
    Entry(TarHeader),
}

struct TarHeader {
    name: String,
    size: u64,
    kind: u8,
}

/// A ustar (POSIX or GNU) header with a valid checksum at the start of `b`.
fn is_tar(b: &[u8]) -> bool {
    has(b, 257, b"ustar") && matches!(tar_block(b), TarBlock::Entry(_))
}

/// An octal field (space/NUL padded), or a GNU base-256 number (high bit of the first byte).
fn tar_number(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(f[0] & 0x7f);
        for &b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s = f.iter().skip_while(|&&b| b == b' ' || b == 0);
    let mut v: u64 = 0;
    let mut digits = 0;
    for &b in s.take_while(|b| (b'0'..=b'7').contains(b)) {
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(v)
}

fn tar_block(h: &[u8]) -> TarBlock {
    if h.len() < 512 {
        return TarBlock::Bad;
    }
    if super::bytes::is_zero(&h[..512]) {
        return TarBlock::End;
    }
    let sum: u64 = h[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if tar_number(&h[148..156]) != Some(sum) {
        return TarBlock::Bad;
    }
    let Some(size) = tar_number(&h[124..136]) else {
        return TarBlock::Bad;
    };
    let field = |a: usize, n: usize| {
        let f = &h[a..a + n];
        let end = f.iter().position(|&b| b == 0).unwrap_or(n);
        String::from_utf8_lossy(&f[..end]).into_owned()
    };
    let mut name = field(0, 100);
    // POSIX ustar (not GNU "ustar  ") splits long paths into prefix + name.
    if has(h, 257, b"ustar\0") && h[345] != 0 {
        name = format!("{}/{name}", field(345, 155));
    }
    TarBlock::Entry(TarHeader {
        name,
        size,
        kind: h[156],
    })
}

/// The values of a pax extended header that matter here: `path` and `size`.
fn pax(data: &[u8], name: &mut Option<String>, size: &mut Option<u64>) {
    let text = String::from_utf8_lossy(data);
    for record in text.split('\n') {
        let Some((_, kv)) = record.split_once(' ') else {
            continue;
        };
        match kv.split_once('=') {
            Some(("path", v)) => *name = Some(v.to_string()),
            Some(("size", v)) => *size = v.parse().ok(),
            _ => {}
        }
    }
}

fn meta_text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

struct Member {
    name: String,
    size: u64,
    /// Where the member's data starts in the archive.
    offset: u64,
    kind: u8,
    /// The first bytes of its data (stream walking only).
    sample: Vec<u8>,
}

impl Member {
    fn regular(&self) -> bool {
        matches!(self.kind, b'0' | 0 | b'7')
    }
    fn json(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.as_str().into());
        m.insert("size".into(), self.size.into());
        if !self.regular() {
            m.insert("type".into(), String::from(self.kind as char).into());
        }
        m
    }
}

/// Walk a tar file's headers by random access (member data is skipped, never read).
struct Walk {
    members: Vec<Member>,
    /// The end-of-archive block was reached.
    complete: bool,
    /// A header or member runs past the end of the file.
    truncated: bool,
    /// A header with a bad checksum.
    bad: bool,
}

async fn walk(cx: &Ctx<'_>) -> Result<Walk> {
    let mut w = Walk {
        members: vec![],
        complete: false,
        truncated: false,
        bad: false,
    };
    let (mut pos, mut name, mut size) = (0u64, None, None);
    for _ in 0..MAX_TAR_HEADERS {
        if pos == cx.len {
            // No end-of-archive blocks: tolerated, as GNU tar does.
            w.complete = true;
            break;
        }
        let Some(h) = cx.bytes(pos, 512, "tar header").await? else {
            w.truncated = true;
            break;
        };
        let e = match tar_block(&h) {
            TarBlock::End => {
                w.complete = true;
                break;
            }
            TarBlock::Bad => {
                w.bad = true;
                break;
            }
            TarBlock::Entry(e) => e,
        };
        let data = pos + 512;
        let len = size.take().unwrap_or(e.size);
        let Some(next) = len
            .checked_next_multiple_of(512)
            .and_then(|n| data.checked_add(n))
        else {
            w.bad = true;
            break;
        };
        if next > cx.len {
            w.truncated = true;
        }
        match e.kind {
            b'L' | b'x' => {
                if len > MAX_META {
                    w.bad = true;
                    break;
                }
                let Some(d) = cx.bytes(data, len, "tar extended header").await? else {
                    break;
                };
                if e.kind == b'L' {
                    name = Some(meta_text(&d));
                } else {
                    pax(&d, &mut name, &mut size);
                }
            }
            b'g' => {}
            _ => w.members.push(Member {
                name: name.take().unwrap_or(e.name),
                size: len,
                offset: data,
                kind: e.kind,
                sample: vec![],
            }),
        }
        if w.truncated {
            break;
        }
        pos = next;
    }
    Ok(w)
}

/// A member of an archive seen as a file of its own, for probing what it holds.
struct MemberSource<'a> {
    inner: &'a dyn Source,
    name: String,
    offset: u64,
    len: u64,
}

#[async_trait(?Send)]
impl Source for MemberSource<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // Callers check ranges against `len`, and the member lies inside the archive.
        self.inner.read_at(self.offset + offset, buf).await
    }
}

async fn tar(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let w = walk(cx).await?;
    let ovf = w
        .members
        .iter()
        .position(|m| m.regular() && m.name.to_ascii_lowercase().ends_with(".ovf"));
    let Some(ovf) = ovf else {
        let names: Vec<&str> = w.members.iter().take(8).map(|m| m.name.as_str()).collect();
        let more = if w.members.len() > 8 { ", ..." } else { "" };
        scan.reject(
            "tar",
            format!(
                "a tar archive without an .ovf descriptor (members: {}{more}), so not an OVA: extract the disk image from it first",
                names.join(", ")
            ),
        );
        return Ok(());
    };
    let mut d = Detection::new(Format::Ova);
    d.set("ovf", w.members[ovf].name.as_str());
    if ovf != 0 {
        d.finding(
            "ova-layout",
            Severity::Warning,
            "the .ovf descriptor is not the first member of the OVA, as the OVF specification requires (VMware refuses such files)",
        );
    }
    if w.truncated {
        d.truncated("tar archive");
    } else if w.bad {
        d.finding(
            "corrupt",
            Severity::Critical,
            "a tar header in the OVA has a bad checksum or size",
        );
    } else if !w.complete {
        d.finding(
            "corrupt",
            Severity::Warning,
            format!("more than {MAX_TAR_HEADERS} members: the rest were not examined"),
        );
    }
    let mut listed = vec![];
    let mut disks = vec![];
    for (i, m) in w.members.iter().enumerate() {
        let mut j = m.json();
        j.insert("offset".into(), m.offset.into());
        if m.name.starts_with('/') || m.name.split(['/', '\\']).any(|c| c == "..") {
            d.finding(
                "unsafe-member-name",
                Severity::Critical,
                format!(
                    "the OVA member {:?} would be extracted outside its folder",
                    m.name
                ),
            );
        }
        // Probe what the member holds (not the descriptor), one level deep only.
        let inside = m.offset.checked_add(m.size).is_some_and(|e| e <= cx.len);
        if cx.depth == 0 && i != ovf && m.regular() && m.size > 0 && inside && i < PROBED_MEMBERS {
            let src = MemberSource {
                inner: cx.src,
                name: m.name.clone(),
                offset: m.offset,
                len: m.size,
            };
            if let Ok(p) = super::probe_nested(&src, cx.depth + 1).await {
                let f = p.primary();
                j.insert("format".into(), f.format.name().into());
                if let Some(v) = f.virtual_size {
                    j.insert("virtual-size".into(), v.into());
                }
                if f.format != Format::Raw {
                    disks.push(f.virtual_size);
                }
            }
        }
        if listed.len() < LISTED {
            listed.push(Value::Object(j));
        }
    }
    d.set("member-count", w.members.len());
    d.set("members", listed);
    if let [Some(size)] = disks[..] {
        d.virtual_size = Some(size);
    }
    scan.add(0, d);
    Ok(())
}

/// Walks tar headers in a decompressed stream, keeping the first bytes of the first members.
#[derive(Default)]
struct TarStream {
    pos: u64,
    next_header: u64,
    header: Vec<u8>,
    /// A GNU long name or pax header being collected: (kind, size, bytes).
    meta: Option<(u8, u64, Vec<u8>)>,
    name: Option<String>,
    size: Option<u64>,
    /// The member whose data is streaming by, if it is sampled.
    current: Option<usize>,
    members: Vec<Member>,
    end: bool,
    bad: bool,
}

impl TarStream {
    fn done(&self) -> bool {
        self.end || self.bad || self.members.len() >= MAX_TAR_HEADERS
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.done() {
            if self.pos < self.next_header {
                let n = (self.next_header - self.pos).min(data.len() as u64) as usize;
                let chunk = &data[..n];
                if let Some((_, size, buf)) = &mut self.meta {
                    let want = (*size as usize).saturating_sub(buf.len()).min(n);
                    buf.extend_from_slice(&chunk[..want]);
                } else if let Some(i) = self.current {
                    let s = &mut self.members[i].sample;
                    let want = SAMPLE.saturating_sub(s.len()).min(n);
                    s.extend_from_slice(&chunk[..want]);
                }
                self.pos += n as u64;
                data = &data[n..];
                continue;
            }
            let n = (512 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            self.pos += n as u64;
            data = &data[n..];
            if self.header.len() == 512 {
                let h = std::mem::take(&mut self.header);
                self.on_header(&h);
            }
        }
    }

    fn on_header(&mut self, h: &[u8]) {
        if let Some((kind, _, buf)) = self.meta.take() {
            if kind == b'L' {
                self.name = Some(meta_text(&buf));
            } else {
                pax(&buf, &mut self.name, &mut self.size);
            }
        }
        let e = match tar_block(h) {
            TarBlock::End => {
                self.end = true;
                return;
            }
            TarBlock::Bad => {
                self.bad = true;
                return;
            }
            TarBlock::Entry(e) => e,
        };
        let size = self.size.take().unwrap_or(e.size);
        let Some(next) = size
            .checked_next_multiple_of(512)
            .and_then(|n| self.pos.checked_add(n))
        else {
            self.bad = true;
            return;
        };
        self.next_header = next;
        self.current = None;
        match e.kind {
            b'L' | b'x' if size <= MAX_META => self.meta = Some((e.kind, size, vec![])),
            b'L' | b'x' => self.bad = true,
            b'g' => {}
            kind => {
                let m = Member {
                    name: self.name.take().unwrap_or(e.name),
                    size,
                    offset: self.pos,
                    kind,
                    sample: vec![],
                };
                if m.regular() && self.members.len() < SAMPLED_MEMBERS {
                    self.current = Some(self.members.len());
                }
                self.members.push(m);
            }
        }
    }
}

/// What a member of a UEC tarball is, from its first bytes.
fn classify(sample: &[u8]) -> Option<String> {
    if has(sample, 0x202, b"HdrS") && has(sample, 0x1fe, &[0x55, 0xaa]) {
        return Some("aki".into());
    }
    if super::kernel::cpio(sample).is_some()
        || matches!(
            compression(sample),
            Some("gzip" | "xz" | "zstd" | "lz4-legacy")
        )
    {
        return Some("ari".into());
    }
    let f = fs::identify(sample, slice(sample, BTRFS_SB, 4096))?;
    Some(if f.is_linux_root() {
        format!("ami ({})", f.kind)
    } else {
        f.kind.to_string()
    })
}

/// A few words on what a decompressed prefix holds, for the "decompress it first" message.
fn describe(prefix: &[u8]) -> Option<String> {
    let named = if has(prefix, 0, b"QFI\xfb") {
        "a qcow2 image"
    } else if has(prefix, 0, b"KDMV") {
        "a VMDK image"
    } else if has(prefix, 0, b"conectix") || has(prefix, 0, b"vhdxfile") {
        "a VHD/VHDX image"
    } else if has(prefix, 0x40, &0xbeda_107fu32.to_le_bytes()) {
        "a VDI image"
    } else if has(prefix, 0x8001, b"CD001") {
        "an ISO image"
    } else if has(prefix, 512, b"EFI PART") {
        "a raw disk with a GPT partition table"
    } else if has(prefix, 510, &[0x55, 0xaa]) {
        "a raw disk with a boot sector"
    } else if let Some(f) = fs::identify(prefix, slice(prefix, BTRFS_SB, 4096)) {
        return Some(format!("a bare {} filesystem", f.kind));
    } else {
        return None;
    };
    Some(named.into())
}

fn not_image(kind: &str, prefix: &[u8]) -> String {
    match describe(prefix) {
        Some(what) => format!("a {kind}-compressed file holding {what}: decompress it first"),
        None => format!("a {kind}-compressed file: decompress it first"),
    }
}

/// An initrd taken from its compression framing alone (content not inspected).
fn unverified(cx: &Ctx<'_>, compression: &str, why: &str) -> Detection {
    let mut d = Detection::new(Format::Ari);
    d.virtual_size = Some(cx.len);
    d.set("compression", compression);
    d.finding(
        "unverified-content",
        Severity::Warning,
        format!("{why}: taken for an initrd (ARI) without looking inside"),
    );
    d
}

fn gzip(cx: &Ctx<'_>, scan: &mut Scan) {
    let mut dec = flate2::bufread::GzDecoder::new(&cx.head[..]);
    let mut buf = vec![0u8; 32 << 10];
    let mut prefix: Vec<u8> = vec![];
    let mut tar: Option<TarStream> = None;
    let (mut out, mut decided) = (0u64, false);
    loop {
        // An error is the end of the input (only the head is inflated) or damaged data.
        let n = match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        out += n as u64;
        if let Some(t) = tar.as_mut() {
            t.feed(&buf[..n]);
            if t.done() {
                break;
            }
        } else {
            let room = PREFIX - prefix.len();
            prefix.extend_from_slice(&buf[..n.min(room)]);
            if !decided && prefix.len() >= 512 {
                decided = true;
                if is_tar(&prefix) {
                    let mut t = TarStream::default();
                    t.feed(&prefix);
                    tar = Some(t);
                }
            }
            if decided && tar.is_none() && prefix.len() >= PREFIX {
                break;
            }
        }
        if out >= INFLATE_BUDGET {
            break;
        }
    }
    if let Some(t) = tar {
        scan.add(0, uec(&t, out));
    } else if let Some(c) = super::kernel::cpio(&prefix) {
        let mut d = Detection::new(Format::Ari);
        d.virtual_size = Some(cx.len);
        d.set("compression", "gzip");
        d.set("archive", c.kind);
        d.set("members", c.members);
        scan.add(0, d);
    } else if prefix.is_empty() {
        scan.reject(
            "gzip",
            "a corrupt gzip-compressed file: it does not inflate",
        );
    } else {
        scan.reject("gzip", not_image("gzip", &prefix));
    }
}

fn uec(t: &TarStream, examined: u64) -> Detection {
    let mut d = Detection::new(Format::Uec);
    d.set("compression", "gzip");
    let mut listed = vec![];
    for m in &t.members {
        let mut j = m.json();
        let sample = slice(&m.sample, 0, m.size.min(SAMPLE as u64) as usize);
        if let Some(c) = classify(sample) {
            // The machine image's size is the disk size.
            if c.starts_with("ami") && d.virtual_size.is_none() {
                d.virtual_size = Some(m.size);
            }
            for (role, key) in [("ami", "image"), ("aki", "kernel"), ("ari", "ramdisk")] {
                if c.starts_with(role) && !d.details.contains_key(key) {
                    d.set(key, m.name.as_str());
                }
            }
            j.insert("content".into(), c.into());
        }
        if listed.len() < LISTED {
            listed.push(Value::Object(j));
        }
    }
    d.set("members", listed);
    d.set("all-members-seen", t.end);
    if !t.end {
        d.set("decompressed-bytes-examined", examined);
    }
    if t.bad {
        d.finding(
            "corrupt",
            Severity::Warning,
            "a tar header inside the gzip stream is damaged",
        );
    }
    d
}

/// The zstd frame's window size (RFC 8878 3.1.1.1), which the decoder allocates.
fn zstd_window(h: &[u8]) -> Option<u64> {
    let fhd = *h.get(4)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *h.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    let dict = [0, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + dict;
    Some(match fhd >> 6 {
        0 => u64::from(*h.get(at)?),
        1 => u64::from(super::bytes::le16(h, at)) + 256,
        2 => u64::from(le32(h, at)),
        _ => super::bytes::le64(h, at),
    })
}

fn zstd(cx: &Ctx<'_>, scan: &mut Scan) {
    let window = zstd_window(&cx.head).unwrap_or(u64::MAX);
    let mut prefix = vec![];
    if window <= MAX_ZSTD_WINDOW
        && let Ok(dec) = ruzstd::decoding::StreamingDecoder::new(&cx.head[..])
    {
        // Errors end the prefix: the input is only the head of the file.
        let _ = dec.take(PREFIX as u64).read_to_end(&mut prefix);
    }
    if let Some(c) = super::kernel::cpio(&prefix) {
        let mut d = Detection::new(Format::Ari);
        d.virtual_size = Some(cx.len);
        d.set("compression", "zstd");
        d.set("archive", c.kind);
        d.set("members", c.members);
        scan.add(0, d);
    } else if is_tar(&prefix) {
        scan.reject(
            "zstd",
            "a zstd-compressed tar archive: decompress and extract it first",
        );
    } else {
        scan.reject("zstd", not_image("zstd", &prefix));
    }
}

fn xz(cx: &Ctx<'_>, scan: &mut Scan) {
    let h = &cx.head;
    // Stream flags: a zero byte, then the check type; a CRC32 of the flags follows.
    let flags = slice(h, 6, 2);
    let mut crc = flate2::Crc::new();
    crc.update(flags);
    if flags.len() < 2 || flags[0] != 0 || crc.sum() != le32(h, 8) {
        scan.reject("xz", "a damaged xz-compressed file");
        return;
    }
    match flags[1] {
        0x00 | 0x01 => scan.add_weak(unverified(
            cx,
            "xz",
            "xz data with a CRC32 (or no) check, as initramfs tools write it for the kernel",
        )),
        check => {
            let name = match check {
                0x04 => "CRC64",
                0x0a => "SHA-256",
                _ => "an unusual",
            };
            scan.reject(
                "xz",
                format!("an xz-compressed file ({name} check, so not a kernel initramfs): decompress it first"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_numbers() {
        assert_eq!(tar_number(b"00000001750\0"), Some(1000));
        assert_eq!(tar_number(b"   1750 \0"), Some(1000));
        assert_eq!(tar_number(b"\0\0\0"), None);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 1;
        big[10] = 2;
        assert_eq!(tar_number(&big), Some(513));
        assert_eq!(tar_number(&[0xff; 12]), None);
    }

    #[test]
    fn zstd_windows() {
        // Window descriptor 0x58: log 10 + 11 = 21, mantissa 0 => 2 MiB.
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]),
            Some(2 << 20)
        );
        // Single segment, 1-byte content size.
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 200]), Some(200));
    }
}
