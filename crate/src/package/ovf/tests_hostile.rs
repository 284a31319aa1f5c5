//! Hostile and broken input.

use super::tests::*;
use super::*;
use crate::error::ErrorKind;
use crate::finding_code::FindingCode;

#[test]
fn billion_laughs_is_refused() {
    let mut xml =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [\n <!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        xml.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    xml.push_str("]>\n");
    xml.push_str(
        &envelope(r#"<VirtualSystem ovf:id="vm"><Info>&lol9;</Info></VirtualSystem>"#).replacen(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "",
            1,
        ),
    );
    let err = parse(xml.as_bytes()).unwrap_err();
    assert!(refused_with(&err, ErrorKind::Unsupported, "DTD"), "{err}");
}

/// The error is of `kind` and its message says `word`.
fn refused_with(err: &Error, kind: ErrorKind, word: &str) -> bool {
    err.kind == kind && err.message.contains(word)
}

/// The kind of error `parse` refuses `input` with; None when it parses.
fn refusal(input: &[u8]) -> Option<ErrorKind> {
    parse(input).err().map(|e| e.kind)
}

#[test]
fn external_entities_are_refused() {
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE Envelope [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <VirtualSystem ovf:id="vm"><Info>x</Info><Name>&x;</Name></VirtualSystem>
</Envelope>"#;
    let err = parse(xxe.as_bytes()).unwrap_err();
    assert!(refused_with(&err, ErrorKind::Unsupported, "DTD"), "{err}");
    // An external DTD subset without internal declarations is refused too.
    let ext = r#"<?xml version="1.0"?>
<!DOCTYPE Envelope SYSTEM "http://attacker.example/evil.dtd">
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>"#;
    assert_eq!(refusal(ext.as_bytes()), Some(ErrorKind::Unsupported));
    let param = "<!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><r/>";
    assert_eq!(refusal(param.as_bytes()), Some(ErrorKind::Unsupported));
    // Without a DTD an entity reference is just malformed.
    let undeclared = envelope(r#"<VirtualSystem ovf:id="vm"><Info>&x;</Info></VirtualSystem>"#);
    assert_eq!(refusal(undeclared.as_bytes()), Some(ErrorKind::Corrupt));
}

#[test]
fn not_an_envelope() {
    let cases: [(&[u8], ErrorKind); 9] = [
        (b"", ErrorKind::NotAnImage),
        (b"   \n  ", ErrorKind::NotAnImage),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", ErrorKind::NotAnImage),
        (b"KDMV\x01\0\0\0 not xml", ErrorKind::NotAnImage),
        (b"<html><body>hello</body></html>", ErrorKind::NotAnImage),
        (b"<?xml version='1.0'?><Envelope/>", ErrorKind::NotAnImage),
        (
            b"<soap:Envelope xmlns:soap='http://www.w3.org/2003/05/soap-envelope'/>",
            ErrorKind::NotAnImage,
        ),
        (
            b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/3'/>",
            ErrorKind::Unsupported,
        ),
        (
            b"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1'><References>",
            ErrorKind::Corrupt,
        ),
    ];
    for (input, expected) in cases {
        let err = parse(input).unwrap_err();
        assert_eq!(
            err.kind,
            expected,
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("OVF descriptor"), "{text}");
    }
}

#[test]
fn size_and_node_limits() {
    let huge = vec![b' '; MAX_DESCRIPTOR_BYTES + 1];
    let err = parse(&huge).unwrap_err();
    assert!(refused_with(&err, ErrorKind::Unsupported, "MiB"), "{err}");
    let many: String = "<a/>".repeat(MAX_NODES as usize + 1);
    let err = parse(envelope(&many).as_bytes()).unwrap_err();
    assert!(refused_with(&err, ErrorKind::Unsupported, "nodes"), "{err}");
}

#[test]
fn deep_element_nesting() {
    // 100k nested vendor elements: no stack overflow, just ignored.
    let depth = 100_000;
    let body = format!(
        "<x:a xmlns:x='urn:x'>{}{VS}{}",
        "<x:a>".repeat(depth - 1),
        "</x:a>".repeat(depth)
    );
    let env = parse(envelope(&body).as_bytes());
    // The VirtualSystem sits inside the vendor element, so it is not a content element.
    assert!(has(&env.unwrap(), FindingCode::OvfNoVirtualSystem));
}

#[test]
fn encodings() {
    let bom = [b"\xef\xbb\xbf".as_slice(), VMWARE.as_bytes()].concat();
    assert_eq!(parse(&bom).unwrap().systems[0].id, "web01");
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(VBOX_1_0.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(parse(&utf16).unwrap().systems[0].id, "debian12");
    let mut utf16be = vec![0xfe, 0xff];
    utf16be.extend(VBOX_1_0.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(parse(&utf16be).unwrap().systems[0].memory, Some(2 << 30));
    let latin1 = [VMWARE.as_bytes(), b"<!-- caf\xe9 -->"].concat();
    assert_eq!(refusal(&latin1), Some(ErrorKind::NotAnImage));
}

/// xorshift64*: deterministic pseudo-random numbers for the mutation loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"<",
        b">",
        b"\"",
        b"&",
        b"/",
        b"${",
        b"}",
        b"0",
        b"9",
        b"-",
        b"*",
        b"^",
        b"99999999999999999999",
        b"<!DOCTYPE x>",
        b"ovf:/disk/",
        b"<Item>",
        b"</Item>",
        b"<VirtualSystemCollection>",
        b"\xff",
        b"\0",
    ];
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len());
        match rng.below(6) {
            0 => data[at] = rng.next() as u8,
            1 => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, piece.iter().copied());
            }
            3 => {
                let end = (at + rng.below(400)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, copy);
            }
            4 => data.truncate(at),
            _ => {
                // Replace a digit run's neighbourhood with a huge number.
                if let Some(p) = data[at..].iter().position(|b| b.is_ascii_digit()) {
                    let p = at + p;
                    data.splice(p..p + 1, b"18446744073709551616".iter().copied());
                }
            }
        }
        if data.is_empty() {
            break;
        }
    }
    data
}

#[test]
fn random_mutations_never_panic() {
    let bases = [VMWARE, VBOX_1_0, VBOX_2_0, OVF_0_9];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for round in 0..4000 {
        let base = bases[round % bases.len()].as_bytes();
        let input = mutate(&mut rng, base);
        if let Ok(env) = parse(&input) {
            parsed += 1;
            // Whatever parses must also serialise.
            serde_json::to_string(&env).unwrap();
        }
    }
    // Most single mutations keep the XML well-formed enough to exercise the OVF layer.
    assert!(parsed > 250, "only {parsed} mutated descriptors parsed");
    for len in [1, 7, 100, 4096] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = parse(&bytes);
            let mut xmlish = b"<".to_vec();
            xmlish.extend(
                bytes
                    .iter()
                    .map(|b| b"<>/=\"' aEnvelope:"[*b as usize % 17]),
            );
            let _ = parse(&xmlish);
        }
    }
}
