//! The OVF manifest (`.mf`): one digest per line, `SHA256(disk1.vmdk)= 3f2a...`.
//!
//! Spec: DMTF DSP0243, "Package signing and manifest". Exporters differ in spacing (`SHA1
//! (x) = y`), hex case and line ends (CRLF from Windows tools), so all of those are accepted.

use sha1::Digest as _;

/// Manifests larger than this are not believed (a line per file of the package).
pub const MAX_MANIFEST: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Bytes of its digest.
    fn len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A running digest of one of the manifest's algorithms.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub algorithm: Algorithm,
    /// The file name as written between the parentheses.
    pub file: String,
    pub digest: Vec<u8>,
}

/// The entries of a manifest, and the lines that are not entries (with their line numbers).
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub entries: Vec<Entry>,
    pub bad_lines: Vec<usize>,
}

pub fn parse(text: &[u8]) -> Manifest {
    let text = String::from_utf8_lossy(text);
    let mut m = Manifest::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match entry(line) {
            Some(e) => m.entries.push(e),
            None => m.bad_lines.push(i + 1),
        }
    }
    m
}

/// `ALG(name)= hex`, with any spaces around the parts.
fn entry(line: &str) -> Option<Entry> {
    let (alg, rest) = line.split_once('(')?;
    let (file, rest) = rest.rsplit_once(')')?;
    let hex = rest.trim_start().strip_prefix('=')?.trim();
    let algorithm = Algorithm::parse(alg.trim())?;
    let digest = decode_hex(hex)?;
    (digest.len() == algorithm.len()).then(|| Entry {
        algorithm,
        file: file.trim().to_string(),
        digest,
    })
}

pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects() {
        let sha1 = "a".repeat(40);
        let sha256 = "B".repeat(64);
        let text = format!(
            "SHA1(vm.ovf)= {sha1}\r\nSHA256 (disk 1.vmdk) = {sha256}\r\n\r\nsha512(x)={}\nMD5(y)= 00\ngarbage\nSHA1(short)= abcd\n",
            "0".repeat(128)
        );
        let m = parse(text.as_bytes());
        assert_eq!(m.entries.len(), 3);
        assert_eq!(m.entries[0].file, "vm.ovf");
        assert_eq!(m.entries[0].digest, vec![0xaa; 20]);
        assert_eq!(m.entries[1].algorithm, Algorithm::Sha256);
        assert_eq!(m.entries[1].file, "disk 1.vmdk");
        assert_eq!(m.entries[1].digest, vec![0xbb; 32]);
        assert_eq!(m.entries[2].algorithm, Algorithm::Sha512);
        assert_eq!(m.bad_lines, vec![5, 6, 7]);
    }

    #[test]
    fn digests() {
        let mut h = Algorithm::Sha256.hasher();
        h.update(b"abc");
        assert_eq!(
            hex(&h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Algorithm::Sha1.hasher();
        h.update(b"abc");
        assert_eq!(hex(&h.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
