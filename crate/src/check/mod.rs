//! `vmdisk check`: the full consistency check of an opened image set, host-neutral (all reads
//! through [`crate::Source`]), in the manner of `qemu-img check` and with its exit codes.
//!
//! - qcow2 ([`qcow2`]): refcounts rebuilt from the metadata and compared with the stored ones
//!   (leaks, corruptions), table entries' alignment and bounds, compressed clusters decoded.
//! - VDI ([`vdi`]): block map entries in range, used once, counted as the header says.
//! - QED ([`qed`]): tables and data clusters valid and used once, unused clusters leaked.
//! - Formats with a block table ([`tables`]): from the driver's extent map, stored runs inside
//!   the file, no host bytes used twice, compressed grains decoded.
//! - streamOptimized VMDK ([`vmdk_stream`]): markers, footer and grain directory agree.
//! - Parallels ([`parallels`]): the in-use flag, `data_off`, clusters leaked at the end.
//! - Packages ([`package`]): the manifest digests and streams verified, then each disk checked.

mod open;
mod package;
mod parallels;
mod qcow2;
mod qcow2_bitmaps;
mod qcow2_l2;
mod qcow2_snapshots;
mod qed;
mod refcounts;
mod result;
mod tables;
#[cfg(test)]
mod tests;
mod text;
mod vdi;
mod vmdk_stream;

pub use open::check_files;
pub use refcounts::MAX_CLUSTERS;
pub use result::{CheckResult, Kind, MAX_PROBLEMS};
pub use text::human;

use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::format::Format;
use crate::image::{Image, OpenedImage};
use crate::sink::Scratch;
use crate::source::ImageSet;

#[derive(Clone, Debug)]
pub struct Options {
    /// Verify a package's manifest digests and compressed streams (`--no-verify` clears it).
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { verify: true }
    }
}

/// Check the image set `opened`: its main image, or a package and each of its disks (a disk
/// stored in a compressed stream is decompressed into `scratch` first). `progress(done,
/// total)` is called as the check goes, in bytes of the file being checked; returning false
/// cancels (the cancel flag: the only error this returns is [`Error::cancelled`]). Every
/// other problem, including one that stops the check, is in the result.
pub async fn check(
    opened: &mut OpenedImage,
    opts: &Options,
    scratch: &dyn Scratch,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<CheckResult> {
    let mut p = Progress::new(progress);
    if opened.package.is_some() {
        return package::check(opened, opts, scratch, &mut p).await;
    }
    let format = opened.probe.primary().format;
    let image = opened.image.as_deref();
    image_check(&opened.set, opened.main, format, image, &mut p).await
}

/// Check one image: file `file` of `set`, of `format`, opened as `image` when vmdisk reads it.
async fn image_check(
    set: &ImageSet,
    file: FileId,
    format: Format,
    image: Option<&dyn Image>,
    p: &mut Progress<'_>,
) -> Result<CheckResult> {
    let src = &**set.file(file);
    let mut r = CheckResult::new(src.name(), qemu_name(format));
    p.scale = src.len();
    let ran = match (format, image) {
        (f, _) if reads_itself(f) => file_check(f, src, &mut r, p).await,
        (Format::Vmdk, Some(image)) if vmdk_stream::is_stream(src).await => {
            match tables::check(set, image, &mut r, p).await {
                Ok(()) => vmdk_stream::check(src, &mut r, p).await,
                e => e,
            }
        }
        (Format::Parallels, Some(image)) => match tables::check(set, image, &mut r, p).await {
            Ok(()) => parallels::check(src, &mut r, p).await,
            e => e,
        },
        (_, Some(image)) => tables::check(set, image, &mut r, p).await,
        (_, None) => Err(Error::unsupported(format!(
            "vmdisk cannot check {format} images"
        ))),
    };
    finish(ran, r)
}

/// Formats whose check reads the file itself rather than through the driver, so that it
/// still runs when the driver refuses a damaged image.
fn reads_itself(format: Format) -> bool {
    matches!(format, Format::Qcow2 | Format::Qed | Format::Vdi)
}

async fn file_check(
    format: Format,
    src: &dyn crate::Source,
    r: &mut CheckResult,
    p: &mut Progress<'_>,
) -> Result<()> {
    match format {
        Format::Qcow2 => qcow2::check(src, r, p).await,
        Format::Qed => qed::check(src, r, p).await,
        _ => vdi::check(src, r, p).await,
    }
}

/// The result, with a check that stopped counted as a check error (a cancel is passed on).
fn finish(ran: Result<()>, mut r: CheckResult) -> Result<CheckResult> {
    match ran {
        Err(e) if e.is_cancelled() => Err(e),
        Err(e) => {
            r.note(Kind::CheckError, format!("the check could not run: {e}"));
            Ok(r)
        }
        Ok(()) => Ok(r),
    }
}

/// The format's name as qemu-img check writes it.
fn qemu_name(format: Format) -> &'static str {
    match format {
        Format::Vhd => "vpc",
        f => f.name(),
    }
}

/// Progress of one check, in steps of its own (L2 tables, refcount blocks, map windows),
/// reported to the host scaled to the file's length.
pub(crate) struct Progress<'a> {
    report: &'a mut dyn FnMut(u64, u64) -> bool,
    done: u64,
    total: u64,
    scale: u64,
}

impl<'a> Progress<'a> {
    fn new(report: &'a mut dyn FnMut(u64, u64) -> bool) -> Self {
        Progress {
            report,
            done: 0,
            total: 0,
            scale: 0,
        }
    }

    pub(crate) fn set_total(&mut self, steps: u64) {
        self.total = steps.max(1);
        self.done = 0;
    }

    /// `n` more steps done; fails with [`Error::cancelled`] when the host says stop.
    pub(crate) fn step(&mut self, n: u64) -> Result<()> {
        self.done = (self.done + n).min(self.total);
        let at = (u128::from(self.done) * u128::from(self.scale) / u128::from(self.total)) as u64;
        if (self.report)(at, self.scale) {
            Ok(())
        } else {
            Err(Error::cancelled())
        }
    }

    /// The host's bytes-based callback, for work that reports its own bytes (verification).
    pub(crate) fn raw(&mut self) -> &mut dyn FnMut(u64, u64) -> bool {
        self.report
    }
}
