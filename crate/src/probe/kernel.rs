//! Linux boot files: the kernel (bzImage, an AKI) and the initramfs (cpio, an ARI).
//!
//! Specs: Linux `Documentation/arch/x86/boot.rst` (the real-mode setup header at 0x1f1, `HdrS`
//! at 0x202) and `Documentation/driver-api/early-userspace/buffer-format.rst` (newc cpio).
//! Compressed initramfs images are handled in `archive`.

use super::bytes::{has, le16, le32, slice};
use super::{Ctx, Detection, Format, Scan};
use crate::report::Severity;
use serde_json::{Value, json};

/// cpio members listed in details.
const LISTED_MEMBERS: usize = 16;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    if let Some(d) = bzimage(cx) {
        scan.add(0, d);
    } else if let Some(c) = cpio(&cx.head) {
        let mut d = Detection::new(Format::Ari);
        d.virtual_size = Some(cx.len);
        d.set("archive", c.kind);
        d.set("members", c.members);
        if let Some(next) = c.then {
            // Early microcode first, then the real (compressed) initramfs: the usual layout.
            d.set("followed-by", next);
        }
        if c.kind == "cpio (odc)" {
            d.finding(
                "unsupported-format",
                Severity::Warning,
                "an odc cpio archive: the kernel unpacks only newc initramfs archives",
            );
        }
        scan.add(0, d);
    }
}

fn bzimage(cx: &Ctx<'_>) -> Option<Detection> {
    let h = &cx.head;
    if !has(h, 0x202, b"HdrS") || !has(h, 0x1fe, &[0x55, 0xaa]) {
        return None;
    }
    let mut d = Detection::new(Format::Aki);
    d.virtual_size = Some(cx.len);
    let protocol = le16(h, 0x206);
    d.set(
        "boot-protocol",
        format!("{}.{:02}", protocol >> 8, protocol & 0xff),
    );
    let loaded_high = h.get(0x211).is_some_and(|f| f & 1 != 0);
    d.set("image", if loaded_high { "bzImage" } else { "zImage" });
    if protocol >= 0x20c && le16(h, 0x236) & 1 != 0 {
        d.set("64-bit", true);
    }
    if has(h, 0, b"MZ") {
        let pe = le32(h, 0x3c) as usize;
        d.set("efi-stub", has(h, pe, b"PE\0\0"));
    }
    // kernel_version: a pointer (minus 0x200) to a NUL-terminated string in the setup code.
    let ptr = le16(h, 0x20e);
    if protocol >= 0x200 && ptr != 0 {
        let s = slice(h, usize::from(ptr) + 0x200, 256);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        if let Some(v) = super::bytes::text(&s[..end]) {
            d.set("kernel-version", v);
        }
    }
    let setup = match h.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => u64::from(n),
    };
    let need = (setup + 1) * 512 + u64::from(le32(h, 0x1f4)) * 16;
    if cx.len < need {
        d.finding(
            "truncated",
            Severity::Critical,
            format!(
                "the kernel image is {} bytes but its header describes {need}",
                cx.len
            ),
        );
    }
    Some(d)
}

/// A cpio archive at the start of `buf`.
pub struct Cpio {
    pub kind: &'static str,
    /// The first members: name and size.
    pub members: Vec<Value>,
    /// What follows the archive's trailer inside `buf` (`gzip`, `xz`, ...), when anything does.
    pub then: Option<&'static str>,
}

/// Parse the cpio headers found in `buf` (a prefix of the archive).
pub fn cpio(buf: &[u8]) -> Option<Cpio> {
    let (kind, hex, head_len, fields) = match slice(buf, 0, 6) {
        b"070701" => ("cpio (newc)", true, 110, 13),
        b"070702" => ("cpio (newc, crc)", true, 110, 13),
        b"070707" => ("cpio (odc)", false, 76, 10),
        _ => return None,
    };
    // Every header field must be ASCII hex (newc) or octal (odc), or this is not cpio.
    let num = |h: &[u8], i: usize| -> Option<u64> {
        let (at, w, radix) = if hex {
            (6 + i * 8, 8, 16)
        } else {
            // odc: dev ino mode uid gid nlink rdev (6 each) mtime (11) namesize (6) filesize (11)
            const AT: [(usize, usize); 10] = [
                (6, 6),
                (12, 6),
                (18, 6),
                (24, 6),
                (30, 6),
                (36, 6),
                (42, 6),
                (48, 11),
                (59, 6),
                (65, 11),
            ];
            let (a, w) = AT[i];
            (a, w, 8)
        };
        let s = std::str::from_utf8(slice(h, at, w)).ok()?;
        (s.len() == w).then(|| u64::from_str_radix(s, radix).ok())?
    };
    if !(0..fields).all(|i| num(buf, i).is_some()) {
        return None;
    }
    let mut members = vec![];
    let mut at = 0usize;
    let mut then = None;
    for _ in 0..4096 {
        let h = slice(buf, at, head_len);
        if h.len() < head_len || !has(h, 0, &buf[..5]) {
            break;
        }
        let (namesize, filesize) = if hex {
            (num(h, 11), num(h, 6))
        } else {
            (num(h, 8), num(h, 9))
        };
        let (Some(namesize), Some(filesize)) = (namesize, filesize) else {
            break;
        };
        let name_at = at + head_len;
        let name = slice(buf, name_at, namesize.min(4096) as usize);
        let name = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(&[]));
        let align = |n: u64| if hex { n.div_ceil(4) * 4 } else { n };
        let data_at = align((name_at as u64).saturating_add(namesize));
        let next = align(data_at.saturating_add(filesize));
        if name == "TRAILER!!!" {
            // Several archives may be concatenated, after zero padding.
            let rest = slice(buf, usize::try_from(next).unwrap_or(usize::MAX), 1 << 20);
            if let Some(p) = rest.iter().position(|&b| b != 0) {
                then = super::archive::compression(&rest[p..]).or(Some("data"));
                if has(rest, p, b"0707") {
                    at = next as usize + p;
                    continue;
                }
            }
            break;
        }
        if members.len() < LISTED_MEMBERS {
            members.push(json!({"name": name, "size": filesize}));
        }
        match usize::try_from(next) {
            Ok(n) if n > at => at = n,
            _ => break,
        }
    }
    Some(Cpio {
        kind,
        members,
        then,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0o100644,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn lists_newc_members_and_what_follows() {
        let mut a = newc("kernel/x86/microcode/GenuineIntel.bin", b"ucode");
        a.extend(newc("TRAILER!!!", b""));
        a.extend([0; 512]);
        a.extend([0x1f, 0x8b, 8, 0]);
        let c = cpio(&a).unwrap();
        assert_eq!(c.kind, "cpio (newc)");
        assert_eq!(c.members.len(), 1);
        assert_eq!(
            c.members[0]["name"],
            "kernel/x86/microcode/GenuineIntel.bin"
        );
        assert_eq!(c.then, Some("gzip"));
        assert!(cpio(b"070701zzzz").is_none());
    }
}
