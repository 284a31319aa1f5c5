//! The OVF package signature: `NAME.cert` next to the manifest `NAME.mf` (DMTF DSP0243, package
//! signing; VMware ovftool writes it).
//!
//! The file is one line `SHA256(NAME.mf)= <hex>` (or `SHA1`, `SHA384`, `SHA512`) followed by a
//! PEM X.509 certificate. The hex is an RSASSA-PKCS1-v1_5 signature with that digest over the
//! exact bytes of the manifest, checked with the certificate's RSA key (what
//! `openssl dgst -sha256 -verify` does). The manifest's digests then vouch for every other file.
//!
//! vmdisk checks the signature and reports the signer, and nothing more: a browser has no trust
//! store, so no chain is built and no signer is ever called trusted.
//!
//! Finding codes:
//! - `unparsable-cert-file` (critical): too large, no `DIGEST(NAME)= HEX` line, or the signature
//!   is not hex.
//! - `unparsable-certificate` (critical): no PEM certificate, bad base64, or bad DER.
//! - `unsupported-digest` (critical): a digest other than SHA1, SHA256, SHA384, SHA512.
//! - `unsupported-key` (critical): the certificate's key is not RSA, or is an RSA key the
//!   verifier refuses (modulus outside 1024..=8192 bits, bad exponent).
//! - `signed-file-mismatch` (critical): the signature line names another file than the manifest.
//! - `bad-signature` (critical): the signature does not verify over the manifest bytes.
//! - `certificate-expired`, `certificate-not-yet-valid` (warning): judged only when the host
//!   passes the current time; the signature itself can still verify.
//! - `weak-digest` (warning): the signature uses SHA1.
//! - `weak-key` (warning): an RSA key under 2048 bits.
//! - `bad-certificate-signature` (warning): the certificate names itself as issuer, but its own
//!   signature does not verify with its key (damaged or edited).
//! - `signed` (info): the signature verifies; says who signed it, and that it is not trusted.

use crate::report::{Finding, Severity};
use rsa::pkcs8::DecodePublicKey;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA,
};
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;

/// Real `.cert` files are a few KiB; anything bigger is not one, and is not parsed.
pub const MAX_CERT_FILE: usize = 1 << 20;
/// The largest signature an accepted key (8192 bits) makes.
const MAX_SIGNATURE_BYTES: usize = 8192 / 8;
/// Names and digest labels from the file are echoed into reports; keep them short.
const MAX_ECHOED: usize = 256;
/// Keys below this many bits still verify, with a warning.
const STRONG_RSA_BITS: usize = 2048;

/// The result of checking a `.cert` file against its manifest.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Signature {
    /// The digest the signature line names: "SHA256", "SHA1", "SHA384", "SHA512" (or what the
    /// file says, when unsupported; empty when there is no signature line).
    pub digest: String,
    /// The file name inside the parentheses, e.g. "appliance.mf".
    pub signed_file: String,
    /// The signature verifies over the given manifest bytes with the certificate's key. This
    /// says nothing about who the signer is; see `signer` and `findings`.
    pub valid: bool,
    pub signer: Option<Signer>,
    pub findings: Vec<Finding>,
}

/// The certificate that carries the verifying key, as it describes itself.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Signer {
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// The issuer is the subject, and the certificate's own signature verifies with its key
    /// (when it is an RSA PKCS#1 v1.5 signature; any other is taken at its word).
    pub self_signed: bool,
    /// "RSA 2048", "EC 256", ...
    pub key: String,
}

/// Checks `cert_file` (the `.cert` contents) against the manifest bytes and file name.
///
/// `now` is seconds since the Unix epoch from the host (format code never reads clocks); `None`
/// skips the validity dates. Never panics; every problem is a finding.
pub fn verify(
    cert_file: &[u8],
    manifest: &[u8],
    manifest_name: &str,
    now: Option<i64>,
) -> Signature {
    let mut out = Signature {
        digest: String::new(),
        signed_file: String::new(),
        valid: false,
        signer: None,
        findings: Vec::new(),
    };
    if cert_file.len() > MAX_CERT_FILE {
        out.findings.push(critical(
            "unparsable-cert-file",
            format!(
                "the certificate file is {} bytes, more than the {MAX_CERT_FILE} a .cert file can \
                 sensibly be; it was not parsed",
                cert_file.len()
            ),
        ));
        return out;
    }
    let (head, pem) = split_at_pem(cert_file);

    let line = match parse_signature_line(head) {
        Ok(line) => Some(line),
        Err(why) => {
            out.findings.push(critical("unparsable-cert-file", why));
            None
        }
    };
    if let Some(line) = &line {
        out.digest = echo(&line.digest);
        out.signed_file = echo(&line.file);
        check_signed_name(&line.file, manifest_name, &mut out.findings);
    }

    let Some(block) = first_certificate(pem, &mut out.findings) else {
        return out;
    };
    let Some(checked) = check_certificate(&block.contents, now, &mut out.findings) else {
        return out;
    };
    if let (Some(line), Some(key)) = (&line, &checked.key) {
        out.valid = check_signature(line, key, manifest, &mut out.findings);
        if out.valid {
            let signed = signed_finding(&checked.signer, &out.signed_file);
            out.findings.push(signed);
        }
    }
    out.signer = Some(checked.signer);
    out
}

/// The parts of `DIGEST(NAME)= HEX`, still unchecked.
struct SignatureLine {
    /// Upper case, without dashes ("SHA-256" is read as "SHA256").
    digest: String,
    file: String,
    signature: Vec<u8>,
}

/// The digests DSP0243 and ovftool use, all PKCS#1 v1.5 with RSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(Digest::Sha1),
            "SHA256" => Some(Digest::Sha256),
            "SHA384" => Some(Digest::Sha384),
            "SHA512" => Some(Digest::Sha512),
            _ => None,
        }
    }

    /// The digest of an X.509 `sha*WithRSAEncryption` signature; None for any other algorithm.
    fn from_certificate_algorithm(cert: &X509Certificate<'_>) -> Option<Self> {
        let oid = &cert.signature_algorithm.algorithm;
        [
            (&OID_PKCS1_SHA1WITHRSA, Digest::Sha1),
            (&OID_PKCS1_SHA256WITHRSA, Digest::Sha256),
            (&OID_PKCS1_SHA384WITHRSA, Digest::Sha384),
            (&OID_PKCS1_SHA512WITHRSA, Digest::Sha512),
        ]
        .into_iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, digest)| digest)
    }
}

/// The text before the first PEM boundary (the signature line) and the PEM part.
fn split_at_pem(file: &[u8]) -> (&[u8], &[u8]) {
    const BEGIN: &[u8] = b"-----BEGIN ";
    match file.windows(BEGIN.len()).position(|w| w == BEGIN) {
        Some(at) => file.split_at(at),
        None => (file, &[]),
    }
}

/// Reads `DIGEST(NAME)= HEX`, tolerating spaces around the name and `=`, CRLF, hex case, and
/// hex wrapped over several lines (`xxd -p` wraps unless told not to).
fn parse_signature_line(head: &[u8]) -> Result<SignatureLine, String> {
    let text = std::str::from_utf8(head).map_err(|_| {
        "the certificate file does not start with a text signature line".to_string()
    })?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err("the certificate file has no DIGEST(NAME)= signature line".into());
    }
    let missing = || {
        format!(
            "the certificate file does not start with DIGEST(NAME)= HEX but with {:?}",
            echo(text.lines().next().unwrap_or(""))
        )
    };
    let (digest, rest) = text.split_once('(').ok_or_else(missing)?;
    // The hex has no ')', so the last one closes the name even if the name holds one.
    let (file, after) = rest.rsplit_once(')').ok_or_else(missing)?;
    let hex = after.trim_start().strip_prefix('=').ok_or_else(missing)?;
    let signature = decode_hex(hex)
        .ok_or_else(|| "the signature after '=' is not an even number of hex digits".to_string())?;
    if signature.len() > MAX_SIGNATURE_BYTES {
        return Err(format!(
            "the signature is {} bytes, longer than any supported RSA key makes ({MAX_SIGNATURE_BYTES})",
            signature.len()
        ));
    }
    Ok(SignatureLine {
        digest: digest.trim().to_ascii_uppercase().replace('-', ""),
        file: file.trim().to_string(),
        signature,
    })
}

/// Hex digits, with any ASCII whitespace between them ignored.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

fn nibble(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

/// The signature must name the manifest it is checked against, or it proves nothing about it.
fn check_signed_name(signed: &str, manifest_name: &str, findings: &mut Vec<Finding>) {
    if base_name(signed) != base_name(manifest_name) {
        findings.push(critical(
            "signed-file-mismatch",
            format!(
                "the certificate file signs {:?}, not the manifest {:?}",
                echo(signed),
                echo(manifest_name)
            ),
        ));
    }
}

/// The last path component: callers may pass a path, the file names a bare file.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name).trim()
}

/// The first `CERTIFICATE` PEM block (ovftool puts the signer first; later ones are a chain,
/// which vmdisk does not build).
fn first_certificate(pem: &[u8], findings: &mut Vec<Finding>) -> Option<Pem> {
    for block in Pem::iter_from_buffer(pem) {
        match block {
            Ok(block) if block.label == "CERTIFICATE" => return Some(block),
            Ok(_) => continue,
            Err(e) => {
                findings.push(critical(
                    "unparsable-certificate",
                    format!("the PEM certificate in the certificate file is damaged: {e}"),
                ));
                return None;
            }
        }
    }
    findings.push(critical(
        "unparsable-certificate",
        "the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
    ));
    None
}

/// What the certificate yields: its description, and its key when it is a usable RSA key.
struct CheckedCertificate {
    signer: Signer,
    key: Option<rsa::PublicKey>,
}

fn check_certificate(
    der: &[u8],
    now: Option<i64>,
    findings: &mut Vec<Finding>,
) -> Option<CheckedCertificate> {
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            findings.push(critical(
                "unparsable-certificate",
                format!("the X.509 certificate does not parse: {e}"),
            ));
            return None;
        }
    };
    let key = rsa_key(&cert, findings);
    let signer = Signer {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: rfc3339(&cert.validity().not_before),
        not_after: rfc3339(&cert.validity().not_after),
        self_signed: is_self_signed(&cert, key.as_ref(), findings),
        key: describe_key(&cert),
    };
    if let Some(now) = now {
        check_dates(&cert, now, findings);
    }
    Some(CheckedCertificate { signer, key })
}

/// The certificate's RSA key, or a finding saying why there is none.
fn rsa_key(cert: &X509Certificate<'_>, findings: &mut Vec<Finding>) -> Option<rsa::PublicKey> {
    let spki = cert.public_key();
    let Ok(PublicKey::RSA(parsed)) = spki.parsed() else {
        findings.push(critical(
            "unsupported-key",
            format!(
                "the certificate's key is {}; OVF signatures are RSA (PKCS#1 v1.5) and vmdisk \
                 verifies only those",
                describe_key(cert)
            ),
        ));
        return None;
    };
    let bits = modulus_bits(parsed.modulus);
    match rsa::PublicKey::from_public_key_der(spki.raw) {
        Ok(key) => {
            if bits < STRONG_RSA_BITS {
                findings.push(Finding::new(
                    "weak-key",
                    Severity::Warning,
                    format!("the signing key is RSA {bits}; keys under {STRONG_RSA_BITS} bits can be forged"),
                ));
            }
            Some(key)
        }
        Err(e) => {
            findings.push(critical(
                "unsupported-key",
                format!(
                    "the certificate's RSA {bits} key is refused ({e}); vmdisk accepts moduli of \
                     {}..={} bits with a sane exponent",
                    rsa::PublicKey::MIN_SIZE,
                    rsa::PublicKey::MAX_SIZE
                ),
            ));
            None
        }
    }
}

/// Bits in a big-endian modulus, leading zero bytes (DER sign padding) not counted.
fn modulus_bits(modulus: &[u8]) -> usize {
    let Some(first) = modulus.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = modulus.len() - first - 1;
    rest * 8 + (8 - modulus[first].leading_zeros() as usize)
}

/// "RSA 2048", "EC 256", "DSA 2048", or the key algorithm's OID.
fn describe_key(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", modulus_bits(rsa.modulus)),
        Ok(key @ PublicKey::EC(_)) => format!("EC {}", key.key_size()),
        Ok(key @ PublicKey::DSA(_)) => format!("DSA {}", key.key_size()),
        _ => format!("key algorithm {}", spki.algorithm.algorithm),
    }
}

/// Issuer equals subject, and the certificate's own signature does not contradict that. Only
/// an RSA PKCS#1 v1.5 self-signature can be checked here; any other is taken at its word.
fn is_self_signed(
    cert: &X509Certificate<'_>,
    key: Option<&rsa::PublicKey>,
    findings: &mut Vec<Finding>,
) -> bool {
    if cert.issuer().as_raw() != cert.subject().as_raw() {
        return false;
    }
    let (Some(key), Some(digest)) = (key, Digest::from_certificate_algorithm(cert)) else {
        return true;
    };
    let signed = cert.tbs_certificate.as_ref();
    if verify_pkcs1(key, digest, signed, &cert.signature_value.data) {
        return true;
    }
    findings.push(Finding::new(
        "bad-certificate-signature",
        Severity::Warning,
        "the certificate names itself as its issuer, but its own signature does not verify with \
         its key: it was damaged or edited after signing",
    ));
    false
}

/// Dates are judged against the host's clock; a signature made while the certificate was
/// valid stays a good signature, hence a warning.
fn check_dates(cert: &X509Certificate<'_>, now: i64, findings: &mut Vec<Finding>) {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        findings.push(Finding::new(
            "certificate-not-yet-valid",
            Severity::Warning,
            format!(
                "the signing certificate is not valid before {}",
                rfc3339(&validity.not_before)
            ),
        ));
    } else if now > validity.not_after.timestamp() {
        findings.push(Finding::new(
            "certificate-expired",
            Severity::Warning,
            format!(
                "the signing certificate expired on {}",
                rfc3339(&validity.not_after)
            ),
        ));
    }
}

fn rfc3339(time: &ASN1Time) -> String {
    let t = time.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks the digest name, then the signature over the manifest bytes.
fn check_signature(
    line: &SignatureLine,
    key: &rsa::PublicKey,
    manifest: &[u8],
    findings: &mut Vec<Finding>,
) -> bool {
    let Some(digest) = Digest::from_name(&line.digest) else {
        findings.push(critical(
            "unsupported-digest",
            format!(
                "the signature uses digest {:?}; OVF signatures use SHA1, SHA256, SHA384 or SHA512",
                echo(&line.digest)
            ),
        ));
        return false;
    };
    if !verify_pkcs1(key, digest, manifest, &line.signature) {
        findings.push(critical(
            "bad-signature",
            format!(
                "the {} signature does not verify over the manifest with the certificate's key: \
                 the manifest or the certificate file was changed after signing",
                line.digest
            ),
        ));
        return false;
    }
    if digest == Digest::Sha1 {
        findings.push(Finding::new(
            "weak-digest",
            Severity::Warning,
            "the manifest is signed over SHA1, which no longer resists forgery; ovftool's \
             --shaAlgorithm=SHA256 makes a stronger signature",
        ));
    }
    true
}

/// RSASSA-PKCS1-v1_5 verification; every failure (wrong length, wrong padding) is `false`.
fn verify_pkcs1(key: &rsa::PublicKey, digest: Digest, message: &[u8], signature: &[u8]) -> bool {
    match digest {
        Digest::Sha1 => key.pkcs1v15_verify::<sha1::Sha1>(message, signature),
        Digest::Sha256 => key.pkcs1v15_verify::<sha2::Sha256>(message, signature),
        Digest::Sha384 => key.pkcs1v15_verify::<sha2::Sha384>(message, signature),
        Digest::Sha512 => key.pkcs1v15_verify::<sha2::Sha512>(message, signature),
    }
    .is_ok()
}

/// Says who signed, and plainly that this is not trust.
fn signed_finding(signer: &Signer, signed_file: &str) -> Finding {
    let issued = if signer.self_signed {
        "a self-signed certificate".to_string()
    } else {
        format!(
            "a certificate issued by {:?}, which vmdisk does not check",
            signer.issuer
        )
    };
    Finding::new(
        "signed",
        Severity::Info,
        format!(
            "{signed_file:?} is signed by {:?} ({issued}, {} key). vmdisk checked the signature and \
             reports the signer, but a browser has no trust store, so it never calls a signer \
             trusted: whether this signer is who you expect is for you to decide",
            signer.subject, signer.key
        ),
    )
}

fn critical(code: &'static str, message: impl Into<String>) -> Finding {
    Finding::new(code, Severity::Critical, message)
}

/// Text from the file, cut to a length a report can carry.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHOED) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const MANIFEST: &[u8] = b"SHA256(appliance.ovf)= 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nSHA256(appliance-disk1.vmdk)= fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\n";
    const DAY: i64 = 86_400;

    /// Runs openssl in `dir`; a missing or failing openssl fails the test, never skips it.
    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("these tests need the openssl command: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read(dir: &Path, name: &str) -> Vec<u8> {
        std::fs::read(dir.join(name)).unwrap()
    }

    /// An RSA key `NAME.key` and a self-signed certificate `NAME.pem` for `/CN=cn`.
    fn self_signed(dir: &Path, name: &str, cn: &str, bits: u32, days: u32) -> String {
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                &format!("rsa:{bits}"),
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                &days.to_string(),
            ],
        );
        String::from_utf8(read(dir, &pem)).unwrap()
    }

    /// Signs `manifest` with `NAME.key` like `openssl dgst -sha256 -sign`.
    fn sign(dir: &Path, name: &str, digest: &str, manifest: &[u8]) -> Vec<u8> {
        std::fs::write(dir.join("appliance.mf"), manifest).unwrap();
        let key = format!("{name}.key");
        openssl(
            dir,
            &[
                "dgst",
                &format!("-{digest}"),
                "-sign",
                &key,
                "-out",
                "sig",
                "appliance.mf",
            ],
        );
        read(dir, "sig")
    }

    /// The .cert text as ovftool writes it: the signature line, then the PEM certificate.
    fn cert_file(digest: &str, signed: &str, signature: &[u8], pem: &str) -> Vec<u8> {
        let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
        format!("{digest}({signed})= {hex}\n{pem}").into_bytes()
    }

    fn has(sig: &Signature, code: &str, severity: Severity) -> bool {
        sig.findings
            .iter()
            .any(|f| f.code == code && f.severity == severity)
    }

    fn no_problems(sig: &Signature) -> bool {
        sig.findings.iter().all(|f| f.severity == Severity::Info)
    }

    fn unix_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// A temporary directory with a signer "vendor" (RSA 2048, self-signed, 30 days).
    fn vendor() -> (tempfile::TempDir, PathBuf, String) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let pem = self_signed(&dir, "vendor", "vmdisk test vendor", 2048, 30);
        (tmp, dir, pem)
    }

    #[test]
    fn sha256_signature_verifies_and_names_the_signer() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let file = cert_file("SHA256", "appliance.mf", &signature, &pem);
        let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now()));
        assert!(sig.valid, "{sig:#?}");
        assert_eq!(sig.digest, "SHA256");
        assert_eq!(sig.signed_file, "appliance.mf");
        let signer = sig.signer.as_ref().unwrap();
        assert_eq!(signer.subject, "CN=vmdisk test vendor");
        assert_eq!(signer.issuer, "CN=vmdisk test vendor");
        assert!(signer.self_signed);
        assert_eq!(signer.key, "RSA 2048");
        assert!(signer.not_before.ends_with('Z') && signer.not_before.len() == 20);
        assert!(no_problems(&sig), "{:#?}", sig.findings);
        let signed = sig.findings.iter().find(|f| f.code == "signed").unwrap();
        assert!(signed.message.contains("vmdisk test vendor"));
        assert!(signed.message.contains("no trust store"));
        assert!(signed.message.contains("never calls a signer trusted"));
        assert!(!signed.message.contains("is trusted"));
    }

    #[test]
    fn sha1_and_sha512_verify_sha1_is_weak() {
        let (_tmp, dir, pem) = vendor();
        let sha1 = sign(&dir, "vendor", "sha1", MANIFEST);
        let sig = verify(
            &cert_file("SHA1", "appliance.mf", &sha1, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(sig.valid, "{sig:#?}");
        assert_eq!(sig.digest, "SHA1");
        assert!(has(&sig, "weak-digest", Severity::Warning));
        assert!(
            !sig.findings
                .iter()
                .any(|f| f.severity == Severity::Critical)
        );

        let sha512 = sign(&dir, "vendor", "sha512", MANIFEST);
        let sig = verify(
            &cert_file("SHA512", "appliance.mf", &sha512, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(sig.valid && no_problems(&sig), "{sig:#?}");

        // The digest named must be the one signed with.
        let sig = verify(
            &cert_file("SHA256", "appliance.mf", &sha512, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(!sig.valid && has(&sig, "bad-signature", Severity::Critical));
    }

    #[test]
    fn tampered_manifest_is_a_bad_signature() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let file = cert_file("SHA256", "appliance.mf", &signature, &pem);
        let mut tampered = MANIFEST.to_vec();
        tampered[20] ^= 0x01;
        let sig = verify(&file, &tampered, "appliance.mf", None);
        assert!(!sig.valid);
        assert!(has(&sig, "bad-signature", Severity::Critical));
        assert!(!sig.findings.iter().any(|f| f.code == "signed"));
        // The signer is still reported: it is who the file claims, not who signed.
        assert_eq!(sig.signer.unwrap().subject, "CN=vmdisk test vendor");

        let mut flipped = signature.clone();
        flipped[0] ^= 0x80;
        let sig = verify(
            &cert_file("SHA256", "appliance.mf", &flipped, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(!sig.valid && has(&sig, "bad-signature", Severity::Critical));
    }

    #[test]
    fn signature_of_another_file_is_critical() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let file = cert_file("SHA256", "other.mf", &signature, &pem);
        let sig = verify(&file, MANIFEST, "appliance.mf", None);
        assert_eq!(sig.signed_file, "other.mf");
        assert!(
            has(&sig, "signed-file-mismatch", Severity::Critical),
            "{sig:#?}"
        );
        // A path for the manifest is compared by its file name.
        let file = cert_file("SHA256", "appliance.mf", &signature, &pem);
        let sig = verify(&file, MANIFEST, "pkg/appliance.mf", None);
        assert!(sig.valid && no_problems(&sig), "{sig:#?}");
    }

    #[test]
    fn tolerates_spacing_case_crlf_and_wrapped_hex() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let hex: String = signature.iter().map(|b| format!("{b:02X}")).collect();
        let wrapped: Vec<&str> = hex
            .as_bytes()
            .chunks(60)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let text = format!(
            "sha-256 ( appliance.mf ) =  {}\r\n{}",
            wrapped.join("\r\n"),
            pem.replace('\n', "\r\n")
        );
        let sig = verify(text.as_bytes(), MANIFEST, "appliance.mf", None);
        assert!(sig.valid && no_problems(&sig), "{sig:#?}");
        assert_eq!(sig.digest, "SHA256");
        assert_eq!(sig.signed_file, "appliance.mf");
    }

    #[test]
    fn garbage_and_truncated_files_are_critical() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let good = cert_file("SHA256", "appliance.mf", &signature, &pem);
        let oversized = vec![b'a'; MAX_CERT_FILE + 1];
        let binary: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let no_pem = good[..good.iter().position(|&b| b == b'\n').unwrap()].to_vec();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("oversized", oversized),
            ("binary", binary),
            ("only the signature line", no_pem),
            ("only the certificate", pem.clone().into_bytes()),
            ("half", good[..good.len() / 2].to_vec()),
            ("cut before END", good[..good.len() - 30].to_vec()),
            (
                "bad base64",
                [
                    &good[..good.len() - 100],
                    b"!!!!\n-----END CERTIFICATE-----\n",
                ]
                .concat(),
            ),
            (
                "invalid UTF-8 in PEM",
                [
                    &good[..good.iter().position(|&b| b == b'\n').unwrap() + 1],
                    b"-----BEGIN X-----\n\xff\xfe\n-----END X-----\n",
                    b"-----BEGIN CERTIFICATE-----\n\xff\n\x80\n",
                ]
                .concat(),
            ),
            (
                "DER after the PEM header",
                [
                    b"SHA256(appliance.mf)= 00\n-----BEGIN CERTIFICATE-----\n".as_slice(),
                    b"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE-----\n",
                ]
                .concat(),
            ),
        ];
        for (what, file) in cases {
            let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now()));
            assert!(!sig.valid, "{what}");
            assert!(
                sig.findings
                    .iter()
                    .any(|f| f.severity == Severity::Critical),
                "{what}: {sig:#?}"
            );
        }
        // Every truncation and many single-byte changes: never a panic.
        for cut in (0..good.len()).step_by(7) {
            let _ = verify(&good[..cut], MANIFEST, "appliance.mf", Some(0));
        }
        for at in (0..good.len()).step_by(5) {
            let mut bent = good.clone();
            bent[at] = bent[at].wrapping_add(1 + (at % 200) as u8);
            let _ = verify(&bent, MANIFEST, "appliance.mf", Some(0));
        }
    }

    #[test]
    fn non_hex_or_odd_signature_is_critical() {
        let (_tmp, _dir, pem) = vendor();
        for line in [
            "SHA256(appliance.mf)= zz0011",
            "SHA256(appliance.mf)= abc",
            "SHA256(appliance.mf)=",
            "SHA256 appliance.mf = 00",
        ] {
            let file = format!("{line}\n{pem}");
            let sig = verify(file.as_bytes(), MANIFEST, "appliance.mf", None);
            assert!(!sig.valid, "{line}");
            assert!(
                has(&sig, "unparsable-cert-file", Severity::Critical),
                "{line}: {sig:#?}"
            );
            // The certificate is still described.
            assert!(sig.signer.is_some(), "{line}");
        }
        // Too short for the key: the verifier refuses it, no panic.
        let sig = verify(
            format!("SHA256(appliance.mf)= 00ff\n{pem}").as_bytes(),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(!sig.valid && has(&sig, "bad-signature", Severity::Critical));
    }

    #[test]
    fn unsupported_digest_is_critical() {
        let (_tmp, dir, pem) = vendor();
        let signature = sign(&dir, "vendor", "sha224", MANIFEST);
        let sig = verify(
            &cert_file("SHA224", "appliance.mf", &signature, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(!sig.valid);
        assert_eq!(sig.digest, "SHA224");
        assert!(
            has(&sig, "unsupported-digest", Severity::Critical),
            "{sig:#?}"
        );
    }

    #[test]
    fn ec_key_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.key",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-key",
                "ec.key",
                "-out",
                "ec.pem",
                "-subj",
                "/CN=ec signer",
                "-days",
                "30",
            ],
        );
        let pem = String::from_utf8(read(dir, "ec.pem")).unwrap();
        let signature = sign(dir, "ec", "sha256", MANIFEST);
        let sig = verify(
            &cert_file("SHA256", "appliance.mf", &signature, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(!sig.valid);
        assert!(has(&sig, "unsupported-key", Severity::Critical), "{sig:#?}");
        let signer = sig.signer.unwrap();
        assert_eq!(signer.key, "EC 256");
        assert!(signer.self_signed);
    }

    #[test]
    fn expired_or_not_yet_valid_certificate_warns() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pem = self_signed(dir, "short", "short lived", 2048, 1);
        let signature = sign(dir, "short", "sha256", MANIFEST);
        let file = cert_file("SHA256", "appliance.mf", &signature, &pem);

        let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now() + 2 * DAY));
        assert!(sig.valid);
        assert!(
            has(&sig, "certificate-expired", Severity::Warning),
            "{sig:#?}"
        );
        assert!(
            !sig.findings
                .iter()
                .any(|f| f.severity == Severity::Critical)
        );
        assert!(has(&sig, "signed", Severity::Info));

        let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now() - 2 * DAY));
        assert!(sig.valid && has(&sig, "certificate-not-yet-valid", Severity::Warning));

        let sig = verify(&file, MANIFEST, "appliance.mf", None);
        assert!(sig.valid && no_problems(&sig), "{sig:#?}");
    }

    #[test]
    fn certificate_from_a_ca_is_not_self_signed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        self_signed(dir, "ca", "vmdisk test CA", 2048, 30);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:3072",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/O=Vendor/CN=leaf signer",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "7",
                "-days",
                "30",
                "-out",
                "leaf.pem",
            ],
        );
        let leaf = String::from_utf8(read(dir, "leaf.pem")).unwrap();
        let ca = String::from_utf8(read(dir, "ca.pem")).unwrap();
        let signature = sign(dir, "leaf", "sha256", MANIFEST);
        // The chain after the signer, as a vendor may ship it.
        let file = cert_file("SHA256", "appliance.mf", &signature, &format!("{leaf}{ca}"));
        let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now()));
        assert!(sig.valid && no_problems(&sig), "{sig:#?}");
        let signer = sig.signer.as_ref().unwrap();
        assert!(!signer.self_signed);
        assert_eq!(signer.subject, "O=Vendor, CN=leaf signer");
        assert_eq!(signer.issuer, "CN=vmdisk test CA");
        assert_eq!(signer.key, "RSA 3072");
        let signed = sig.findings.iter().find(|f| f.code == "signed").unwrap();
        assert!(signed.message.contains("issued by \"CN=vmdisk test CA\""));
    }

    #[test]
    fn small_key_warns() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pem = self_signed(dir, "small", "small key", 1024, 30);
        let signature = sign(dir, "small", "sha256", MANIFEST);
        let sig = verify(
            &cert_file("SHA256", "appliance.mf", &signature, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(sig.valid);
        assert!(has(&sig, "weak-key", Severity::Warning), "{sig:#?}");
        assert_eq!(sig.signer.unwrap().key, "RSA 1024");
    }

    #[test]
    fn damaged_self_signature_is_not_self_signed() {
        let (_tmp, dir, _) = vendor();
        openssl(
            &dir,
            &[
                "x509",
                "-in",
                "vendor.pem",
                "-outform",
                "DER",
                "-out",
                "vendor.der",
            ],
        );
        let mut der = read(&dir, "vendor.der");
        // The certificate's signature is the last field of its DER.
        *der.last_mut().unwrap() ^= 0x01;
        std::fs::write(dir.join("bent.der"), &der).unwrap();
        openssl(
            &dir,
            &[
                "x509", "-inform", "DER", "-in", "bent.der", "-out", "bent.pem",
            ],
        );
        let pem = String::from_utf8(read(&dir, "bent.pem")).unwrap();
        let signature = sign(&dir, "vendor", "sha256", MANIFEST);
        let sig = verify(
            &cert_file("SHA256", "appliance.mf", &signature, &pem),
            MANIFEST,
            "appliance.mf",
            None,
        );
        assert!(sig.valid, "{sig:#?}");
        assert!(!sig.signer.as_ref().unwrap().self_signed);
        assert!(has(&sig, "bad-certificate-signature", Severity::Warning));
    }

    #[test]
    fn serializes_kebab_case() {
        let sig = verify(b"", b"", "a.mf", None);
        let json = serde_json::to_value(&sig).unwrap();
        assert!(json.get("signed-file").is_some() && json.get("valid").is_some());
    }
}
