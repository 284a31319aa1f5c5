//! The limits the clouds state: AWS's 21 volumes and 16 TiB, Azure's 2 TiB OS disk, AWS's
//! refusal of encrypted disks, glance's refusal of polyglots.

use super::*;

#[test]
fn aws_refuses_an_ova_of_22_disks() {
    let dir = &scratch();
    gpt_disk(dir, "gpt.raw", 1);
    let names: Vec<String> = (1..=22).map(|i| format!("d{i}.vmdk")).collect();
    for n in &names {
        qemu_img_line(
            &format!("convert -f raw -O vmdk -o subformat=streamOptimized gpt.raw {n}"),
            dir,
        );
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    ova_of(dir, "many.ova", &all);
    refused(dir, "many.ova", "aws", "too-many-volumes");
    ova_of(dir, "max.ova", &all[..21]);
    accepted(dir, "max.ova", "aws");
}

#[test]
fn aws_refuses_a_disk_over_16_tib() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 big.qcow2 17T", dir);
    qemu_img_line("create -q -f qcow2 max.qcow2 16T", dir);
    refused(dir, "big.qcow2", "aws", "too-large");
    let (_, codes) = verdict(dir, "max.qcow2", "aws");
    assert!(!codes.iter().any(|c| c == "too-large"), "{codes:?}");
}

/// A fixed VHD of 1 MiB whose footer claims `size` bytes (current and original size, with the
/// footer checksum made right): VHD spec "Hard Disk Footer Format".
fn fixed_vhd_claiming(dir: &Path, name: &str, size: u64) {
    qemu_img_line(
        &format!("create -q -f vpc -o subformat=fixed,force_size {name} 1M"),
        dir,
    );
    let mut b = read(dir, name);
    let at = b.len() - 512;
    let footer = &mut b[at..];
    put(footer, 40, &be64(size));
    put(footer, 48, &be64(size));
    put(footer, 64, &[0; 4]);
    let sum: u32 = footer.iter().map(|&x| u32::from(x)).sum();
    put(footer, 64, &be32(!sum));
    write(dir, name, &b);
}

#[test]
fn azure_refuses_an_os_disk_over_2_tib() {
    let dir = &scratch();
    // A VHD cannot claim more than its CHS geometry's 2040 GiB (vmdisk refuses the footer
    // with a one-line error), so the limit shows on another format's verdict.
    fixed_vhd_claiming(dir, "big.vhd", (4 << 40) + (100 << 30));
    let err = vmdisk_fails(&["info", "--json", "big.vhd"], dir);
    assert!(err.contains("exceeds the format's limit"), "{err}");
    qemu_img_line("create -q -f qcow2 big.qcow2 3T", dir);
    qemu_img_line("create -q -f qcow2 two.qcow2 2T", dir);
    refused(dir, "big.qcow2", "azure", "too-large");
    let (_, codes) = verdict(dir, "two.qcow2", "azure");
    assert!(!codes.iter().any(|c| c == "too-large"), "{codes:?}");
}

#[test]
fn aws_refuses_luks_and_an_encrypted_qcow2() {
    let dir = &scratch();
    let secret = "--object secret,id=s0,data=pw";
    qemu_img_line(
        &format!("create -q {secret} -f luks -o key-secret=s0,iter-time=10 a.luks 4M"),
        dir,
    );
    qemu_img_line(
        &format!(
            "create -q {secret} -f qcow2 -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 e.qcow2 4M"
        ),
        dir,
    );
    for file in ["a.luks", "e.qcow2"] {
        refused(dir, file, "aws", "encrypted");
    }
}

#[test]
fn openstack_refuses_a_polyglot() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 poly.qcow2 16M", dir);
    // An ISO 9660 primary volume descriptor (ECMA-119 8.4) and set terminator in the empty
    // rest of the qcow2 header cluster, as tests/detect/polyglots.rs plants them.
    let file = path(dir, "poly.qcow2");
    let mut pvd = vec![0u8; 0x1000];
    put(&mut pvd, 0, b"\x01CD001\x01");
    put(&mut pvd, 0x50, &64u32.to_le_bytes());
    put(&mut pvd, 0x54, &64u32.to_be_bytes());
    put(&mut pvd, 0x80, &2048u16.to_le_bytes());
    put(&mut pvd, 0x82, &2048u16.to_be_bytes());
    put(&mut pvd, 0x800, b"\xffCD001\x01");
    write_at(&file, 0x8000, &pvd);
    assert_eq!(qemu_info("poly.qcow2", dir)["format"], "qcow2");
    refused(dir, "poly.qcow2", "openstack", "polyglot");
    qemu_img_line("create -q -f qcow2 plain.qcow2 16M", dir);
    accepted(dir, "plain.qcow2", "openstack");
}
