//! The `Image` headers of arm64, RISC-V and LoongArch (each architecture's `booting.rst`).

use super::super::bytes::{be64, has, le32, le64};
use super::super::{Detection, Format};
use super::pe::{LINUX_PE_MAGIC, pe_machine, set_arch};

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

pub(super) fn arm64(h: &[u8]) -> Option<Detection> {
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

pub(super) fn riscv(h: &[u8]) -> Option<Detection> {
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

pub(super) fn loongarch(h: &[u8]) -> Option<Detection> {
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
