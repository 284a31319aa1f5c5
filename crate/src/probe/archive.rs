//! Packages and archives, named from their first bytes: an OVA (a tar holding an `.ovf`), an
//! OVF descriptor, gzip/xz/zstd files (a UEC or GCE tarball, a compressed initrd or kernel, a
//! compressed image), and the archives and compressors vmdisk does not open (zip, 7z, bzip2,
//! lz4, lzo). The package drivers (`crate::package`) read them; detection uses their tar
//! parser and decoders on the head it already holds.
//!
//! See the module docs of `probe` for the rule on compressed files.

use super::{Ctx, Detection, Format, Scan};
use crate::error::Result;
use crate::finding_code::FindingCode;
use crate::package::compressed::{self, Compression};
use crate::package::tar;
use crate::report::Severity;
use crate::source::MemSource;
use std::io::Read;

/// Decompressed bytes examined at most (the compressed input is the head already read).
const PREFIX: usize = 4 << 20;
/// Tar members named in a message.
const NAMED: usize = 8;

/// The compressor whose magic starts `b` (the ones vmdisk decodes and the ones it names).
pub fn compression(b: &[u8]) -> Option<&'static str> {
    if let Some(c) = Compression::of(b) {
        Some(c.name())
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Some("lz4-legacy")
    } else if b.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Some("lz4")
    } else if b.starts_with(b"BZh") && b.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        Some("bzip2")
    } else if b.starts_with(b"\x89LZO\0\r\n\x1a\n") {
        Some("lzo")
    } else if b.starts_with(b"PK\x03\x04") {
        Some("zip")
    } else if b.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Some("7z")
    } else {
        None
    }
}

pub async fn detect(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    if tar::is_header(&cx.head) {
        tar_archive(cx, scan).await?;
    }
    if is_ovf(&cx.head) {
        scan.add(0, Detection::new(Format::Ovf));
    }
    if let Some(codec) = Compression::of(&cx.head) {
        if cx.depth == 0 {
            compressed(cx, scan, codec).await?;
        } else {
            scan.reject(
                codec.name(),
                format!(
                    "a {}-compressed file inside a package: extract it first",
                    codec.name()
                ),
            );
        }
        return Ok(());
    }
    match compression(&cx.head) {
        Some("lz4-legacy") => scan.add_weak(unverified(
            cx,
            "lz4-legacy",
            "lz4 legacy-frame data, the framing the kernel reads for initramfs",
        )),
        Some("zip") => scan.reject("zip", "a zip archive: extract the disk image from it first"),
        Some("7z") => scan.reject(
            "7z",
            "a 7-Zip archive: extract the disk image from it first",
        ),
        Some(c) => scan.reject(c, format!("a {c}-compressed file: decompress it first")),
        None => {}
    }
    Ok(())
}

/// An OVF descriptor: XML whose root element is an OVF `Envelope` (a byte-order mark and an
/// XML declaration may come first).
fn is_ovf(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('<')
        && text.contains("Envelope")
        && (text.contains("schemas.dmtf.org/ovf/envelope")
            || text.contains("vmware.com/schema/ovf"))
}

/// A tar: an OVA when it holds an `.ovf` descriptor, otherwise an archive to extract first.
async fn tar_archive(cx: &Ctx<'_>, scan: &mut Scan) -> Result<()> {
    let listing = tar::list(cx.src).await?;
    let members: Vec<&tar::Member> = listing.members.iter().filter(|m| !m.is_noise()).collect();
    if members
        .iter()
        .any(|m| m.is_file() && m.path.to_ascii_lowercase().ends_with(".ovf"))
    {
        let mut d = Detection::new(Format::Ova);
        d.set("member-count", members.len());
        scan.add(0, d);
        return Ok(());
    }
    scan.reject(
        "tar",
        format!(
            "a tar archive without an .ovf descriptor ({}), so not an OVA: extract the disk image from it first",
            named(&members)
        ),
    );
    Ok(())
}

fn named(members: &[&tar::Member]) -> String {
    let names: Vec<&str> = members
        .iter()
        .take(NAMED)
        .map(|m| m.path.as_str())
        .collect();
    let more = if members.len() > NAMED { ", ..." } else { "" };
    if names.is_empty() {
        "no members".into()
    } else {
        format!("members: {}{more}", names.join(", "))
    }
}

/// A gzip, xz or zstd file, named by what its first decompressed bytes hold.
async fn compressed(cx: &Ctx<'_>, scan: &mut Scan, codec: Compression) -> Result<()> {
    let Some(prefix) = prefix(codec, &cx.head) else {
        scan.reject(
            codec.name(),
            format!(
                "a corrupt {}-compressed file: it does not decompress",
                codec.name()
            ),
        );
        return Ok(());
    };
    if prefix.is_empty() {
        scan.reject(
            codec.name(),
            format!(
                "an empty {}-compressed file: it holds nothing",
                codec.name()
            ),
        );
        return Ok(());
    }
    if tar::is_header(&prefix) {
        return tarball(scan, codec, prefix).await;
    }
    let inner = MemSource::new(cx.src.name(), prefix);
    let found = super::probe_nested(&inner, cx.depth + 1).await;
    let mut d = match found {
        // A compressed initramfs or kernel is what it holds, compressed.
        Ok(p) if matches!(p.primary().format, Format::Ari | Format::Aki) => {
            let mut d = p.matches.into_iter().next().expect("a match");
            d.virtual_size = Some(cx.len);
            d
        }
        Ok(p) => {
            let inner = p.primary();
            let mut d = Detection::new(Format::Compressed);
            d.set("inner-format", inner.format.name());
            d
        }
        Err(e) => {
            scan.reject(
                codec.name(),
                format!("a {}-compressed file holding {e}", codec.name()),
            );
            return Ok(());
        }
    };
    d.set("compression", codec.name());
    scan.add(0, d);
    Ok(())
}

/// The first decompressed bytes of a compressed file, from its head (a decoding error at the
/// end of the head just ends them); None when nothing decodes and the data does not end.
fn prefix(codec: Compression, head: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![];
    let d = compressed::decode(codec, head).ok()?;
    let ended = d.take(PREFIX as u64).read_to_end(&mut out).is_ok();
    (ended || !out.is_empty()).then_some(out)
}

/// A compressed tar: a GCE image tarball (its first member is `disk.raw`), a UEC tarball (it
/// holds a machine image, kernel or ramdisk by name), or an archive to extract first.
async fn tarball(scan: &mut Scan, codec: Compression, prefix: Vec<u8>) -> Result<()> {
    let src = MemSource::new("tarball", prefix);
    let listing = tar::list(&src).await?;
    let members: Vec<&tar::Member> = listing.members.iter().filter(|m| !m.is_noise()).collect();
    let name = |m: &&tar::Member| m.name().to_ascii_lowercase();
    let format = if members.first().map(name).as_deref() == Some("disk.raw") {
        Format::Gce
    } else if members.iter().map(name).any(|n| {
        n.ends_with(".img")
            || n.contains("vmlinuz")
            || n.contains("initrd")
            || n.ends_with("-loader")
    }) {
        Format::Uec
    } else {
        scan.reject(
            codec.name(),
            format!(
                "a {}-compressed tar archive ({}) that is neither a UEC nor a GCE image tarball: extract the disk image from it first",
                codec.name(),
                named(&members)
            ),
        );
        return Ok(());
    };
    let mut d = Detection::new(format);
    d.set("compression", codec.name());
    scan.add(0, d);
    Ok(())
}

/// An initrd taken from its compression framing alone (content not inspected).
fn unverified(cx: &Ctx<'_>, compression: &str, why: &str) -> Detection {
    let mut d = Detection::new(Format::Ari);
    d.virtual_size = Some(cx.len);
    d.set("compression", compression);
    d.finding(
        FindingCode::UnverifiedContent,
        Severity::Warning,
        format!("{why}: taken for an initrd (ARI) without looking inside"),
    );
    d
}
