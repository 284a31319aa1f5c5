//! The guest's partition table, read through the image: a qcow2, a stream-optimized VMDK, a
//! VHD, a VHDX and a VDI made from a raw disk with a GPT report it, the same made from a blank
//! disk do not, and the AWS and GCE verdicts follow.

use super::*;

/// `guest.partition-table` of the report of `file` (Null when the guest holds none).
fn guest_table(dir: &Path, file: &str) -> Value {
    let info = info_json(&[file], dir);
    assert!(info["guest"].is_object(), "{file}: {info}");
    info["guest"]["partition-table"].clone()
}

#[test]
fn the_guest_partition_table_is_read_through_every_format() {
    let dir = &scratch();
    gpt_disk(dir, "gpt.raw", 1);
    write(dir, "blank.raw", &vec![0u8; 1 << 20]);
    // (qemu-img's format, its options (-q when none), the file's extension)
    let made = [
        ("qcow2", "-q", "qcow2"),
        ("vmdk", "-o subformat=streamOptimized", "vmdk"),
        ("vpc", "-q", "vhd"),
        ("vhdx", "-q", "vhdx"),
        ("vdi", "-q", "vdi"),
    ];
    for src in ["gpt", "blank"] {
        for (fmt, opts, ext) in made {
            let file = format!("{src}.{ext}");
            qemu_img_line(
                &format!("convert -f raw -O {fmt} {opts} {src}.raw {file}"),
                dir,
            );
            let table = guest_table(dir, &file);
            match src {
                "gpt" => assert_eq!(table, "gpt", "{file}"),
                _ => assert!(table.is_null(), "{file}: {table}"),
            }
        }
    }
    assert_eq!(guest_table(dir, "gpt.raw"), "gpt");
    assert!(guest_table(dir, "blank.raw").is_null());
    accepted(dir, "gpt.vmdk", "aws");
    refused(dir, "blank.vmdk", "aws", "no-partition-table");
    // VM Import takes no qcow2 whatever it holds, but only the blank one lacks a table.
    let (_, codes) = verdict(dir, "gpt.qcow2", "aws");
    assert_eq!(codes, ["format-not-accepted"]);
    refused(dir, "blank.qcow2", "aws", "no-partition-table");
    // An OVA's boot disk is read through its VMDK too.
    ova(dir, "gpt.ova", "gpt.vmdk");
    accepted(dir, "gpt.ova", "aws");
    ova(dir, "blank.ova", "blank.vmdk");
    refused(dir, "blank.ova", "aws", "no-partition-table");
}

#[test]
fn a_gce_disk_raw_without_a_partition_table_is_refused() {
    let dir = &scratch();
    write(dir, "disk.raw", b"");
    truncate(&dir.join("disk.raw"), 1 << 30);
    ok(
        "tar",
        &["--format=oldgnu", "-Sczf", "blank.tar.gz", "disk.raw"],
        dir,
    );
    refused(dir, "blank.tar.gz", "gce", "no-partition-table");
}

#[test]
fn hash_always_hashes_the_file() {
    let dir = &scratch();
    qemu_img_line("create -q -f qed q.qed 16M", dir);
    let info = json(&vmdisk(&["info", "--json", "--hash", "q.qed"], dir));
    assert!(
        info["glance"].is_null(),
        "glance has no disk_format for QED"
    );
    let md5 = ok("md5sum", &["q.qed"], dir);
    let sha = ok("sha512sum", &["q.qed"], dir);
    assert_eq!(
        info["hashes"]["checksum"].as_str(),
        md5.split_whitespace().next()
    );
    assert_eq!(info["hashes"]["os_hash_algo"], "sha512");
    assert_eq!(
        info["hashes"]["os_hash_value"].as_str(),
        sha.split_whitespace().next()
    );
    let text = vmdisk(&["info", "--hash", "q.qed"], dir);
    let line = format!(
        "hashes: checksum={} os_hash_algo=sha512 os_hash_value={}",
        md5.split_whitespace().next().unwrap(),
        sha.split_whitespace().next().unwrap()
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        json(&vmdisk(&["info", "--json", "q.qed"], dir))
            .get("hashes")
            .is_none(),
        "no hashes unless asked"
    );
}
