//! Opening the files to check. An image whose driver refuses it (a damaged table) is still
//! checked where the check reads the format itself (qcow2, QED, VDI), and is otherwise one corruption;
//! qemu-img check, too, reports such damage in formats whose check it can open.

use super::result::{CheckResult, Kind};
use super::{Options, Progress, check, file_check, finish, qemu_name, reads_itself};
use crate::error::{ErrorKind, Result};
use crate::extent::FileId;
use crate::format::Format;
use crate::image;
use crate::package;
use crate::probe;
use crate::sink::Scratch;
use crate::source::ImageSet;

/// Open `set` (as [`crate::image::open_with`] does with `pkg`) and check it.
pub async fn check_files(
    set: ImageSet,
    pkg: &package::Options,
    opts: &Options,
    scratch: &dyn Scratch,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<CheckResult> {
    let error = match image::open_with(set.clone(), pkg).await {
        Ok(mut opened) => return check(&mut opened, opts, scratch, progress).await,
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => e,
    };
    // The set did not open: check its first file on its own.
    let src = set.file(FileId(0)).clone();
    let format = match probe::probe(&*src).await {
        Ok(p) => p.primary().format,
        Err(_) => Format::Raw,
    };
    let mut r = CheckResult::new(src.name(), qemu_name(format));
    if reads_itself(format) {
        let mut p = Progress::new(progress);
        p.scale = src.len();
        let ran = file_check(format, &*src, &mut r, &mut p).await;
        return finish(ran, r);
    }
    let kind = match error.kind {
        ErrorKind::Corrupt | ErrorKind::Truncated => Kind::Corruption,
        _ => Kind::CheckError,
    };
    r.note(kind, format!("the image cannot be opened: {error}"));
    Ok(r)
}
