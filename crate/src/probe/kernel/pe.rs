//! The EFI stub's PE header, which names the machine of most modern kernels.

use super::super::Detection;
use super::super::bytes::{has, le16, le32};

/// The magic at 0x38 of Linux EFI-stub images that carry no architecture magic of their own
/// (LoongArch, EFI zboot; `include/linux/pe.h`).
pub(super) const LINUX_PE_MAGIC: u32 = 0x8182_23cd;

/// The PE machine field of an `MZ` image whose PE header offset sits at 0x3c, when the PE
/// signature is there (the EFI stub).
pub(super) fn pe_machine(h: &[u8]) -> Option<u16> {
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
pub(super) fn set_arch(d: &mut Detection, h: &[u8], fallback: &'static str) {
    let machine = pe_machine(h);
    d.set("arch", machine.and_then(pe_arch).unwrap_or(fallback));
    d.set("efi-stub", machine.is_some());
}
