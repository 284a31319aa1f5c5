//! x86 bzImage: `Documentation/arch/x86/boot.rst`.

use super::super::bytes::{has, le16, le32, slice, text};
use super::super::{Detection, Format};
use super::{compression, pe::set_arch, short};

/// x86: the setup header (boot protocol 2.00+ has `HdrS`).
pub(super) fn bzimage(h: &[u8], len: u64) -> Option<Detection> {
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
