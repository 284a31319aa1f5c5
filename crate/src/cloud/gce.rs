//! Google Compute Engine: a custom image created from a file in Cloud Storage.
//!
//! Sources:
//! - https://cloud.google.com/compute/docs/images/image-management-best-practices (verified):
//!   "the disk's bytes must be written to a file named disk.raw", "archived using the tar
//!   format and then compressed using the GZIP format"; "For an image to be bootable, it must
//!   contain ... A partition table: either a master boot record or GUID partition table".
//! - https://cloud.google.com/compute/docs/import/import-existing-image "Import the image file
//!   manually" (not found in the stored copies the search tool reaches; the first pass's
//!   reading): GNU tar format (`tar --format=oldgnu -Sczf`), one member, a size in whole GB
//!   (GiB). No maximum image size was found in any stored page, so none is checked.

use super::{Conversion, GIB, Reason, bytes, detail, input_name, partition_table};
use crate::format::Format;
use crate::report::Report;

pub fn reasons(r: &Report) -> Vec<Reason> {
    let name = input_name(r);
    let pack = format!(
        "vmdisk convert -O raw -o disk.raw {name}, then tar --format=oldgnu -Sczf {} disk.raw (vmdisk does not write the tarball itself)",
        tarball_name(name)
    );
    let packing = Conversion::to("raw", "disk.raw").then_more();
    let mut out = vec![];
    if r.format != Format::Gce {
        out.push(
            Reason::new(
                "not-a-gce-tarball",
                format!(
                    "Compute Engine imports a gzipped tar holding one disk.raw, and this is {}",
                    r.format
                ),
                pack.clone(),
            )
            .converting(packing.clone()),
        );
        return out;
    }
    if detail(&r.format_specific, "compression") != Some("gzip") {
        out.push(Reason::new(
            "not-gzip",
            "the tarball is not gzip-compressed, as Compute Engine requires",
            format!("repack it: vmdisk extract --member disk.raw -o disk.raw {name}, then tar --format=oldgnu -Sczf {} disk.raw", tarball_name(name)),
        ));
    }
    let members = r
        .format_specific
        .get("members")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    if members != 1 {
        out.push(Reason::new(
            "not-one-member",
            format!("the tarball holds {members} members; Compute Engine wants exactly one, disk.raw"),
            format!("repack disk.raw alone: vmdisk extract --member disk.raw -o disk.raw {name}, then tar --format=oldgnu -Sczf {} disk.raw", tarball_name(name)),
        ));
    }
    match r
        .disks
        .iter()
        .find(|d| crate::source::base_name(&d.name) == "disk.raw")
    {
        None => out.push(
            Reason::new("no-disk-raw", "the tarball holds no disk.raw", pack.clone())
                .converting(packing.clone()),
        ),
        Some(d) => {
            if d.format.is_some_and(|f| !f.is_raw_content()) {
                out.push(
                    Reason::new(
                        "disk-not-raw",
                        format!(
                            "disk.raw holds a {} image, not raw bytes",
                            d.format.map_or("?", |f| f.name())
                        ),
                        pack.clone(),
                    )
                    .converting(packing.clone()),
                );
            }
            let table = partition_table(
                d.guest.as_ref(),
                d.format.unwrap_or(Format::Raw),
                &d.format_specific,
            );
            if table == Some(None) {
                out.push(Reason::new(
                    "no-partition-table",
                    "disk.raw has no partition table; a bootable Compute Engine image needs an MBR or a GPT and a bootable partition",
                    "install a boot loader into a partitioned disk (for example with virt-make-fs --partition, then grub-install), then pack that disk",
                ));
            }
            let size = d.virtual_size.unwrap_or(0);
            if !size.is_multiple_of(GIB) {
                out.push(Reason::new(
                    "size-not-whole-gib",
                    format!("disk.raw is {}; Compute Engine needs a whole number of GB (GiB)", bytes(size)),
                    format!(
                        "grow it to {} bytes: vmdisk extract --member disk.raw -o disk.raw {name}; truncate -s {} disk.raw; then tar --format=oldgnu -Sczf {} disk.raw",
                        size.div_ceil(GIB) * GIB,
                        size.div_ceil(GIB) * GIB,
                        tarball_name(name)
                    ),
                ));
            }
        }
    }
    out
}

/// `disk.qcow2` -> `disk-gce.tar.gz`, `img.tar.gz` -> `img-gce.tar.gz`.
fn tarball_name(input: &str) -> String {
    let stem = [".tar.gz", ".tgz"]
        .iter()
        .find_map(|ext| input.strip_suffix(ext))
        .or_else(|| input.rsplit_once('.').map(|(s, _)| s))
        .filter(|s| !s.is_empty())
        .unwrap_or(input);
    format!("{stem}-gce.tar.gz")
}
