//! The digest and the RSASSA-PKCS1-v1_5 signature over the manifest.

use super::line::SignatureLine;
use super::*;

/// The digests DSP0243 and ovftool use, all PKCS#1 v1.5 with RSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(Digest::Sha1),
            "SHA256" => Some(Digest::Sha256),
            "SHA384" => Some(Digest::Sha384),
            "SHA512" => Some(Digest::Sha512),
            _ => None,
        }
    }

    /// The digest of an X.509 `sha*WithRSAEncryption` signature; None for any other algorithm.
    pub(super) fn from_certificate_algorithm(cert: &X509Certificate<'_>) -> Option<Self> {
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

/// Checks the digest name, then the signature over the manifest bytes.
pub(super) fn check_signature(
    line: &SignatureLine,
    key: &rsa::PublicKey,
    manifest: &[u8],
    findings: &mut Vec<Finding>,
) -> bool {
    let Some(digest) = Digest::from_name(&line.digest) else {
        findings.push(critical(
            FindingCode::UnsupportedDigest,
            format!(
                "the signature uses digest {:?}; OVF signatures use SHA1, SHA256, SHA384 or SHA512",
                echo(&line.digest)
            ),
        ));
        return false;
    };
    if !verify_pkcs1(key, digest, manifest, &line.signature) {
        findings.push(critical(
            FindingCode::BadSignature,
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
            FindingCode::WeakDigest,
            Severity::Warning,
            "the manifest is signed over SHA1, which no longer resists forgery; ovftool's \
             --shaAlgorithm=SHA256 makes a stronger signature",
        ));
    }
    true
}

/// RSASSA-PKCS1-v1_5 verification; every failure (wrong length, wrong padding) is `false`.
pub(super) fn verify_pkcs1(
    key: &rsa::PublicKey,
    digest: Digest,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match digest {
        Digest::Sha1 => key.pkcs1v15_verify::<sha1::Sha1>(message, signature),
        Digest::Sha256 => key.pkcs1v15_verify::<sha2::Sha256>(message, signature),
        Digest::Sha384 => key.pkcs1v15_verify::<sha2::Sha384>(message, signature),
        Digest::Sha512 => key.pkcs1v15_verify::<sha2::Sha512>(message, signature),
    }
    .is_ok()
}

/// Says who signed, and plainly that this is not trust.
pub(super) fn signed_finding(signer: &Signer, signed_file: &str) -> Finding {
    let issued = if signer.self_signed {
        "a self-signed certificate".to_string()
    } else {
        format!(
            "a certificate issued by {:?}, which vmdisk does not check",
            signer.issuer
        )
    };
    Finding::new(
        FindingCode::Signed,
        Severity::Info,
        format!(
            "{signed_file:?} is signed by {:?} ({issued}, {} key). vmdisk checked the signature and \
             reports the signer, but a browser has no trust store, so it never calls a signer \
             trusted: whether this signer is who you expect is for you to decide",
            signer.subject, signer.key
        ),
    )
}
