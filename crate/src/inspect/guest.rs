//! What the guest disk's first sectors hold (its partition table), read through the image: the
//! same bytes `convert` would write, so a VMDK, VHD, VHDX, qcow2 or VDI gets the same partition
//! table analysis a raw file does.

use crate::error::Result;
use crate::image::Image;
use crate::probe::GUEST_HEAD;
use crate::source::{ImageSet, Source};
use async_trait::async_trait;

/// A guest disk as a source: each read goes through the image's extent map (and its backing
/// chain), as the copy engine reads it.
struct Guest<'a> {
    set: &'a ImageSet,
    image: &'a dyn Image,
    /// The image is read from a decompressed stream (a tarball's member): bytes past the first
    /// sectors read as zeros rather than decode the stream that far (the partition table is in
    /// the first sectors; only the partitions' filesystems go unnamed).
    head_only: bool,
}

#[async_trait(?Send)]
impl Source for Guest<'_> {
    fn name(&self) -> &str {
        "guest disk"
    }

    fn len(&self) -> u64 {
        self.image.virtual_size()
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.head_only && offset.saturating_add(buf.len() as u64) > GUEST_HEAD {
            buf.fill(0);
            return Ok(());
        }
        let bytes = crate::engine::read_guest(self.set, self.image, offset, buf.len()).await?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }
}

/// The guest's partition table and partitions (`partition-table`, `partitions`, `mbr-problem`,
/// ...), or None when the guest cannot be read (encrypted, a missing backing file, a damaged
/// table): the report then says nothing of it rather than guess.
pub async fn layout(set: &ImageSet, image: Option<&dyn Image>) -> Option<serde_json::Value> {
    let image = image?;
    crate::engine::check_readable(image).ok()?;
    let head_only = image
        .files()
        .iter()
        .any(|(id, _)| set.file(*id).sequential());
    let guest = Guest {
        set,
        image,
        head_only,
    };
    crate::probe::guest_layout(&guest)
        .await
        .ok()
        .map(serde_json::Value::Object)
}
