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

mod certificate;
mod line;
mod signature;

use certificate::{check_certificate, first_certificate};
use line::{check_signed_name, parse_signature_line, split_at_pem};
use signature::{check_signature, signed_finding};

use crate::finding_code::FindingCode;
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
            FindingCode::UnparsableCertFile,
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
            out.findings
                .push(critical(FindingCode::UnparsableCertFile, why));
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

fn critical(code: FindingCode, message: impl Into<String>) -> Finding {
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
mod tests;
