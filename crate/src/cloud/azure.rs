//! Azure: uploading a VHD as a managed disk or image.
//!
//! Sources:
//! - https://learn.microsoft.com/powershell/module/az.compute/add-azvhd (verified): the disk
//!   uploaded "needs to be a .vhd file and in size N * Mib + 512 bytes" (a whole number of MiB
//!   plus the footer); Add-AzVhd "will convert any .vhdx file to a .vhd" and "dynamically sized
//!   VHD files to fixed size during upload", so Azure itself stores fixed VHD only.
//! - https://learn.microsoft.com/en-us/azure/virtual-machines/linux/create-upload-generic
//!   "General Linux installation notes" (not found in the stored copies the search tool
//!   reaches; the first pass's reading): VHDX is not supported, only fixed VHD; the virtual
//!   size must be aligned to 1 MiB; the largest OS VHD of a generation 1 VM is 2,048 GiB. The
//!   2 TiB limit is therefore unverified. A VHD itself cannot exceed 2040 GiB (its CHS
//!   geometry), so the limit only shows for other formats.
//! - https://learn.microsoft.com/en-us/azure/virtual-machines/windows/prepare-for-upload-vhd-image
//!   (not found in the stored copies either): convert VHDX and dynamic disks to fixed VHD.
//!
//! vmdisk does not write VHD yet, so the fixes name qemu-img's `vpc` driver (`force_size`
//! keeps the exact size instead of rounding it to a CHS geometry).

use super::{
    Conversion, MIB, Reason, TIB, bytes, input_name, output_name, package_disks, too_large,
    vhd_type,
};
use crate::format::Format;
use crate::report::Report;

const MAX_OS_DISK: u64 = 2 * TIB;

pub fn reasons(r: &Report) -> Vec<Reason> {
    let name = input_name(r);
    let vhd = output_name(name, "vhd");
    // A package is first written out as raw by vmdisk; qemu-img then makes the VHD.
    let raw = output_name(name, "raw");
    let (qemu_input, prefix, first) = match (package_disks(r), qemu_name(r.format)) {
        (None, Some(q)) => (format!("-f {q} {name}"), String::new(), None),
        _ => (
            format!("-f raw {raw}"),
            format!("vmdisk convert -O raw -o {raw} {name}, then "),
            Some(Conversion::to("raw", raw.clone()).then_more()),
        ),
    };
    let mut out = vec![];
    let mut push = |why: Reason, first: &Option<Conversion>| {
        out.push(match first {
            Some(c) => why.converting(c.clone()),
            None => why,
        })
    };
    let convert = format!(
        "vmdisk cannot write VHD yet: {prefix}qemu-img convert {qemu_input} -O vpc -o subformat=fixed,force_size {vhd}"
    );
    match (r.format, vhd_type(&r.format_specific)) {
        (Format::Vhd, Some("fixed")) => {}
        (Format::Vhd, kind) => push(
            Reason::new(
                "vhd-not-fixed",
                format!(
                    "the VHD is {}; Azure takes only fixed-size VHDs",
                    kind.unwrap_or("not fixed")
                ),
                convert.clone(),
            ),
            &first,
        ),
        (Format::Vhdx, _) => push(
            Reason::new(
                "vhdx-not-supported",
                "Azure does not take VHDX; it takes fixed-size VHD",
                convert.clone(),
            ),
            &first,
        ),
        (other, _) => push(
            Reason::new(
                "format-not-accepted",
                format!("Azure takes only fixed-size VHD files, and this is {other}"),
                convert.clone(),
            ),
            &first,
        ),
    }
    let size = r.virtual_size;
    if !size.is_multiple_of(MIB) {
        let rounded = size.div_ceil(MIB) * MIB;
        let grow = Conversion::to("raw", raw.clone()).then_more();
        push(
            Reason::new(
                "size-not-whole-mib",
                format!(
                    "the virtual size, {}, is not a whole number of MiB, as Azure requires",
                    bytes(size)
                ),
                format!(
                    "grow it to {rounded} bytes first: vmdisk convert -O raw -o {raw} {name}; qemu-img resize -f raw {raw} {rounded}; then qemu-img convert -f raw {raw} -O vpc -o subformat=fixed,force_size {vhd}",
                ),
            ),
            &Some(grow),
        );
    }
    out.extend(too_large(
        size,
        MAX_OS_DISK,
        "a generation 1 VM's OS disk",
        "shrink the disk below 2 TiB, or upload it as a data disk",
    ));
    out
}

/// qemu-img's name for a format it reads, for the suggested command.
fn qemu_name(f: Format) -> Option<&'static str> {
    Some(match f {
        Format::Raw | Format::Iso | Format::Ami => "raw",
        Format::Qcow2 => "qcow2",
        Format::Qcow => "qcow",
        Format::Qed => "qed",
        Format::Vmdk => "vmdk",
        Format::Vdi => "vdi",
        Format::Vhd => "vpc",
        Format::Vhdx => "vhdx",
        Format::Parallels => "parallels",
        _ => return None,
    })
}
