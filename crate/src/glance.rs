//! What an OpenStack image record would say of the file: the `disk_format` and
//! `container_format` to declare, the sizes glance records, and (on request) the checksums it
//! computes while storing the upload.
//!
//! Sources:
//! - https://docs.openstack.org/glance/latest/admin/os_hash_algo.html (verified): the
//!   multihash "supplements the current 'checksum' image property"; `os_hash_algo` "will be
//!   populated by the value of the configuration option hashing_algorithm", `os_hash_value` is
//!   "the hexdigest computed by applying the secure hash algorithm"; "The default secure hash
//!   algorithm is SHA-512". `checksum` is MD5 (glance's image API reference,
//!   https://docs.openstack.org/api-ref/image/v2/, not found in the stored copies).
//! - https://docs.openstack.org/openstacksdk/latest/user/resources/image/v2/image.html
//!   (verified): `min_disk` is "The minimum disk size in GB that is required to boot the image".

use crate::error::{Error, Result};
use crate::format::Format;
use crate::report::Report;
use crate::source::Source;
use md5::{Digest, Md5};
use serde::Serialize;
use sha2::Sha512;
use std::sync::atomic::{AtomicBool, Ordering};

const GIB: u64 = 1 << 30;
/// Bytes read and hashed at a time: bounded memory whatever the file size.
const CHUNK: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Glance {
    pub disk_format: &'static str,
    pub container_format: &'static str,
    /// Bytes of the file uploaded (for a package, the package file).
    pub size: u64,
    pub virtual_size: u64,
    /// The virtual size in GiB, rounded up: the smallest root disk the image fits.
    pub min_disk: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_hash_algo: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_hash_value: Option<String>,
}

/// glance's name for a format whose bytes are uploaded as they are, with its container.
/// The names are glance's default `[image_format] disk_formats` and `container_formats`
/// (glance/common/config.py; https://docs.openstack.org/glance/latest/user/formats.html):
/// UEC members go as `ami`/`aki`/`ari` in a container of the same name, an OVA in `ova`,
/// everything else `bare`. Parallels images are glance's `ploop`.
pub fn declared(format: Format) -> Option<(&'static str, &'static str)> {
    Some(match format {
        Format::Raw => ("raw", "bare"),
        Format::Qcow2 => ("qcow2", "bare"),
        Format::Vmdk => ("vmdk", "bare"),
        Format::Vdi => ("vdi", "bare"),
        Format::Vhd => ("vhd", "bare"),
        Format::Vhdx => ("vhdx", "bare"),
        Format::Iso => ("iso", "bare"),
        Format::Parallels => ("ploop", "bare"),
        Format::Ami => ("ami", "ami"),
        Format::Aki => ("aki", "aki"),
        Format::Ari => ("ari", "ari"),
        _ => return None,
    })
}

/// The glance record of the file the report describes; None when glance has no
/// `disk_format` for it (QED, qcow v1, LUKS, a tarball or a compressed file).
pub fn metadata(r: &Report) -> Option<Glance> {
    let (disk_format, container_format) = if r.format == Format::Ova {
        // An OVA's disk_format is that of the disks it carries (VMDK in practice).
        let inner = r.disks.first().and_then(|d| d.format).and_then(declared);
        (inner.map_or("vmdk", |(d, _)| d), "ova")
    } else {
        declared(r.format)?
    };
    let size = r
        .files
        .iter()
        .find(|f| matches!(f.role.as_str(), "image" | "package"))
        .map_or(0, |f| f.size);
    Some(Glance {
        disk_format,
        container_format,
        size,
        virtual_size: r.virtual_size,
        min_disk: r.virtual_size.div_ceil(GIB),
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
    })
}

/// The two digests glance records, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashes {
    pub md5: String,
    pub sha512: String,
}

impl Glance {
    pub fn set_hashes(&mut self, h: Hashes) {
        self.checksum = Some(h.md5);
        self.os_hash_algo = Some("sha512");
        self.os_hash_value = Some(h.sha512);
    }
}

/// The digests `--hash` asked for, of the file itself, in glance's words: printed whether or
/// not glance has a `disk_format` for the file (a QED image, a tarball, a compressed file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileHashes {
    pub checksum: String,
    pub os_hash_algo: &'static str,
    pub os_hash_value: String,
}

/// Put the file's digests in the report, and in its glance record when it has one.
pub fn record_hashes(r: &mut Report, h: Hashes) {
    if let Some(g) = &mut r.glance {
        g.set_hashes(h.clone());
    }
    r.hashes = Some(FileHashes {
        checksum: h.md5,
        os_hash_algo: "sha512",
        os_hash_value: h.sha512,
    });
}

/// MD5 and SHA-512 of the whole of `src`, in one pass: each chunk read feeds both.
/// `progress(done, total)` is told after every chunk; setting `cancel` stops at the next one.
pub async fn hash(
    src: &dyn Source,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &AtomicBool,
) -> Result<Hashes> {
    let total = src.len();
    let mut md5 = Md5::new();
    let mut sha = Sha512::new();
    let mut buf = vec![0u8; CHUNK.min(total as usize)];
    let mut at = 0u64;
    while at < total {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::cancelled());
        }
        let n = (total - at).min(buf.len() as u64) as usize;
        src.read_at(at, &mut buf[..n]).await?;
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        at += n as u64;
        progress(at, total);
        crate::yield_now().await;
    }
    Ok(Hashes {
        md5: hex(&md5.finalize()),
        sha512: hex(&sha.finalize()),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::source::MemSource;

    fn run(data: &[u8], cancel: bool) -> (Result<Hashes>, Vec<(u64, u64)>) {
        let src = MemSource::new("f", data.to_vec());
        let mut seen = vec![];
        let flag = AtomicBool::new(cancel);
        let r = crate::native::block_on(hash(&src, &mut |d, t| seen.push((d, t)), &flag));
        (r, seen)
    }

    #[test]
    fn digests_are_md5_and_sha512() {
        // The FIPS 180-2 and RFC 1321 test vectors for "abc".
        let (h, seen) = run(b"abc", false);
        let h = h.unwrap();
        assert_eq!(h.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert!(h.sha512.starts_with("ddaf35a193617aba") && h.sha512.ends_with("a54ca49f"));
        assert_eq!(seen, [(3, 3)]);
    }

    #[test]
    fn chunks_report_progress_and_cancel_stops() {
        let data = vec![7u8; CHUNK * 2 + 5];
        let (h, seen) = run(&data, false);
        assert!(h.is_ok());
        let total = data.len() as u64;
        assert_eq!(
            seen,
            [
                (CHUNK as u64, total),
                (2 * CHUNK as u64, total),
                (total, total)
            ]
        );
        let (h, seen) = run(&data, true);
        assert!(h.unwrap_err().is_cancelled() && seen.is_empty());
        let (h, _) = run(b"", false);
        assert_eq!(h.unwrap().md5, "d41d8cd98f00b204e9800998ecf8427e");
    }
}
