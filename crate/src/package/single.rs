//! One compressed image (`disk.raw.gz`, `disk.qcow2.xz`, `disk.vmdk.zst`), and turning a
//! compressed member into a file a driver can read at random.
//!
//! The image is the decompressed stream. Raw content (a raw disk, an ISO, a bare filesystem)
//! is read front to back, as a conversion reads it, so it streams; any other format is read at
//! random by its driver, so converting it decompresses it once into a scratch file
//! ([`materialize`]). Inspection decodes only the head, plus the whole stream when the size is
//! stated nowhere (gzip keeps it only modulo 4 GiB; xz's index and zstd's frame headers state it).

use super::compressed::{Compression, Stream, stated_size};
use super::{Disk, Package, Role};
use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::format::Format;
use crate::sink::Scratch;
use crate::source::{ImageSet, Source};
use std::rc::Rc;

pub async fn open(set: &mut ImageSet, id: FileId) -> Result<Package> {
    let src = set.file(id).clone();
    let codec = Compression::of_source(&*src)
        .await?
        .ok_or_else(|| Error::not_an_image(format!("{} is not compressed", src.name())))?;
    let name = inner_name(src.name(), codec);
    let stream = Rc::new(Stream::new(
        &name,
        src.clone(),
        codec,
        stated_size(codec, &*src),
    ));
    if stream.known_len().is_none() {
        // The container does not state the length, and a file's length is part of what
        // detection checks (a raw disk's size is its length): decode once to know it.
        stream.measure(&mut |_| true).await?;
    }
    let mut pkg = Package::new(Format::Compressed);
    pkg.details
        .insert("compression".into(), codec.name().into());
    pkg.details
        .insert("compressed-size".into(), src.len().into());
    if let Some(len) = stream.known_len() {
        pkg.details.insert("decompressed-size".into(), len.into());
    }
    let file = set.add(stream.clone());
    pkg.checks.streams.push(stream.clone());
    let mut disk = Disk::new(name, Role::Disk, Some(file));
    disk.compression = Some(codec);
    disk.stream = Some(stream);
    pkg.disks.push(disk);
    Ok(pkg)
}

/// `disk.qcow2.xz` -> `disk.qcow2`, `disk.tgz` -> `disk.tar`; a name without the suffix gets
/// none removed.
fn inner_name(name: &str, codec: Compression) -> String {
    let lower = name.to_ascii_lowercase();
    let suffixes: &[&str] = match codec {
        Compression::Gzip => &[".gz", ".gzip"],
        Compression::Xz => &[".xz"],
        Compression::Zstd => &[".zst", ".zstd"],
    };
    for s in suffixes {
        if lower.ends_with(s) && lower.len() > s.len() {
            return name[..name.len() - s.len()].to_string();
        }
    }
    if codec == Compression::Gzip && lower.ends_with(".tgz") {
        return format!("{}.tar", &name[..name.len() - 4]);
    }
    name.to_string()
}

/// All-zero blocks of this size are left as holes in a scratch file.
const BLOCK: usize = 64 << 10;

/// Decompress `stream` once into a scratch file from `scratch`, added to the set under the
/// same name; returns its id. `progress(bytes done)` cancels by returning false.
pub async fn materialize(
    set: &mut ImageSet,
    stream: &Stream,
    scratch: &dyn Scratch,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<FileId> {
    let mut out = scratch.create(stream.name()).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = stream.read_some(at, &mut buf)?;
        if n == 0 {
            break;
        }
        for (i, block) in buf[..n].chunks(BLOCK).enumerate() {
            if !crate::zero::is_zero(block) {
                out.write_at(at + (i * BLOCK) as u64, block).await?;
            }
        }
        at += n as u64;
        if !progress(at) {
            return Err(Error::cancelled());
        }
        crate::yield_now().await;
    }
    if stream.known_len().is_some_and(|l| l != at) {
        return Err(Error::truncated(format!(
            "{}: the compressed data ends after {at} bytes",
            stream.name()
        )));
    }
    out.set_len(at).await?;
    out.finish().await?;
    let name = stream.name().to_string();
    Ok(set.add(out.into_source(&name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_names() {
        assert_eq!(inner_name("disk.qcow2.xz", Compression::Xz), "disk.qcow2");
        assert_eq!(inner_name("DISK.RAW.GZ", Compression::Gzip), "DISK.RAW");
        assert_eq!(inner_name("d.tgz", Compression::Gzip), "d.tar");
        assert_eq!(inner_name("d.vmdk.zst", Compression::Zstd), "d.vmdk");
        assert_eq!(inner_name(".gz", Compression::Gzip), ".gz");
        assert_eq!(inner_name("image", Compression::Zstd), "image");
    }
}
