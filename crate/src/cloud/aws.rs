//! AWS VM Import/Export (`aws ec2 import-image` / `import-snapshot`).
//!
//! Sources:
//! - https://docs.aws.amazon.com/vm-import/latest/userguide/prerequisites.html "Image
//!   formats": OVA, stream-optimized ESX VMDK, fixed and dynamic VHD/VHDX, raw. (Not found in
//!   the stored copies the search tool reaches: this list is the first pass's reading.)
//! - https://docs.aws.amazon.com/vm-import/latest/userguide/limitations-image-importing.html
//!   (verified): "Importing VMs with encrypted volumes isn't supported"; "doesn't support
//!   VMware SEsparse delta-file format"; "may fail to boot if the root partition is not on
//!   the same virtual hard drive as the MBR" (so the boot disk must carry a partition table);
//!   "fails for VMs with more than 21 volumes attached".
//! - https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ebs-volume-types.html (verified):
//!   "Volume size | 1 GiB - 16 TiB" for gp3/gp2 (io1 and st1/sc1 also end at 16 TiB; only io2
//!   Block Express reaches 64 TiB). An imported disk becomes an EBS volume, so 16 TiB.

use super::{
    Conversion, Reason, TIB, create_type, has, input_name, output_name, package_disks,
    partition_table, too_large, vhd_type,
};
use crate::FindingCode;
use crate::format::Format;
use crate::report::Report;

const MAX_VOLUME: u64 = 16 * TIB;
const MAX_VOLUMES: usize = 21;

pub fn reasons(r: &Report) -> Vec<Reason> {
    let name = input_name(r);
    let raw = output_name(name, "raw");
    let to_raw = format!("convert it: vmdisk convert -O raw -o {raw} {name}");
    let mut out = vec![];
    if r.format == Format::Ova {
        let disks: Vec<_> = r
            .disks
            .iter()
            .enumerate()
            .filter(|(_, d)| d.role == "disk")
            .collect();
        if disks.len() > MAX_VOLUMES {
            out.push(Reason::new(
                "too-many-volumes",
                format!(
                    "the OVA holds {} disks; VM Import fails for a VM with more than {MAX_VOLUMES} volumes",
                    disks.len()
                ),
                "import the first 21 with the OVA and the rest one by one with aws ec2 import-snapshot",
            ));
        }
        for (i, &(index, d)) in disks.iter().enumerate() {
            let f = d.format.unwrap_or(Format::Raw);
            if let Some(mut why) = format_reason(f, &d.format_specific, &to_raw) {
                let disk_raw = output_name(crate::source::base_name(&d.name), "raw");
                why.message = format!("disk {} ({}): {}", i + 1, d.name, why.message);
                why.fix = format!(
                    "convert that disk (vmdisk convert -O raw --disk {} -o {disk_raw} {name}) and import it on its own",
                    index + 1,
                );
                // Importing it on its own is aws's step, not another tool's.
                out.push(why.converting(Conversion {
                    disk: Some(index),
                    ..Conversion::to("raw", disk_raw)
                }));
            }
            out.extend(size_reason(d.virtual_size.unwrap_or(0)));
            if i == 0 {
                let table = partition_table(d.guest.as_ref(), f, &d.format_specific);
                out.extend(table_reason(table));
            }
        }
    } else if package_disks(r).is_some() {
        out.push(
            Reason::new(
                "package-not-accepted",
                format!("VM Import does not read a {} package", r.format),
                format!("{to_raw} (vmdisk writes the package's disk as a raw image)"),
            )
            .converting(Conversion::to("raw", raw.clone())),
        );
    } else {
        let why = format_reason(r.format, &r.format_specific, &to_raw);
        out.extend(why.map(|w| w.converting(Conversion::to("raw", raw.clone()))));
        out.extend(size_reason(r.virtual_size));
        let table = partition_table(r.guest.as_ref(), r.format, &r.format_specific);
        out.extend(table_reason(table));
    }
    if r.format == Format::Luks || has(r, FindingCode::Encrypted) {
        out.push(Reason::new(
            "encrypted",
            "the disk is encrypted; VM Import does not import encrypted volumes",
            "decrypt it first (qemu-img convert with the key), then import the plain disk",
        ));
    }
    out
}

/// Why VM Import refuses a disk of format `f` (details its format-specific object).
fn format_reason(f: Format, details: &serde_json::Value, fix: &str) -> Option<Reason> {
    match f {
        Format::Raw | Format::Ami => None,
        Format::Vmdk => match create_type(details).unwrap_or("unknown") {
            "streamOptimized" => None,
            "seSparse" => Some(Reason::new(
                "vmdk-sesparse",
                "the VMDK is in VMware's SEsparse delta format, which VM Import does not support",
                fix,
            )),
            kind => Some(Reason::new(
                "vmdk-subformat",
                format!("the VMDK is {kind}; VM Import takes only stream-optimized VMDKs"),
                fix,
            )),
        },
        Format::Vhd | Format::Vhdx
            if vhd_type(details) == Some("differencing")
                || details.get("has-parent") == Some(&serde_json::Value::Bool(true)) =>
        {
            Some(Reason::new(
                "differencing-disk",
                format!(
                    "the {f} is a differencing disk; VM Import takes only fixed and dynamic ones"
                ),
                format!(
                    "flatten it with its parent: {}",
                    fix.trim_start_matches("convert it: ")
                ),
            ))
        }
        Format::Vhd | Format::Vhdx => None,
        other => Some(Reason::new(
            "format-not-accepted",
            format!(
                "VM Import does not read {other} images (it takes OVA, stream-optimized VMDK, VHD, VHDX and raw)"
            ),
            fix,
        )),
    }
}

fn size_reason(virtual_size: u64) -> Option<Reason> {
    too_large(
        virtual_size,
        MAX_VOLUME,
        "an EBS volume",
        "shrink the filesystems and the disk below 16 TiB, or split the data over several disks",
    )
}

/// The boot disk's guest holds no partition table (`table` as [`partition_table`] reads it;
/// nothing is said when the guest could not be read).
fn table_reason(table: Option<Option<&str>>) -> Option<Reason> {
    (table == Some(None)).then(|| {
        Reason::new(
            "no-partition-table",
            "the disk has no partition table (MBR or GPT): VM Import needs a whole bootable disk, not a bare filesystem",
            "install a boot loader into a partitioned disk (for example with virt-make-fs --partition, then grub-install), then import that disk",
        )
    })
}
