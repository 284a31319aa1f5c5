use super::*;
use crate::error::ErrorKind;
use zerocopy::IntoBytes;

fn v3_header() -> Vec<u8> {
    let mut b = vec![0u8; 112];
    b[..4].copy_from_slice(MAGIC);
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    b[20..24].copy_from_slice(&16u32.to_be_bytes());
    b[96..100].copy_from_slice(&4u32.to_be_bytes());
    b[100..104].copy_from_slice(&112u32.to_be_bytes());
    b[104] = 1;
    b
}

#[test]
fn parses_v3_with_compression_type() {
    let h = Header::parse(&v3_header(), "x").unwrap();
    assert_eq!((h.version, h.cluster_bits, h.compression_type), (3, 16, 1));
}

#[test]
fn rejects_short_and_odd_headers() {
    let b = v3_header();
    assert!(matches!(
        Header::parse(&b[..50], "x"),
        Err(Error {
            kind: ErrorKind::Truncated,
            ..
        })
    ));
    let mut odd = b.clone();
    odd[100..104].copy_from_slice(&105u32.to_be_bytes());
    assert!(matches!(
        Header::parse(&odd, "x"),
        Err(Error {
            kind: ErrorKind::Corrupt,
            ..
        })
    ));
    let mut v4 = b;
    v4[4..8].copy_from_slice(&4u32.to_be_bytes());
    assert!(matches!(
        Header::parse(&v4, "x"),
        Err(Error {
            kind: ErrorKind::Unsupported,
            ..
        })
    ));
}

#[test]
fn extensions_are_bounded() {
    let mut c = vec![0u8; 512];
    // backing format "qcow2", then an extension claiming more bytes than the cluster has.
    c[112..116].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    c[116..120].copy_from_slice(&5u32.to_be_bytes());
    c[120..125].copy_from_slice(b"qcow2");
    c[128..132].copy_from_slice(&0x1234u32.to_be_bytes());
    c[132..136].copy_from_slice(&1000u32.to_be_bytes());
    assert!(matches!(
        parse_extensions(&c, 112, 512),
        Err(Error {
            kind: ErrorKind::Corrupt,
            ..
        })
    ));
    c[132..136].copy_from_slice(&0u32.to_be_bytes());
    let e = parse_extensions(&c, 112, 512).unwrap();
    assert_eq!(e.backing_format.as_deref(), Some("qcow2"));
    // The file ends before the area does.
    assert!(matches!(
        parse_extensions(&c[..124], 112, 512),
        Err(Error {
            kind: ErrorKind::Truncated,
            ..
        })
    ));
}

#[test]
fn names_are_escaped_for_messages() {
    assert_eq!(shown("a\nb\x1b"), "\"a\\nb\\u{1b}\"");
    assert_eq!(c_string(b"abc\0def"), "abc");
}

#[test]
fn the_on_disk_struct_is_the_parsed_header() {
    let b = v3_header();
    let raw = Qcow2Header::read(&b);
    assert_eq!(raw.as_bytes(), &b[..]);
    let (h, problems) = parse(&b);
    assert_eq!(problems, vec![]);
    assert_eq!((h.header_length, h.stated_length()), (112, 112));
    // A version cut by the end of the file reads as zero, as every other missing field does.
    assert_eq!(Qcow2Header::read(&b[..7]).version.get(), 0);
    assert_eq!(
        parse(&b[..7]).1,
        vec![Problem::NoMagic, Problem::UnknownVersion(0)]
    );
}

#[test]
fn a_cut_header_is_truncated_for_the_driver() {
    let b = v3_header();
    assert_eq!(
        parse(&b[..80]).1,
        vec![Problem::Truncated {
            version: 3,
            have: 80,
            need: 104
        }]
    );
    // header_length 112 covers the compression type, which a 104-byte file lacks.
    assert_eq!(parse(&b[..104]).1, vec![Problem::CompressionTypeCut]);
    assert_eq!(parse(&b[..105]).0.compression_type, 1);
    assert_eq!(
        Header::parse(&b[..104], "f").unwrap_err().to_string(),
        "truncated image: f ends inside the qcow2 header"
    );
}
