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

mod cpio;
mod image;
mod pe;
#[cfg(test)]
mod tests;
mod x86;
mod zboot;
mod zimage;

use super::{Ctx, Detection, Scan};
use crate::finding_code::FindingCode;
use crate::report::Severity;

use cpio::{cpio, initramfs};
use image::{arm64, loongarch, riscv};
use x86::bzimage;
use zboot::zboot;
use zimage::arm_zimage;

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

/// The Critical `truncated` finding for a kernel shorter than its header says.
fn short(d: &mut Detection, what: &str, len: u64, need: u64) {
    d.finding(
        FindingCode::Truncated,
        Severity::Critical,
        format!("the {what} is {len} bytes but its header describes {need}"),
    );
}
