//! The end of a decompressed stream, read only when its head names nothing. Formats whose one
//! header is a trailer (Apple DMG's `koly`, a fixed VHD's footer) cannot be seen in the head,
//! and taking such a file for raw would convert its metadata as disk bytes.
//!
//! The rule: a sequential source (a compressed image or member) whose decoded head holds no
//! format, partition table or filesystem, and whose length is known, is decoded once through to
//! its end, keeping the last [`TAIL_LEN`] bytes; the trailer detectors then look at them. That
//! decode is bounded (the stream's known length, in steps that give the host its turn; the
//! stream keeps only a window of what it decoded) and is the package's verification pass done
//! early: it reads the codec's trailer and checksums, so verifying afterwards decodes nothing
//! more (gzip streams, measured when opened, cost nothing here at all). When the end cannot
//! be read (the length is unknown, the data stops decoding), the file stays raw with a
//! Warning `unidentified` finding: raw was not established, only not disproved.

use super::{Ctx, Scan, TAIL_LEN, dmg, vhd};
use crate::error::{ErrorKind, Result};
use crate::finding_code::FindingCode;
use crate::report::{Finding, Severity};
use crate::source::read_vec;

/// Read the tail of `cx` and run the trailer detectors on it; the `unidentified` finding when
/// the tail could not be read. Cancellation and host I/O errors end the probe.
pub(super) async fn by_tail(cx: &mut Ctx<'_>, scan: &mut Scan) -> Result<Option<Finding>> {
    let src = cx.src;
    let unidentified = |why: String| {
        Some(Finding::new(
            FindingCode::Unidentified,
            Severity::Warning,
            format!(
                "nothing in the first bytes of {} names a format, and {why}: formats that keep their only header at the end (Apple DMG, a fixed VHD) cannot be ruled out, so it is taken for raw unconfirmed",
                src.name()
            ),
        ))
    };
    if cx.len == u64::MAX {
        return Ok(unidentified("its length is not known".into()));
    }
    let start = cx.len - TAIL_LEN.min(cx.len);
    let read = async {
        src.advance(start).await?;
        read_vec(src, start, cx.len - start, "file trailer").await
    };
    match read.await {
        Ok(tail) => cx.tail = tail,
        Err(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Io) => return Err(e),
        Err(e) => return Ok(unidentified(format!("its end could not be read ({e})"))),
    }
    vhd::detect_vhd(cx, scan).await?;
    dmg::detect(cx, scan);
    Ok(None)
}
