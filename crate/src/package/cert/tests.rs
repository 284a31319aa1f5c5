//! The certificate check against generated keys and certificates (needs the openssl command).

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

/// Checks a `.cert` that signs "appliance.mf" against [`MANIFEST`], without a clock.
fn verify_manifest(digest: &str, signature: &[u8], pem: &str) -> Signature {
    verify(
        &cert_file(digest, "appliance.mf", signature, pem),
        MANIFEST,
        "appliance.mf",
        None,
    )
}

fn has_critical(sig: &Signature) -> bool {
    sig.findings
        .iter()
        .any(|f| f.severity == Severity::Critical)
}

fn has(sig: &Signature, code: FindingCode, severity: Severity) -> bool {
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

/// [`vendor`] with its SHA256 signature of [`MANIFEST`].
fn vendor_sha256() -> (tempfile::TempDir, String, Vec<u8>) {
    let (tmp, dir, pem) = vendor();
    let signature = sign(&dir, "vendor", "sha256", MANIFEST);
    (tmp, pem, signature)
}

#[test]
fn sha256_signature_verifies_and_names_the_signer() {
    let (_tmp, pem, signature) = vendor_sha256();
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
    let signed = sig
        .findings
        .iter()
        .find(|f| f.code == FindingCode::Signed)
        .unwrap();
    assert!(signed.message.contains("vmdisk test vendor"));
    assert!(signed.message.contains("no trust store"));
    assert!(signed.message.contains("never calls a signer trusted"));
    assert!(!signed.message.contains("is trusted"));
}

#[test]
fn sha1_and_sha512_verify_sha1_is_weak() {
    let (_tmp, dir, pem) = vendor();
    let sha1 = sign(&dir, "vendor", "sha1", MANIFEST);
    let sig = verify_manifest("SHA1", &sha1, &pem);
    assert!(sig.valid, "{sig:#?}");
    assert_eq!(sig.digest, "SHA1");
    assert!(has(&sig, FindingCode::WeakDigest, Severity::Warning));
    assert!(!has_critical(&sig));

    let sha512 = sign(&dir, "vendor", "sha512", MANIFEST);
    let sig = verify_manifest("SHA512", &sha512, &pem);
    assert!(sig.valid && no_problems(&sig), "{sig:#?}");

    // The digest named must be the one signed with.
    let sig = verify_manifest("SHA256", &sha512, &pem);
    assert!(!sig.valid && has(&sig, FindingCode::BadSignature, Severity::Critical));
}

#[test]
fn tampered_manifest_is_a_bad_signature() {
    let (_tmp, pem, signature) = vendor_sha256();
    let file = cert_file("SHA256", "appliance.mf", &signature, &pem);
    let mut tampered = MANIFEST.to_vec();
    tampered[20] ^= 0x01;
    let sig = verify(&file, &tampered, "appliance.mf", None);
    assert!(!sig.valid);
    assert!(has(&sig, FindingCode::BadSignature, Severity::Critical));
    assert!(!sig.findings.iter().any(|f| f.code == FindingCode::Signed));
    // The signer is still reported: it is who the file claims, not who signed.
    assert_eq!(sig.signer.unwrap().subject, "CN=vmdisk test vendor");

    let mut flipped = signature.clone();
    flipped[0] ^= 0x80;
    let sig = verify_manifest("SHA256", &flipped, &pem);
    assert!(!sig.valid && has(&sig, FindingCode::BadSignature, Severity::Critical));
}

#[test]
fn signature_of_another_file_is_critical() {
    let (_tmp, pem, signature) = vendor_sha256();
    let file = cert_file("SHA256", "other.mf", &signature, &pem);
    let sig = verify(&file, MANIFEST, "appliance.mf", None);
    assert_eq!(sig.signed_file, "other.mf");
    assert!(
        has(&sig, FindingCode::SignedFileMismatch, Severity::Critical),
        "{sig:#?}"
    );
    // A path for the manifest is compared by its file name.
    let file = cert_file("SHA256", "appliance.mf", &signature, &pem);
    let sig = verify(&file, MANIFEST, "pkg/appliance.mf", None);
    assert!(sig.valid && no_problems(&sig), "{sig:#?}");
}

#[test]
fn tolerates_spacing_case_crlf_and_wrapped_hex() {
    let (_tmp, pem, signature) = vendor_sha256();
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
    let (_tmp, pem, signature) = vendor_sha256();
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
        assert!(has_critical(&sig), "{what}: {sig:#?}");
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
            has(&sig, FindingCode::UnparsableCertFile, Severity::Critical),
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
    assert!(!sig.valid && has(&sig, FindingCode::BadSignature, Severity::Critical));
}

#[test]
fn unsupported_digest_is_critical() {
    let (_tmp, dir, pem) = vendor();
    let signature = sign(&dir, "vendor", "sha224", MANIFEST);
    let sig = verify_manifest("SHA224", &signature, &pem);
    assert!(!sig.valid);
    assert_eq!(sig.digest, "SHA224");
    assert!(
        has(&sig, FindingCode::UnsupportedDigest, Severity::Critical),
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
    let sig = verify_manifest("SHA256", &signature, &pem);
    assert!(!sig.valid);
    assert!(
        has(&sig, FindingCode::UnsupportedKey, Severity::Critical),
        "{sig:#?}"
    );
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
        has(&sig, FindingCode::CertificateExpired, Severity::Warning),
        "{sig:#?}"
    );
    assert!(!has_critical(&sig));
    assert!(has(&sig, FindingCode::Signed, Severity::Info));

    let sig = verify(&file, MANIFEST, "appliance.mf", Some(unix_now() - 2 * DAY));
    assert!(sig.valid && has(&sig, FindingCode::CertificateNotYetValid, Severity::Warning));

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
    let signed = sig
        .findings
        .iter()
        .find(|f| f.code == FindingCode::Signed)
        .unwrap();
    assert!(signed.message.contains("issued by \"CN=vmdisk test CA\""));
}

#[test]
fn small_key_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pem = self_signed(dir, "small", "small key", 1024, 30);
    let signature = sign(dir, "small", "sha256", MANIFEST);
    let sig = verify_manifest("SHA256", &signature, &pem);
    assert!(sig.valid);
    assert!(
        has(&sig, FindingCode::WeakKey, Severity::Warning),
        "{sig:#?}"
    );
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
    let sig = verify_manifest("SHA256", &signature, &pem);
    assert!(sig.valid, "{sig:#?}");
    assert!(!sig.signer.as_ref().unwrap().self_signed);
    assert!(has(
        &sig,
        FindingCode::BadCertificateSignature,
        Severity::Warning
    ));
}

#[test]
fn serializes_kebab_case() {
    let sig = verify(b"", b"", "a.mf", None);
    let json = serde_json::to_value(&sig).unwrap();
    assert!(json.get("signed-file").is_some() && json.get("valid").is_some());
}
