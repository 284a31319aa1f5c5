//! OpenStack: what glance checks when an image is uploaded or imported.
//!
//! Sources (read, not copied):
//! - glance/location.py `set_data` (openstack/glance): a `bare` upload runs through
//!   oslo.utils' format inspector; the detected format must equal the declared `disk_format`
//!   (`require_image_format_match`, default true), except that `raw` accepts any content
//!   and formats the inspector does not know (ami, aki, ari) accept unrecognised content;
//!   several formats at once are refused, except exactly ISO + GPT (a bootable hybrid ISO),
//!   taken as the ISO; then the detected format's safety checks run.
//! - glance/common/config.py: the default `disk_formats` are ami, ari, aki, vhd, vhdx, vmdk,
//!   raw, qcow2, vdi, iso, ploop; `vmdk_allowed_types` streamOptimized, monolithicSparse.
//! - oslo_utils/imageutils/format_inspector.py (openstack/oslo.utils): qcow2 refused with a
//!   backing file, a data file, a version other than 2 or 3, or an incompatible feature bit
//!   above the four it knows (dirty, corrupt, external data file, compression type: so
//!   extended L2 entries are refused too); QED always refused ("This file format is not
//!   allowed"); VMDK refused unless its createType is monolithicSparse or streamOptimized,
//!   and refused with extent file names holding a `/`; an MBR-signed first sector (what it
//!   calls gpt, raw content) refused when a partition entry's boot flag is not 0x00/0x80, a
//!   protective entry (0xEE) does not start at CHS 0/2/0 and LBA 1 or is not the only entry,
//!   or no partition is defined.

use super::{Conversion, Reason, create_type, detail, has, input_name, output_name};
use crate::FindingCode;
use crate::format::Format;
use crate::glance::declared;
use crate::report::Report;

pub fn reasons(r: &Report) -> Vec<Reason> {
    let mut out = vec![];
    let name = input_name(r);
    let qcow2_out = output_name(name, "qcow2");
    let to_qcow2 = format!("convert it: vmdisk convert -O qcow2 -o {qcow2_out} {name}");
    match r.format {
        Format::Qed => out.push(Reason::new(
            "qed-banned",
            "glance refuses every QED image: its format inspector bans the format",
            to_qcow2.clone(),
        )
        .converting(Conversion::to("qcow2", qcow2_out.clone()))),
        Format::Qcow => out.push(Reason::new(
            "unsupported-qcow-version",
            "this is a qcow version 1 image; glance inspects it as qcow2 and refuses any version but 2 and 3",
            to_qcow2.clone(),
        )
        .converting(Conversion::to("qcow2", qcow2_out.clone()))),
        Format::Luks => out.push(Reason::new(
            "disk-format-not-allowed",
            "LUKS is not one of glance's disk formats",
            "decrypt it first (qemu-img convert with the key), then upload the plain image",
        )),
        Format::Uec => out.push(Reason::new(
            "upload-members",
            "a UEC tarball is not uploaded as one image: its machine image, kernel and ramdisk are three glance images",
            "extract each member (vmdisk extract --member NAME -o NAME) and upload them as the register steps in the report say",
        )),
        Format::Gce | Format::Compressed => out.push(Reason::new(
            "compressed-upload",
            format!(
                "a {} file is not a disk glance can boot: it would be stored as raw bytes",
                r.format
            ),
            to_qcow2.clone(),
        )
        .converting(Conversion::to("qcow2", qcow2_out.clone()))),
        Format::Ovf => out.push(Reason::new(
            "upload-disks",
            "an unpacked OVF is not one file: glance takes each disk, or the whole appliance as an OVA",
            "upload each disk with its own disk_format, or pack the descriptor and disks into an OVA",
        )),
        _ if declared(r.format).is_none() && r.format != Format::Ova => {
            out.push(Reason::new(
                "disk-format-not-allowed",
                format!("{} is not one of glance's disk formats", r.format),
                to_qcow2.clone(),
            )
            .converting(Conversion::to("qcow2", qcow2_out.clone())))
        }
        _ => {}
    }
    // The inspector sees one format, or it refuses (bar ISO + GPT, which vmdisk does not list
    // as two formats: a partition table is content, not a container).
    if r.detected.iter().filter(|f| f.is_container()).count() > 1
        || has(r, FindingCode::FormatMismatch)
    {
        out.push(Reason::new(
            "polyglot",
            "the file is valid as more than one format at once; glance refuses such files",
            "rebuild the image from its source with one tool, or convert it: vmdisk convert -O qcow2",
        )
        .converting(Conversion::to("qcow2", qcow2_out.clone())));
    }
    let start = out.len();
    if r.format == Format::Qcow2 {
        qcow2(r, &to_qcow2, &mut out);
    }
    if r.format == Format::Vmdk {
        vmdk(r, &to_qcow2, &mut out);
    }
    // Every qcow2 and VMDK fix is that conversion.
    for why in &mut out[start..] {
        why.convert = Some(Conversion::to("qcow2", qcow2_out.clone()));
    }
    // The inspector reads the first sector of the uploaded bytes: the guest's only for raw
    // content (inside a qcow2 or VMDK it meets that format's header instead).
    let first_sector = r.guest.as_ref().unwrap_or(&r.format_specific);
    if r.format == Format::Raw
        && let Some(problem) = detail(first_sector, "mbr-problem")
    {
        out.push(Reason::new(
            "unsafe-partition-table",
            format!("glance's partition-table check refuses the first sector: {problem}"),
            "write a standard MBR (for a GPT disk, a protective one: gdisk writes it when it saves the table), or ask the operator to list the check in [image_format] gpt_safety_checks_nonfatal",
        ));
    }
    out
}

fn qcow2(r: &Report, fix: &str, out: &mut Vec<Reason>) {
    if has(r, FindingCode::BackingFile) {
        out.push(Reason::new(
            "backing-file",
            "the image is an overlay: it names a backing file, and glance refuses images with one",
            format!(
                "flatten the chain into one image: {}",
                fix.trim_start_matches("convert it: ")
            ),
        ));
    }
    if has(r, FindingCode::DataFile) {
        out.push(Reason::new(
            "data-file",
            "the image keeps its data in an external file, and glance refuses images with one",
            fix,
        ));
    }
    let extended_l2 = r.format_specific.get("extended-l2") == Some(&serde_json::Value::Bool(true));
    if extended_l2 || has(r, FindingCode::UnknownFeature) {
        out.push(Reason::new(
            "unknown-qcow2-feature",
            "the image sets a qcow2 feature glance's inspector does not know (extended L2 entries, or a newer one)",
            fix,
        ));
    }
}

fn vmdk(r: &Report, fix: &str, out: &mut Vec<Reason>) {
    let kind = create_type(&r.format_specific).unwrap_or("unknown");
    if !matches!(kind, "monolithicSparse" | "streamOptimized") {
        out.push(Reason::new(
            "vmdk-subformat",
            format!(
                "the VMDK is {kind}; glance accepts only the single-file monolithicSparse and streamOptimized kinds"
            ),
            fix,
        ));
    }
    if has(r, FindingCode::ExternalExtent) {
        out.push(Reason::new(
            "vmdk-extent-path",
            "the VMDK descriptor names extent files by path; glance refuses extent names with a /",
            fix,
        ));
    }
}
