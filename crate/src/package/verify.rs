//! Verification of a package against itself: every manifest digest over the member it names,
//! and every compressed stream decoded to its end (gzip's CRC-32, xz's and zstd's checks).
//! It reads the package once, front to back, in bounded memory.

use super::Package;
use super::compressed::Stream;
use super::manifest::{Algorithm, hex};
use crate::error::{Error, ErrorKind, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};
use crate::source::ImageSet;
use std::rc::Rc;

/// One manifest entry to check.
#[derive(Clone, Debug)]
pub struct DigestCheck {
    /// The name the manifest writes.
    pub name: String,
    pub file: FileId,
    pub algorithm: Algorithm,
    pub expected: Vec<u8>,
}

/// What verifying a package reads.
#[derive(Default)]
pub struct Checks {
    pub digests: Vec<DigestCheck>,
    /// Compressed streams whose own checksums are checked by decoding them to the end.
    pub streams: Vec<Rc<Stream>>,
}

/// `progress(done, total)` in bytes read; returning false cancels.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

/// Bytes hashed per read.
const CHUNK: usize = 4 << 20;

/// Check everything `pkg` can be checked against (only the digests of `only`, when given: the
/// members a conversion reads). Returns the findings: a critical `digest-mismatch` per damaged
/// member, a critical `corrupt` or `truncated` per damaged stream, an info line per success.
pub async fn verify(
    set: &ImageSet,
    pkg: &Package,
    only: Option<&[FileId]>,
    progress: Progress<'_>,
) -> Result<Vec<Finding>> {
    let digests: Vec<&DigestCheck> = pkg
        .checks
        .digests
        .iter()
        .filter(|d| only.is_none_or(|o| o.contains(&d.file)))
        .collect();
    let streams: &[Rc<Stream>] = if only.is_some() {
        &[]
    } else {
        &pkg.checks.streams
    };
    let total: u64 = digests.iter().map(|d| set.file(d.file).len()).sum::<u64>()
        + streams.iter().map(|s| s.input_len()).sum::<u64>();
    let mut done = 0u64;
    let mut findings = vec![];
    let mut matched = 0;
    for d in &digests {
        let actual = digest(set, d, &mut |n| progress(done + n, total)).await?;
        done += set.file(d.file).len();
        if actual == d.expected {
            matched += 1;
        } else {
            findings.push(Finding::new(
                FindingCode::DigestMismatch,
                Severity::Critical,
                format!(
                    "{}: the manifest's {} is {} but the file's is {}: it was damaged or changed after the manifest was made",
                    d.name,
                    d.algorithm.name(),
                    hex(&d.expected),
                    hex(&actual)
                ),
            ));
        }
    }
    if matched > 0 {
        findings.push(Finding::new(
            FindingCode::Manifest,
            Severity::Info,
            format!(
                "{matched} of {} manifest digests checked and matching",
                digests.len()
            ),
        ));
    }
    for s in streams {
        let base = done;
        let input = s.input_len();
        match s
            .measure(&mut |n| progress(base + n.min(input), total))
            .await
        {
            Ok(len) => findings.push(Finding::new(
                FindingCode::Manifest,
                Severity::Info,
                format!(
                    "the {} stream decodes whole ({len} bytes) and its checksums match",
                    s.codec().name()
                ),
            )),
            Err(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Io) => return Err(e),
            Err(e) => findings.push(Finding::new(
                if matches!(
                    e,
                    Error {
                        kind: ErrorKind::Truncated,
                        ..
                    }
                ) {
                    FindingCode::Truncated
                } else {
                    FindingCode::Corrupt
                },
                Severity::Critical,
                e.to_string(),
            )),
        }
        done += input;
    }
    if !progress(total, total) {
        return Err(Error::cancelled());
    }
    Ok(findings)
}

/// The digest of a whole file of the set. The next chunk's read is in flight while this one is
/// hashed (natively the read runs on the reader thread), so hashing costs about its own time.
async fn digest(
    set: &ImageSet,
    d: &DigestCheck,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<Vec<u8>> {
    let src = set.file(d.file);
    let len = src.len();
    let mut hasher = d.algorithm.hasher();
    let read = |at: u64, buf: Vec<u8>| {
        let n = (len - at).min(CHUNK as u64) as usize;
        src.read_into(vec![(at, 0..n)], buf)
    };
    let mut at = 0u64;
    let mut spare = vec![0u8; CHUNK];
    let mut current = if len > 0 {
        Some(read(0, vec![0u8; CHUNK]).await?)
    } else {
        None
    };
    while let Some(buf) = current {
        let n = (len - at).min(CHUNK as u64) as usize;
        let next_at = at + n as u64;
        let next = async {
            if next_at < len {
                Some(read(next_at, std::mem::take(&mut spare)).await)
            } else {
                None
            }
        };
        let hash = async { hasher.update(&buf[..n]) };
        let (next, ()) = futures::future::join(next, hash).await;
        spare = buf;
        at = next_at;
        if !progress(at) {
            return Err(Error::cancelled());
        }
        crate::yield_now().await;
        current = next.transpose()?;
    }
    Ok(hasher.finish())
}
