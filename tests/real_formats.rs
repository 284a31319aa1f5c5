//! Images other tools make the way vmdisk met them in the wild (issue 13, "right on images other
//! tools made"), rebuilt at test time: a Virtual PC VHD sized by its geometry, a FreeBSD-mkimg
//! style VMDK whose embedded descriptor names its extent `""`, a bare seSparse extent, and a
//! Parallels Desktop bundle opened from its DiskDescriptor.xml.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

#[path = "real_formats/parallels.rs"]
mod parallels;
#[path = "real_formats/sesparse.rs"]
mod sesparse;

/// What qemu reads from `img` as format `fmt`, as bytes.
fn qemu_raw(dir: &Path, fmt: &str, img: &str) -> Vec<u8> {
    qemu_img(
        &["convert", "-f", fmt, "-O", "raw", img, "qemu-out.raw"],
        dir,
    );
    let data = read(dir, "qemu-out.raw");
    std::fs::remove_file(path(dir, "qemu-out.raw")).unwrap();
    data
}

fn qemu_size(dir: &Path, fmt: &str, img: &str) -> u64 {
    let q = json(&qemu_img(&["info", "-f", fmt, "--output=json", img], dir));
    q["virtual-size"].as_u64().unwrap()
}

fn messages(info: &Value) -> String {
    findings(info)
        .into_iter()
        .map(|f| f.2)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// VHD made by Virtual PC: the guest sees the CHS geometry's size

/// The VHD footer checksum: the one's complement of the byte sum, the checksum field (64..68)
/// counted as zero (VHD specification, "Hard Disk Footer Format").
fn vhd_checksum(footer: &[u8]) -> u32 {
    let sum: u32 = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .map(|(_, &b)| u32::from(b))
        .fold(0, u32::wrapping_add);
    !sum
}

#[test]
fn virtual_pc_vhd_is_sized_by_its_geometry() {
    let d = &scratch();
    create_image(d, "vpc", "subformat=dynamic", &[], "v.vhd", "100M");
    qemu_io("v.vhd", &["write -P 0x5a 0 1M", "write -P 0x6b 99M 1M"], d);
    let mut img = read(d, "v.vhd");
    let len = img.len();
    let footer = &img[len - 512..];
    assert_eq!(&footer[28..32], b"qemu", "qemu-img wrote a `qemu` creator");
    let chs = u64::from(u16::from_be_bytes([footer[56], footer[57]]))
        * u64::from(footer[58])
        * u64::from(footer[59])
        * 512;
    // The dynamic header (at the footer's data offset) gives the BAT's reach: a current size up
    // to it is one the BAT covers, and it is not the geometry's product.
    let dyn_at = u64::from_be_bytes(footer[16..24].try_into().unwrap()) as usize;
    let entries = u32::from_be_bytes(img[dyn_at + 28..dyn_at + 32].try_into().unwrap());
    let block = u32::from_be_bytes(img[dyn_at + 32..dyn_at + 36].try_into().unwrap());
    let current = u64::from(entries) * u64::from(block);
    assert!(
        current > chs,
        "the patched size must differ from the geometry's"
    );
    // Both footers: the one at the end and its copy at offset 0.
    for at in [0, len - 512] {
        let f = &mut img[at..at + 512];
        f[28..32].copy_from_slice(b"vpc ");
        f[40..48].copy_from_slice(&current.to_be_bytes());
        f[48..56].copy_from_slice(&current.to_be_bytes());
        let sum = vhd_checksum(f);
        f[64..68].copy_from_slice(&sum.to_be_bytes());
    }
    write(d, "v.vhd", &img);

    let qemu = qemu_size(d, "vpc", "v.vhd");
    assert_eq!(qemu, chs, "qemu sizes a Virtual PC image by its geometry");
    let info = info_json(&["v.vhd"], d);
    assert_eq!(info["format"], "vhd", "{info}");
    assert_eq!(info["virtual-size"].as_u64().unwrap(), qemu, "{info}");
    let fs = &info["format-specific"];
    assert_eq!(fs["creator"], "vpc", "{info}");
    assert_eq!(fs["current-size"].as_u64().unwrap(), current, "{info}");
    assert!(has_finding(&info, "size-ambiguous", "info"), "{info}");
    assert!(
        messages(&info).contains(&current.to_string()),
        "the footer's size is kept in the finding: {info}"
    );
    assert!(vmdisk_raw(d, &["v.vhd"]) == qemu_raw(d, "vpc", "v.vhd"));

    // The same footer from Hyper-V (`win `) keeps its current size, as qemu does.
    for at in [0, len - 512] {
        let f = &mut img[at..at + 512];
        f[28..32].copy_from_slice(b"win ");
        let sum = vhd_checksum(f);
        f[64..68].copy_from_slice(&sum.to_be_bytes());
    }
    write(d, "w.vhd", &img);
    assert_eq!(qemu_size(d, "vpc", "w.vhd"), current);
    let info = info_json(&["w.vhd"], d);
    assert_eq!(info["virtual-size"].as_u64().unwrap(), current, "{info}");
    assert!(!codes(&info).contains(&"size-ambiguous".into()), "{info}");
}

// ---------------------------------------------------------------------------------------------
// VMDK whose embedded descriptor names its extent "" (FreeBSD mkimg)

/// A monolithicSparse VMDK whose embedded descriptor's extent name is replaced by `name`
/// (the descriptor is NUL-terminated text in its own sectors, so a shorter line fits).
fn vmdk_with_extent_name(d: &Path, file: &str, name: &str) {
    create_image(d, "vmdk", "", &[], file, "10M");
    qemu_io(file, &["write -P 0x3c 64k 128k"], d);
    let mut img = read(d, file);
    let at = u64::from_le_bytes(img[28..36].try_into().unwrap()) as usize * 512;
    let size = u64::from_le_bytes(img[36..44].try_into().unwrap()) as usize * 512;
    let area = &img[at..at + size];
    let end = area.iter().position(|&b| b == 0).unwrap();
    let text = String::from_utf8(area[..end].to_vec()).unwrap();
    let quoted = format!("\"{file}\"");
    assert!(text.contains(&quoted), "{text}");
    let text = text.replace(&quoted, &format!("\"{name}\""));
    assert!(text.len() < size);
    img[at..at + size].fill(0);
    img[at..at + text.len()].copy_from_slice(text.as_bytes());
    write(d, file, &img);
}

#[test]
fn vmdk_extent_named_empty_is_the_file_itself() {
    let d = &scratch();
    vmdk_with_extent_name(d, "e.vmdk", "");
    let info = info_json(&["e.vmdk"], d);
    assert_eq!(info["format"], "vmdk", "{info}");
    assert_eq!(
        info["virtual-size"].as_u64().unwrap(),
        qemu_size(d, "vmdk", "e.vmdk"),
        "{info}"
    );
    assert_eq!(info["format-specific"]["create-type"], "monolithicSparse");
    assert!(codes(&info).is_empty(), "no finding at all: {info}");
    assert!(vmdisk_raw(d, &["e.vmdk"]) == qemu_raw(d, "vmdk", "e.vmdk"));

    // A name that is a path still is one.
    vmdk_with_extent_name(d, "p.vmdk", "/etc/x");
    let info = info_json(&["p.vmdk"], d);
    assert!(has_finding(&info, "external-extent", "warning"), "{info}");
}
