//! Linux boot files: kernels (an AKI) and initramfs archives (an ARI), from content alone.
//!
//! Kernels ([`kernel`]), each by the header its architecture's boot protocol defines:
//! - x86 bzImage: `Documentation/arch/x86/boot.rst` (the real-mode setup header at 0x1f1, `HdrS`
//!   at 0x202, the compressed payload at `payload_offset`).
//! - arm64 `Image`: `Documentation/arch/arm64/booting.rst` (the 64-byte header, `ARM\x64` at 0x38).
//! - RISC-V `Image`: `Documentation/arch/riscv/boot-image-header.rst` (`RISCV` at 0x30, `RSC\x05`
//!   at 0x38).
//! - LoongArch `Image`: `Documentation/arch/loongarch/booting.rst` (`MZ`, `LINUX_PE_MAGIC` at 0x38).
//! - EFI zboot: `drivers/firmware/efi/libstub/zboot-header.S` (`MZ`, `zimg` at 4, the payload
//!   offset and size, the compression name, then the PE header naming the machine).
//! - ARM 32-bit zImage: `Documentation/arch/arm/booting.rst` (0x016f2818 at 0x24, start and end
//!   addresses, the endianness marker at 0x30).
//!
//! Initramfs ([`cpio`]): `Documentation/driver-api/early-userspace/buffer-format.rst` and the
//! kernel's `init/initramfs.c`: newc (070701) and newc-with-CRC (070702) archives, zero padding,
//! concatenated archives, and after an uncompressed early archive (CPU microcode) a compressed one,
//! named by its magic as `lib/decompress.c` does. Nothing is decompressed here: an initramfs that
//! *starts* compressed is handled in `archive`, and what follows an early archive is only named
//! (with its offset, in `parts`).

use super::bytes::{be32, be64, has, le16, le32, le64, slice, text};
use super::{Ctx, Detection, Format, Scan};
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
/// The magic at 0x38 of Linux EFI-stub images that carry no architecture magic of their own
/// (LoongArch, EFI zboot; `include/linux/pe.h`).
const LINUX_PE_MAGIC: u32 = 0x8182_23cd;
/// The ARM zImage magic at 0x24, in the kernel's byte order.
const ZIMAGE_MAGIC: u32 = 0x016f_2818;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    if let Some(d) = kernel(&cx.head, cx.len) {
        scan.add(0, d);
    } else if let Some(c) = cpio(&cx.head) {
        scan.add(0, initramfs(&c, cx.head.len() as u64, cx.len));
    }
}

/// The compressor whose magic starts `b`, named as `archive` names them: the seven methods the
/// kernel's `decompress_method` knows (gzip, bzip2, lzma, xz, lzo, lz4 legacy, zstd) and the lz4
/// frame format, which it does not read.
pub fn compression(b: &[u8]) -> Option<&'static str> {
    Some(match b {
        [0x1f, 0x8b, 8, ..] => "gzip",
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [0x02, 0x21, 0x4c, 0x18, ..] => "lz4-legacy",
        [0x04, 0x22, 0x4d, 0x18, ..] => "lz4",
        [b'B', b'Z', b'h', b'1'..=b'9', ..] => "bzip2",
        [0x89, b'L', b'Z', b'O', 0, b'\r', b'\n', 0x1a, b'\n', ..] => "lzo",
        // lc=3 lp=0 pb=2, then a dictionary size whose low 16 bits are zero.
        [0x5d, 0, 0, ..] => "lzma",
        _ => return None,
    })
}

// ---- kernels ----------------------------------------------------------------------------------

/// A Linux kernel image at the start of `head`, which is a prefix of an image of `len` bytes (the
/// start of a file, or of a decompressed `vmlinuz`). `len` only decides truncation findings.
pub fn kernel(head: &[u8], len: u64) -> Option<Detection> {
    let mut d = bzimage(head, len)
        .or_else(|| zboot(head, len))
        .or_else(|| arm64(head))
        .or_else(|| riscv(head))
        .or_else(|| loongarch(head))
        .or_else(|| arm_zimage(head, len))?;
    d.virtual_size = Some(len);
    Some(d)
}

/// The PE machine field of an `MZ` image whose PE header offset sits at 0x3c, when the PE
/// signature is there (the EFI stub).
fn pe_machine(h: &[u8]) -> Option<u16> {
    if !has(h, 0, b"MZ") {
        return None;
    }
    let pe = le32(h, 0x3c) as usize;
    // `has` succeeded, so `pe + 4` is inside the buffer.
    has(h, pe, b"PE\0\0").then(|| le16(h, pe + 4))
}

/// The architecture a PE machine type names.
fn pe_arch(machine: u16) -> Option<&'static str> {
    Some(match machine {
        0x014c => "x86",
        0x8664 => "x86-64",
        0x01c0 | 0x01c2 | 0x01c4 => "arm",
        0xaa64 => "arm64",
        0x5032 => "riscv32",
        0x5064 => "riscv64",
        0x5128 => "riscv128",
        0x6232 => "loongarch32",
        0x6264 => "loongarch64",
        _ => return None,
    })
}

/// `arch` from the PE machine, else `fallback`; `efi-stub` for whether there is a PE header.
fn set_arch(d: &mut Detection, h: &[u8], fallback: &'static str) {
    let machine = pe_machine(h);
    d.set("arch", machine.and_then(pe_arch).unwrap_or(fallback));
    d.set("efi-stub", machine.is_some());
}

/// The Critical `truncated` finding for a kernel shorter than its header says.
fn short(d: &mut Detection, what: &str, len: u64, need: u64) {
    d.finding(
        "truncated",
        Severity::Critical,
        format!("the {what} is {len} bytes but its header describes {need}"),
    );
}

/// x86: the setup header (boot protocol 2.00+ has `HdrS`).
fn bzimage(h: &[u8], len: u64) -> Option<Detection> {
    if !has(h, 0x202, b"HdrS") || !has(h, 0x1fe, &[0x55, 0xaa]) {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    let protocol = le16(h, 0x206);
    d.set(
        "boot-protocol",
        format!("{}.{:02}", protocol >> 8, protocol & 0xff),
    );
    let loaded_high = h.get(0x211).is_some_and(|f| f & 1 != 0);
    d.set("image", if loaded_high { "bzImage" } else { "zImage" });
    // xloadflags (2.12+): XLF_KERNEL_64. The EFI stub's PE machine says it too.
    let kernel_64 = protocol >= 0x20c && le16(h, 0x236) & 1 != 0;
    if kernel_64 {
        d.set("64-bit", true);
    }
    set_arch(&mut d, h, if kernel_64 { "x86-64" } else { "x86" });
    // kernel_version: a pointer (minus 0x200) to a NUL-terminated string in the setup code.
    let ptr = le16(h, 0x20e);
    if protocol >= 0x200 && ptr != 0 {
        let s = slice(h, usize::from(ptr) + 0x200, 256);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        if let Some(v) = text(&s[..end]) {
            d.set("kernel-version", v);
        }
    }
    let setup = match h.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => u64::from(n),
    };
    let protected = (setup + 1) * 512;
    // payload_offset (2.08+): the compressed kernel, from the start of the protected-mode code.
    if protocol >= 0x208 {
        let at = protected + u64::from(le32(h, 0x248));
        if let Some(c) = usize::try_from(at)
            .ok()
            .and_then(|a| compression(h.get(a..)?))
        {
            d.set("compression", c);
        }
    }
    let need = protected + u64::from(le32(h, 0x1f4)) * 16;
    if len < need {
        short(&mut d, "kernel image", len, need);
    }
    Some(d)
}

/// EFI zboot: a small EFI application carrying the compressed kernel.
fn zboot(h: &[u8], len: u64) -> Option<Detection> {
    if !has(h, 0, b"MZ") || !has(h, 4, b"zimg") {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    d.set("image", "EFI zboot");
    set_arch(&mut d, h, "unknown");
    // The make target names the method (`xzkern`, `zstd22`: the kernel's own presets).
    let named = text(slice(h, 24, 0x38 - 24));
    let method = match named.as_deref() {
        Some("xzkern") => Some("xz".to_string()),
        Some("zstd22") => Some("zstd".to_string()),
        _ => named,
    };
    if let Some(m) = &method {
        d.set("compression", m.as_str());
    }
    let (offset, size) = (u64::from(le32(h, 8)), u64::from(le32(h, 12)));
    d.set("payload-offset", offset);
    d.set("payload-size", size);
    if len < 0x40 {
        d.truncated("EFI zboot header");
    } else if len < offset + size {
        short(&mut d, "EFI zboot image", len, offset + size);
    }
    // The payload's own magic, when the head holds it, must be the compression named.
    let payload = usize::try_from(offset).ok().and_then(|o| h.get(o..));
    let known = ["gzip", "xz", "zstd", "lz4", "lzma", "lzo", "bzip2"];
    if let (Some(m), Some(p)) = (&method, payload)
        && p.len() >= 16
        && known.contains(&m.as_str())
    {
        let found = compression(p);
        let expected = if m == "lz4" { "lz4-legacy" } else { m.as_str() };
        if found != Some(expected) {
            d.finding(
                "corrupt",
                Severity::Warning,
                format!(
                    "the EFI zboot header names {m} compression but its payload at offset {offset} starts with {}",
                    found.map_or("no known compression magic".into(), |f| format!("{f} data"))
                ),
            );
        }
    }
    Some(d)
}

/// The arm64 and RISC-V `Image` fields they share: text_offset, image_size (the in-memory size,
/// BSS included, so larger than the file) and the endianness bit of flags.
fn image_common(d: &mut Detection, h: &[u8]) {
    d.set("image", "Image");
    d.set("text-offset", le64(h, 8));
    d.set("image-size", le64(h, 16));
    d.set(
        "endianness",
        if le64(h, 24) & 1 != 0 {
            "big"
        } else {
            "little"
        },
    );
}

fn arm64(h: &[u8]) -> Option<Detection> {
    if !has(h, 0x38, b"ARM\x64") {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    d.set("arch", "arm64");
    d.set("efi-stub", pe_machine(h).is_some());
    if le64(h, 16) == 0 {
        // Before Linux 3.17: no image_size nor flags, text_offset 0x80000 in the kernel's order.
        d.set("image", "Image");
        d.set("legacy-header", true);
        if le64(h, 8) == 0x80000 {
            d.set("endianness", "little");
        } else if be64(h, 8) == 0x80000 {
            d.set("endianness", "big");
        }
        return Some(d);
    }
    image_common(&mut d, h);
    let flags = le64(h, 24);
    match (flags >> 1) & 3 {
        1 => d.set("page-size", 4096),
        2 => d.set("page-size", 16384),
        3 => d.set("page-size", 65536),
        _ => {}
    }
    d.set(
        "placement",
        if flags & 8 != 0 {
            "anywhere"
        } else {
            "near-dram-base"
        },
    );
    Some(d)
}

fn riscv(h: &[u8]) -> Option<Detection> {
    if !has(h, 0x38, b"RSC\x05") && !has(h, 0x30, b"RISCV\0\0\0") {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    // The header does not say 32 or 64 bits; the EFI stub's PE machine does.
    set_arch(&mut d, h, "riscv");
    image_common(&mut d, h);
    let version = le32(h, 32);
    d.set(
        "header-version",
        format!("{}.{}", version >> 16, version & 0xffff),
    );
    Some(d)
}

fn loongarch(h: &[u8]) -> Option<Detection> {
    if le32(h, 0x38) != LINUX_PE_MAGIC || pe_machine(h) != Some(0x6264) {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    set_arch(&mut d, h, "loongarch64");
    d.set("image", "Image");
    d.set("image-size", le64(h, 0x10));
    d.set("load-offset", le64(h, 0x18));
    Some(d)
}

/// ARM 32-bit zImage: the words at 0x24.. are in the kernel's byte order.
fn arm_zimage(h: &[u8], len: u64) -> Option<Detection> {
    let big = if le32(h, 0x24) == ZIMAGE_MAGIC {
        false
    } else if be32(h, 0x24) == ZIMAGE_MAGIC {
        true
    } else {
        return None;
    };
    let word = |at| if big { be32(h, at) } else { le32(h, at) };
    let mut d = Detection::new(Format::Aki);
    set_arch(&mut d, h, "arm");
    d.set("image", "zImage");
    d.set("endianness", if big { "big" } else { "little" });
    // 0x04030201 (since 3.17), 0x45454545 and the offset of a tag table follow.
    if word(0x30) == 0x0403_0201 {
        d.set("endianness-marker", true);
    }
    let (start, end) = (word(0x28), word(0x2c));
    d.set("load-address", format!("0x{start:08x}"));
    if len < 0x30 {
        d.truncated("zImage header");
    } else if end < start {
        d.finding(
            "corrupt",
            Severity::Critical,
            format!("the zImage header ends (0x{end:08x}) before it starts (0x{start:08x})"),
        );
    } else {
        let size = u64::from(end - start);
        d.set("image-size", size);
        if len < size {
            short(&mut d, "zImage", len, size);
        }
    }
    Some(d)
}

// ---- initramfs --------------------------------------------------------------------------------

/// The ARI detection for a cpio archive at the start of a file of `len` bytes, of which the
/// first `seen` bytes were walked.
fn initramfs(c: &Cpio, seen: u64, len: u64) -> Detection {
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
            "unsupported-format",
            Severity::Warning,
            "an odc cpio archive: the kernel unpacks only newc initramfs archives",
        );
    }
    if c.then == Some("lz4") {
        d.finding(
            "unsupported-format",
            Severity::Warning,
            "the archive after the early cpio is lz4 in the frame format: the kernel reads only the legacy format (lz4 -l)",
        );
    }
    for (code, severity, message) in &c.problems {
        d.finding(code, *severity, message.as_str());
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
    pub problems: Vec<(&'static str, Severity, String)>,
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

    fn problem(&mut self, code: &'static str, severity: Severity, message: String) {
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
                "corrupt",
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
                        "corrupt",
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
                        "corrupt",
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
                "corrupt",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn newc_with(magic: &str, name: &str, data: &[u8], check: u32) -> Vec<u8> {
        let fields = [
            1,
            0o100644,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            check,
        ];
        let mut v = magic.as_bytes().to_vec();
        for f in fields {
            v.extend(format!("{f:08x}").as_bytes());
        }
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    fn newc(name: &str, data: &[u8]) -> Vec<u8> {
        newc_with("070701", name, data, 0)
    }

    fn early() -> Vec<u8> {
        let mut a = newc("kernel", b"");
        a.extend(newc("kernel/x86/microcode/GenuineIntel.bin", b"ucode"));
        a.extend(newc("TRAILER!!!", b""));
        a.resize(a.len().next_multiple_of(512), 0);
        a
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn lists_newc_members_and_what_follows() {
        let mut a = early();
        a.extend([0; 512]);
        a.extend([0x1f, 0x8b, 8, 0]);
        let c = cpio(&a).unwrap();
        assert_eq!(c.kind, "cpio (newc)");
        assert_eq!(c.members.len(), 2);
        assert_eq!(
            c.members[1]["name"],
            "kernel/x86/microcode/GenuineIntel.bin"
        );
        assert_eq!(c.then, Some("gzip"));
        assert_eq!(c.layout(), "early cpio + gzip");
        assert_eq!(c.parts[1].offset, 1024);
        assert_eq!(c.end, End::Next);
        assert!(c.problems.is_empty());
        assert!(cpio(b"070701zzzz").is_none());
    }

    #[test]
    fn every_compression_after_an_early_cpio_is_named() {
        let magics: [(&[u8], &str); 8] = [
            (&[0x1f, 0x8b, 8, 0], "gzip"),
            (b"\xfd7zXZ\0\0\x01", "xz"),
            (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
            (&[0x02, 0x21, 0x4c, 0x18], "lz4-legacy"),
            (&[0x5d, 0, 0, 0x80, 0], "lzma"),
            (b"BZh9", "bzip2"),
            (b"\x89LZO\0\r\n\x1a\n", "lzo"),
            (b"junk", "data"),
        ];
        for (magic, name) in magics {
            let mut a = early();
            a.extend(magic);
            let c = cpio(&a).unwrap();
            assert_eq!(c.layout(), format!("early cpio + {name}"));
            assert_eq!(c.problems.is_empty(), name != "data", "{name}");
        }
    }

    #[test]
    fn two_archives_a_crc_archive_and_damage() {
        let mut a = early();
        a.extend(newc_with("070702", "init", b"abc", 0x61 + 0x62 + 0x63));
        a.extend(newc_with("070702", "TRAILER!!!", b"", 0));
        let c = cpio(&a).unwrap();
        assert_eq!(c.layout(), "early cpio + cpio");
        assert_eq!(c.parts[1].kind, "cpio (newc, crc)");
        assert_eq!(c.member_count, 3);
        assert!(c.problems.is_empty());
        assert_eq!(c.end, End::Padding);

        let mut bad = newc_with("070702", "init", b"abc", 7);
        bad.extend(newc("TRAILER!!!", b""));
        let c = cpio(&bad).unwrap();
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);

        let a = early();
        let c = cpio(&a[..200]).unwrap();
        assert_eq!(c.end, End::Cut);
        let mut b = a.clone();
        put(&mut b, 120, b"zzzzzz");
        let c = cpio(&b).unwrap();
        assert_eq!(c.end, End::Broken);
    }

    fn arm64_image() -> Vec<u8> {
        let mut k = vec![0u8; 4096];
        put(&mut k, 0, b"MZ\x40\xfa");
        put(&mut k, 8, &0u64.to_le_bytes());
        put(&mut k, 16, &0x1ab_0000u64.to_le_bytes());
        put(&mut k, 24, &0xau64.to_le_bytes());
        put(&mut k, 0x38, b"ARM\x64");
        put(&mut k, 0x3c, &0x40u32.to_le_bytes());
        put(&mut k, 0x40, b"PE\0\0\x64\xaa");
        k
    }

    #[test]
    fn kernels_of_every_architecture() {
        let d = kernel(&arm64_image(), 4096).unwrap();
        assert_eq!(d.detail_str("arch"), Some("arm64"));
        assert_eq!(d.detail_str("image"), Some("Image"));
        assert_eq!(d.details["page-size"], 4096);
        assert_eq!(d.details["image-size"], 0x1ab_0000);
        assert_eq!(d.details["efi-stub"], true);
        assert_eq!(d.detail_str("placement"), Some("anywhere"));
        assert!(d.findings.is_empty());

        let mut z = vec![0u8; 4096];
        put(&mut z, 0, b"MZ\0\0zimg");
        put(&mut z, 8, &0x200u32.to_le_bytes());
        put(&mut z, 12, &0x100u32.to_le_bytes());
        put(&mut z, 24, b"zstd22\0");
        put(&mut z, 0x38, &LINUX_PE_MAGIC.to_le_bytes());
        put(&mut z, 0x3c, &0x40u32.to_le_bytes());
        put(&mut z, 0x40, b"PE\0\0\x64\x50");
        put(&mut z, 0x200, &[0x28, 0xb5, 0x2f, 0xfd]);
        let d = kernel(&z, 4096).unwrap();
        assert_eq!(d.detail_str("image"), Some("EFI zboot"));
        assert_eq!(d.detail_str("arch"), Some("riscv64"));
        assert_eq!(d.detail_str("compression"), Some("zstd"));
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(kernel(&z, 0x280).unwrap().findings[0].code, "truncated");

        let mut a = vec![0u8; 1024];
        put(&mut a, 0x24, &ZIMAGE_MAGIC.to_be_bytes());
        put(&mut a, 0x28, &0x8000u32.to_be_bytes());
        put(&mut a, 0x2c, &0x8400u32.to_be_bytes());
        put(&mut a, 0x30, &0x0403_0201u32.to_be_bytes());
        let d = kernel(&a, 1024).unwrap();
        assert_eq!(d.detail_str("endianness"), Some("big"));
        assert_eq!(d.details["image-size"], 1024);
        assert!(d.findings.is_empty());
        put(&mut a, 0x2c, &0x7000u32.to_be_bytes());
        assert_eq!(kernel(&a, 1024).unwrap().findings[0].code, "corrupt");
    }

    #[test]
    fn damaged_inputs_never_panic() {
        let seeds: Vec<Vec<u8>> = vec![arm64_image(), early(), {
            let mut e = early();
            e.extend(newc_with("070702", "x", b"abc", 0));
            e
        }];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for s in &seeds {
            for _ in 0..2000 {
                let mut b = s.clone();
                for _ in 0..8 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize) % b.len();
                    b[at] = (x >> 32) as u8;
                }
                let cut = (x >> 40) as usize % (b.len() + 1);
                let _ = kernel(&b[..cut], cut as u64);
                let _ = kernel(&b, u64::MAX);
                let _ = cpio(&b[..cut]);
                let _ = cpio(&b);
            }
        }
    }
}
