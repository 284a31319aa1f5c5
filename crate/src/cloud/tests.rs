use super::*;

#[test]
fn output_names_never_repeat_the_input() {
    assert_eq!(output_name("disk.vmdk", "qcow2"), "disk.qcow2");
    assert_eq!(output_name("disk.qcow2", "qcow2"), "disk-flat.qcow2");
    assert_eq!(output_name("disk", "raw"), "disk.raw");
}

#[test]
fn sizes_read_in_binary_units() {
    assert_eq!(bytes(3 * GIB), "3 GiB");
    assert_eq!(bytes(1000), "1000 bytes");
    assert_eq!(bytes(MIB + MIB / 2), "1.50 MiB (1572864 bytes)");
}

#[test]
fn targets_round_trip_their_names() {
    for &t in Target::ALL {
        assert_eq!(Target::from_name(t.name()), Some(t));
    }
    assert_eq!(Target::from_name("ibm"), None);
}
