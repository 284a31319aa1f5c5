//! Format detection from content alone (never from the file name).
//!
//! [`probe`] reads the head ([`HEAD_LEN`]) and the tail ([`TAIL_LEN`]) of the file once, runs every
//! detector on those buffers (plus a few targeted reads: a VMDK descriptor, the VHDX metadata, tar
//! headers, GPT entries) and keeps every match, so a polyglot is reported as such.
//!
//! ## Classes of match
//! - *Containers*: formats a hypervisor interprets (qcow2, qcow, QED, VMDK, VDI, VHD, VHDX,
//!   Parallels, LUKS, OVA, UEC) and ISO 9660/UDF.
//! - *Raw content*: AKI (kernel), ARI (initrd), AMI (bare Linux filesystem), and `raw`, whose
//!   partition table (MBR/GPT) and boot-sector filesystem (FAT/NTFS/exFAT) are named in `details`.
//!   Raw content descriptors never conflict with each other nor with a container.
//! - *Not an image*: a compressed file or archive that holds no disk (`disk.raw.gz`, a tar without
//!   an `.ovf`). Alone, it makes [`probe`] fail with [`Error::NotAnImage`].
//!
//! ## Polyglot rule
//! When more than one distinct container (or a container and a not-an-image claim) matches the same
//! file, `Probe.findings` gets a Critical `format-mismatch` naming them all, and every match stays in
//! `matches`. The primary (`matches[0]`) is the container whose structure sits at offset 0, since
//! that is what a hypervisor probing the file opens; a VHD footer at the end of the file or an ISO
//! volume descriptor at 32 KiB only win when nothing sits at offset 0. Two exceptions are not
//! polyglots: an ISO carrying an MBR/GPT (a hybrid ISO: the table is raw content, reported under
//! `hybrid`), and a fixed VHD whose data area holds an ISO (the ISO is the disk's content: the fixed
//! VHD stores raw bytes, so both readings give the same disk).
//!
//! ## Compressed files rule
//! - gzip: the first KiB are inflated. A tar inside is a UEC tarball (`uec`, members listed), a cpio
//!   inside is an initrd (`ari`), anything else is "not an image: decompress it first".
//! - zstd: likewise inflated with the C zstd: cpio => `ari`, anything else => not an image.
//! - xz: cannot be looked into here. The kernel only accepts xz initramfs with a CRC32 (or no)
//!   integrity check, which is what initramfs-tools and dracut write (`xz --check=crc32`), while
//!   plain `xz` (as in `disk.raw.xz`) writes CRC64. So xz with CRC32/none => `ari`, with a Warning
//!   that its content was not verified; xz with CRC64/SHA-256 => not an image.
//! - lz4: the legacy frame (`02 21 4c 18`) is the one the kernel reads for initramfs => `ari`
//!   (unverified); the modern frame (`04 22 4d 18`, what `lz4 disk.raw` writes) => not an image.
//! - bzip2, zip => not an image.
//!
//! An unverified `ari` only stands when nothing else matched.
//!
//! ## Finding codes raised here
//! `format-mismatch` (polyglot), `truncated` (a header or volume cut off by the end of the file),
//! `corrupt` (fields out of range, bad checksums), `unaligned-size` (raw size not a multiple of
//! 512), `bare-filesystem` (AMI), `backing-file` (VHD/VHDX differencing, VDI diff, VMDK
//! delta), `external-extent` (VMDK extents that are paths or devices), `encrypted` (LUKS),
//! `unknown-feature`, `dirty` (VHDX log), `partition-past-end`,
//! `unverified-content` (xz/lz4 initrds), `ova-layout`, `unsafe-member-name`, `size-ambiguous`
//! (VHD footer size vs CHS geometry). The qcow2, qcow, QED and Parallels drivers raise their own
//! findings (backing file, encryption, dirty state), not from here.

mod archive;
mod bochs;
pub(crate) mod bytes;
mod cloop;
mod disk;
pub(crate) use disk::{GUEST_HEAD, guest_layout};
mod dmg;
mod fs;
mod kernel;
mod luks;
mod optical;
mod parallels;
mod problems;
mod qemu;
mod tail;
mod vdi;
mod vhd;
mod vmdk;

use crate::error::{Error, Result};
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};
use crate::source::Source;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// How much of the start of a file every probe reads: enough for the ISO/UDF volume descriptors
/// (from 32 KiB), the Btrfs superblock (64 KiB) and the VHDX headers and region table (64-256 KiB).
pub const HEAD_LEN: u64 = 256 * 1024;
/// How much of the end of a file every probe reads: the VHD footer (512 bytes, 511 for old files).
pub const TAIL_LEN: u64 = 1024;

pub use crate::format::Format;

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One detector's verdict.
#[derive(Clone, Debug)]
pub struct Detection {
    pub format: Format,
    /// The guest disk size when the header states it.
    pub virtual_size: Option<u64>,
    /// What the detector learnt on the way (subformat, partition table, filesystem, ...).
    pub details: serde_json::Map<String, serde_json::Value>,
    pub findings: Vec<Finding>,
}

impl Detection {
    pub fn new(format: Format) -> Self {
        Detection {
            format,
            virtual_size: None,
            details: Default::default(),
            findings: vec![],
        }
    }

    /// Set one `details` key.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.details.insert(key.to_string(), value.into());
    }

    /// The string value of a `details` key.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.get(key).and_then(|v| v.as_str())
    }

    pub fn finding(&mut self, code: FindingCode, severity: Severity, message: impl Into<String>) {
        self.findings.push(Finding::new(code, severity, message));
    }

    /// The Critical `truncated` finding for a header cut off by the end of the file.
    pub fn truncated(&mut self, what: &str) {
        self.finding(
            FindingCode::Truncated,
            Severity::Critical,
            format!("the {what} is cut off by the end of the file"),
        );
    }
}

/// Everything the detectors found in one file, the most specific match first.
/// `matches` is never empty: anything unrecognised is `raw`.
#[derive(Clone, Debug)]
pub struct Probe {
    pub matches: Vec<Detection>,
    /// Findings about the file as a whole (`format-mismatch` for a polyglot, ...).
    pub findings: Vec<Finding>,
}

impl Probe {
    pub fn primary(&self) -> &Detection {
        &self.matches[0]
    }
}

/// Detect the format of `src`. Errors only when the file cannot be an image at all (empty,
/// a compressed file that is not a known container) or cannot be read.
pub async fn probe(src: &dyn Source) -> Result<Probe> {
    probe_nested(src, 0).await
}

/// [`probe`] at a nesting depth (an OVA member is probed at depth 1; nothing deeper).
fn probe_nested<'a>(
    src: &'a dyn Source,
    depth: u8,
) -> Pin<Box<dyn Future<Output = Result<Probe>> + 'a>> {
    Box::pin(async move {
        let mut cx = Ctx::load(src, depth).await?;
        let mut scan = Scan::default();
        qemu::detect(&cx, &mut scan).await?;
        vmdk::detect(&cx, &mut scan).await?;
        vhd::detect_vhd(&cx, &mut scan).await?;
        vhd::detect_vhdx(&cx, &mut scan).await?;
        vdi::detect(&cx, &mut scan);
        parallels::detect(&cx, &mut scan);
        luks::detect(&cx, &mut scan);
        optical::detect(&cx, &mut scan);
        archive::detect(&cx, &mut scan).await?;
        kernel::detect(&cx, &mut scan);
        fs::detect_bare(&cx, &mut scan);
        bochs::detect(&cx, &mut scan);
        cloop::detect(&cx, &mut scan);
        dmg::detect(&cx, &mut scan);
        let content = disk::analyse(&cx).await?;
        let unread_tail = if cx.tail_skipped() && scan.is_empty() && content.details.is_empty() {
            tail::by_tail(&mut cx, &mut scan).await?
        } else {
            None
        };
        let mut probe = decide(&cx, scan, content)?;
        if let Some(finding) = unread_tail {
            probe.matches[0].findings.push(finding);
        }
        Ok(probe)
    })
}

/// The bytes every detector looks at, read once.
pub(crate) struct Ctx<'a> {
    pub src: &'a dyn Source,
    /// The first `min(len, HEAD_LEN)` bytes.
    pub head: Vec<u8>,
    /// The last `min(len, TAIL_LEN)` bytes.
    pub tail: Vec<u8>,
    pub len: u64,
    pub depth: u8,
}

impl<'a> Ctx<'a> {
    async fn load(src: &'a dyn Source, depth: u8) -> Result<Ctx<'a>> {
        let len = src.len();
        if len == 0 {
            return Err(Error::not_an_image(format!("{} is empty", src.name())));
        }
        let head = crate::source::read_vec(src, 0, len.min(HEAD_LEN), "file header").await?;
        let tail_len = len.min(TAIL_LEN);
        let tail = if len <= HEAD_LEN {
            head[(len - tail_len) as usize..].to_vec()
        } else if src.sequential() {
            // A decompressed stream: its end costs decoding all of it, so it is read only
            // when the head names nothing (`tail::by_tail`).
            vec![]
        } else {
            crate::source::read_vec(src, len - tail_len, tail_len, "file trailer").await?
        };
        Ok(Ctx {
            src,
            head,
            tail,
            len,
            depth,
        })
    }

    /// `n` bytes at `offset`, from the head when it holds them, else with one read. `Ok(None)`
    /// when the range is not inside the file (the caller reports truncation). `n` must already be
    /// bounded by the caller: this allocates it.
    pub async fn bytes(&self, offset: u64, n: u64, what: &str) -> Result<Option<Cow<'_, [u8]>>> {
        let Some(end) = offset.checked_add(n) else {
            return Ok(None);
        };
        if end > self.len {
            return Ok(None);
        }
        if end <= self.head.len() as u64 {
            return Ok(Some(Cow::Borrowed(
                &self.head[offset as usize..end as usize],
            )));
        }
        let v = crate::source::read_vec(self.src, offset, n, what).await?;
        Ok(Some(Cow::Owned(v)))
    }

    /// Whether the tail was left unread (a decompressed stream larger than the head).
    pub fn tail_skipped(&self) -> bool {
        self.tail.is_empty() && self.len > HEAD_LEN
    }

    /// The 512-byte footer slot at the end of the file, shifted by `short` bytes (old VHDs wrote
    /// a 511-byte footer), or None when the file is smaller.
    pub fn footer(&self, size: usize, short: usize) -> Option<&[u8]> {
        let t = self.tail.len();
        let start = t.checked_sub(size - short)?;
        Some(&self.tail[start..])
    }
}

/// A container or raw-content match, with where its defining structure sits.
pub(crate) struct Found {
    /// Offset of the structure a reader would recognise first (0 for a header at the start).
    pub at: u64,
    pub det: Detection,
}

/// A claim that the file is something other than a disk image (a compressed file, an archive).
pub(crate) struct NotImage {
    /// Short name for the `format-mismatch` message (`gzip`, `xz`, `tar`).
    pub kind: &'static str,
    /// The one-line error when nothing else matched.
    pub message: String,
}

/// What the detectors collected.
#[derive(Default)]
pub(crate) struct Scan {
    pub found: Vec<Found>,
    /// Matches that stand only when nothing else matched (an xz/lz4 file taken for an initrd).
    pub weak: Vec<Found>,
    pub rejected: Vec<NotImage>,
}

impl Scan {
    pub fn add(&mut self, at: u64, det: Detection) {
        self.found.push(Found { at, det });
    }
    pub fn add_weak(&mut self, det: Detection) {
        self.weak.push(Found { at: 0, det });
    }
    /// Nothing matched: the file would be taken for raw.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty() && self.weak.is_empty() && self.rejected.is_empty()
    }
    pub fn reject(&mut self, kind: &'static str, message: impl Into<String>) {
        self.rejected.push(NotImage {
            kind,
            message: message.into(),
        });
    }
}

/// Order the matches, apply the polyglot rule and attach the raw content facts.
fn decide(cx: &Ctx<'_>, scan: Scan, content: disk::Content) -> Result<Probe> {
    let Scan {
        mut found,
        weak,
        rejected,
    } = scan;
    // A bare filesystem at offset 0 and a partition table cannot both be the disk's layout; the
    // table wins (the "superblock" is then stray bytes in the gap after the MBR).
    if content.has_table {
        found.retain(|f| f.det.format != Format::Ami);
    }
    let fixed_vhd = found
        .iter()
        .any(|f| f.det.format == Format::Vhd && f.det.detail_str("disk-type") == Some("fixed"));
    let claims: Vec<String> = {
        let mut seen: Vec<Format> = vec![];
        let mut out = vec![];
        for f in &found {
            let fmt = f.det.format;
            // The ISO inside a fixed VHD is that disk's content, not a second container.
            if !fmt.is_container() || seen.contains(&fmt) || (fixed_vhd && fmt == Format::Iso) {
                continue;
            }
            seen.push(fmt);
            out.push(format!("{fmt} (at offset {})", f.at));
        }
        out.extend(rejected.iter().map(|r| format!("{} (at offset 0)", r.kind)));
        out
    };
    let has_container = found.iter().any(|f| f.det.format.is_container());
    if !has_container && let Some(r) = rejected.into_iter().next() {
        return Err(Error::not_an_image(r.message));
    }

    // Containers first, by the offset of their structure (what a hypervisor probing from the
    // start meets first), then the raw content descriptors from the most to the least specific.
    let rank = |d: &Detection| match d.format {
        Format::Iso if fixed_vhd => 1,
        f if f.is_container() => 0,
        Format::Aki => 2,
        Format::Ari => 3,
        Format::Ami => 4,
        _ => 5,
    };
    found.sort_by_key(|f| (rank(&f.det), f.at));

    let mut findings = vec![];
    if claims.len() > 1 {
        let primary = found.first().map(|f| f.det.format.name()).unwrap_or("raw");
        findings.push(Finding::new(
            FindingCode::FormatMismatch,
            Severity::Critical,
            format!(
                "the file is valid as several formats at once: {}; a hypervisor would open it as {primary} (the structure at the lowest offset), others read it differently",
                claims.join(", ")
            ),
        ));
    }

    let mut matches: Vec<Detection> = found.into_iter().map(|f| f.det).collect();
    if matches.is_empty() {
        matches = weak.into_iter().map(|f| f.det).collect();
    }
    if matches.is_empty() {
        let mut raw = Detection::new(Format::Raw);
        raw.virtual_size = Some(cx.len);
        matches.push(raw);
    }
    let primary = &mut matches[0];
    match primary.format {
        Format::Raw => {
            primary.details.extend(content.details);
            primary.findings.extend(content.findings);
        }
        Format::Iso if content.has_table => {
            primary.set("hybrid", serde_json::Value::Object(content.details));
        }
        Format::Vhd if fixed_vhd && !content.details.is_empty() => {
            primary.set("content", serde_json::Value::Object(content.details));
        }
        _ => {}
    }
    if matches!(primary.format, Format::Raw | Format::Ami) && !cx.len.is_multiple_of(512) {
        primary.finding(
            FindingCode::UnalignedSize,
            Severity::Warning,
            format!(
                "the file size ({} bytes) is not a multiple of 512: clouds refuse such raw disks; pad it to {} bytes",
                cx.len,
                cx.len.div_ceil(512).saturating_mul(512)
            ),
        );
    }
    Ok(Probe { matches, findings })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::source::MemSource;

    fn run(data: Vec<u8>) -> Result<Probe> {
        let src = MemSource::new("t", data);
        crate::native::block_on(probe(&src))
    }

    #[test]
    fn empty_is_an_error_and_zeros_are_raw() {
        assert!(matches!(
            run(vec![]),
            Err(Error {
                kind: ErrorKind::NotAnImage,
                ..
            })
        ));
        let p = run(vec![0; 4096]).unwrap();
        assert_eq!(p.primary().format, Format::Raw);
        assert_eq!(p.primary().virtual_size, Some(4096));
        assert!(p.findings.is_empty());
    }

    #[test]
    fn one_byte_files_do_not_panic() {
        for b in 0..=255u8 {
            let _ = run(vec![b]);
            let _ = run(vec![b; 3]);
        }
    }
}
