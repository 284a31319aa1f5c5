//! The signature line `DIGEST(NAME)= HEX` before the PEM certificate.

use super::*;

/// The parts of `DIGEST(NAME)= HEX`, still unchecked.
pub(super) struct SignatureLine {
    /// Upper case, without dashes ("SHA-256" is read as "SHA256").
    pub(super) digest: String,
    pub(super) file: String,
    pub(super) signature: Vec<u8>,
}

/// The text before the first PEM boundary (the signature line) and the PEM part.
pub(super) fn split_at_pem(file: &[u8]) -> (&[u8], &[u8]) {
    const BEGIN: &[u8] = b"-----BEGIN ";
    match file.windows(BEGIN.len()).position(|w| w == BEGIN) {
        Some(at) => file.split_at(at),
        None => (file, &[]),
    }
}

/// Reads `DIGEST(NAME)= HEX`, tolerating spaces around the name and `=`, CRLF, hex case, and
/// hex wrapped over several lines (`xxd -p` wraps unless told not to).
pub(super) fn parse_signature_line(head: &[u8]) -> Result<SignatureLine, String> {
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
pub(super) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

pub(super) fn nibble(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

/// The signature must name the manifest it is checked against, or it proves nothing about it.
pub(super) fn check_signed_name(signed: &str, manifest_name: &str, findings: &mut Vec<Finding>) {
    if base_name(signed) != base_name(manifest_name) {
        findings.push(critical(
            FindingCode::SignedFileMismatch,
            format!(
                "the certificate file signs {:?}, not the manifest {:?}",
                echo(signed),
                echo(manifest_name)
            ),
        ));
    }
}

/// The last path component: callers may pass a path, the file names a bare file.
pub(super) fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name).trim()
}
