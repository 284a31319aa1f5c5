//! The signer's certificate: its PEM block, RSA key, self-signature and validity dates.

use super::signature::{Digest, verify_pkcs1};
use super::*;

/// The first `CERTIFICATE` PEM block (ovftool puts the signer first; later ones are a chain,
/// which vmdisk does not build).
pub(super) fn first_certificate(pem: &[u8], findings: &mut Vec<Finding>) -> Option<Pem> {
    for block in Pem::iter_from_buffer(pem) {
        match block {
            Ok(block) if block.label == "CERTIFICATE" => return Some(block),
            Ok(_) => continue,
            Err(e) => {
                findings.push(critical(
                    FindingCode::UnparsableCertificate,
                    format!("the PEM certificate in the certificate file is damaged: {e}"),
                ));
                return None;
            }
        }
    }
    findings.push(critical(
        FindingCode::UnparsableCertificate,
        "the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
    ));
    None
}

/// What the certificate yields: its description, and its key when it is a usable RSA key.
pub(super) struct CheckedCertificate {
    pub(super) signer: Signer,
    pub(super) key: Option<rsa::PublicKey>,
}

pub(super) fn check_certificate(
    der: &[u8],
    now: Option<i64>,
    findings: &mut Vec<Finding>,
) -> Option<CheckedCertificate> {
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            findings.push(critical(
                FindingCode::UnparsableCertificate,
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
pub(super) fn rsa_key(
    cert: &X509Certificate<'_>,
    findings: &mut Vec<Finding>,
) -> Option<rsa::PublicKey> {
    let spki = cert.public_key();
    let Ok(PublicKey::RSA(parsed)) = spki.parsed() else {
        findings.push(critical(
            FindingCode::UnsupportedKey,
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
                    FindingCode::WeakKey,
                    Severity::Warning,
                    format!("the signing key is RSA {bits}; keys under {STRONG_RSA_BITS} bits can be forged"),
                ));
            }
            Some(key)
        }
        Err(e) => {
            findings.push(critical(
                FindingCode::UnsupportedKey,
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
pub(super) fn modulus_bits(modulus: &[u8]) -> usize {
    let Some(first) = modulus.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = modulus.len() - first - 1;
    rest * 8 + (8 - modulus[first].leading_zeros() as usize)
}

/// "RSA 2048", "EC 256", "DSA 2048", or the key algorithm's OID.
pub(super) fn describe_key(cert: &X509Certificate<'_>) -> String {
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
pub(super) fn is_self_signed(
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
        FindingCode::BadCertificateSignature,
        Severity::Warning,
        "the certificate names itself as its issuer, but its own signature does not verify with \
         its key: it was damaged or edited after signing",
    ));
    false
}

/// Dates are judged against the host's clock; a signature made while the certificate was
/// valid stays a good signature, hence a warning.
pub(super) fn check_dates(cert: &X509Certificate<'_>, now: i64, findings: &mut Vec<Finding>) {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        findings.push(Finding::new(
            FindingCode::CertificateNotYetValid,
            Severity::Warning,
            format!(
                "the signing certificate is not valid before {}",
                rfc3339(&validity.not_before)
            ),
        ));
    } else if now > validity.not_after.timestamp() {
        findings.push(Finding::new(
            FindingCode::CertificateExpired,
            Severity::Warning,
            format!(
                "the signing certificate expired on {}",
                rfc3339(&validity.not_after)
            ),
        ));
    }
}

pub(super) fn rfc3339(time: &ASN1Time) -> String {
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
