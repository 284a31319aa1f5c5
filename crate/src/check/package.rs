//! Checking a package (OVA/OVF, UEC and GCE tarballs, a compressed image): its manifest
//! digests and compressed streams verified as `vmdisk info` verifies them, then each disk
//! checked like an image of its own. A damaged member or stream is a corruption.

use super::result::{CheckResult, Kind};
use super::{Options, Progress, image_check};
use crate::error::{ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::image::OpenedImage;
use crate::package::{self, Role};
use crate::sink::Scratch;

pub async fn check(
    opened: &mut OpenedImage,
    opts: &Options,
    scratch: &dyn Scratch,
    p: &mut Progress<'_>,
) -> Result<CheckResult> {
    let pkg = opened.package.as_ref().expect("a package");
    let main = opened.set.file(opened.main).name().to_string();
    let mut r = CheckResult::new(&main, pkg.format.name());
    if opts.verify {
        match package::verify(&opened.set, pkg, None, p.raw()).await {
            Ok(found) => {
                for f in found {
                    match f.code {
                        FindingCode::DigestMismatch | FindingCode::Corrupt => {
                            r.note(Kind::Corruption, f.message)
                        }
                        FindingCode::Truncated => r.note(Kind::Corruption, f.message),
                        _ => {}
                    }
                }
            }
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => r.note(Kind::CheckError, format!("verification could not run: {e}")),
        }
    }
    for n in 0..pkg_disks(opened) {
        let (name, role) = {
            let d = &opened.package.as_ref().expect("a package").disks[n];
            (d.name.clone(), d.role)
        };
        if !matches!(role, Role::Disk | Role::Ami) {
            continue;
        }
        let mut disk = CheckResult::new(&name, "");
        if let Err(e) = opened.prepare(Some(n), scratch, &mut |_| true).await {
            if e.is_cancelled() {
                return Err(e);
            }
            disk.note(Kind::CheckError, format!("the disk cannot be read: {e}"));
            r.disks.push(disk);
            continue;
        }
        let d = &opened.disks[n];
        // A disk decompressed into scratch space is read from there.
        let file = d.image.as_ref().map(|i| i.basics().file).or(opened
            .package
            .as_ref()
            .expect("a package")
            .disks[n]
            .file);
        match (&d.error, &d.probe, file) {
            (None, Some(probe), Some(file)) => {
                let format = probe.primary().format;
                let mut checked =
                    image_check(&opened.set, file, format, d.image.as_deref(), p).await?;
                checked.filename = name;
                r.disks.push(checked);
            }
            (error, probe, _) => {
                if let Some(p) = probe {
                    disk.format = super::qemu_name(p.primary().format).to_string();
                }
                // A disk its driver refuses as damaged is corrupt, as an image would be.
                let kind = match error.as_ref().map(|e| e.kind) {
                    Some(ErrorKind::Corrupt | ErrorKind::Truncated) => Kind::Corruption,
                    _ => Kind::CheckError,
                };
                let why = error
                    .as_ref()
                    .map_or("it cannot be read".to_string(), |e| e.to_string());
                disk.note(kind, format!("the disk cannot be checked: {why}"));
                r.disks.push(disk);
            }
        }
    }
    Ok(r)
}

fn pkg_disks(opened: &OpenedImage) -> usize {
    opened.package.as_ref().map_or(0, |p| p.disks.len())
}
