//! Boot files built by hand: newc cpio members, as initramfs archives hold them, and the x86
//! kernel's setup header.

use super::put;

/// One newc member (`070701`, or `070702` with the data's byte sum as its check).
pub fn newc(magic: &str, name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let check = if magic == "070702" {
        data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
    } else {
        0
    };
    let fields = [
        1,
        mode,
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
    v.extend(name.as_bytes());
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(data);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// A regular file (mode 0644) as a `070701` member.
pub fn newc_file(name: &str, data: &[u8]) -> Vec<u8> {
    newc("070701", name, 0o100644, data)
}

/// The boot sector and setup header (`HdrS`, protocol 2.15, 3 setup sectors) of an x86 bzImage
/// of `k.len()` bytes, and the kernel version string at `version_at`, where the header points.
pub fn x86_setup_header(k: &mut [u8], version_at: usize, version: &[u8]) {
    let len = k.len() as u32;
    k[0x1f1] = 3;
    put(k, 0x1f4, &((len - 4 * 512) / 16).to_le_bytes());
    put(k, 0x1fe, &[0x55, 0xaa]);
    put(k, 0x200, &[0xeb, 0x6a]);
    put(k, 0x202, b"HdrS");
    put(k, 0x206, &0x020fu16.to_le_bytes());
    put(k, 0x20e, &((version_at - 0x200) as u16).to_le_bytes());
    k[0x211] = 1;
    put(k, 0x236, &1u16.to_le_bytes());
    put(k, version_at, version);
}
