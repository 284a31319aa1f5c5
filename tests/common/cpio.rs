//! newc cpio members, as initramfs archives hold them.

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
