//! VMDK reader (being written).

use crate::error::Result;
use crate::extent::FileId;
use crate::image::Image;
use crate::source::ImageSet;

/// Open file `id` of the set as a VMDK image; None while this driver is not written.
pub async fn open(set: &ImageSet, id: FileId, depth: usize) -> Result<Option<Box<dyn Image>>> {
    let _ = (set, id, depth);
    Ok(None)
}
