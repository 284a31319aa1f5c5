//! Where a VHDX keeps its metadata, for the integrity walk ([MS-VHDX] 2.2 "Header Section",
//! 2.3 "Log", 2.5 "BAT", 2.6 "Metadata Region"): the 1 MiB header section (file identifier,
//! both headers, both region tables), the log, the metadata region, the BAT region and each
//! present sector bitmap block. A sector bitmap past the end fails the map of the partially
//! present blocks that need it, which the walk counts block by block.

use super::bat::{BAT_WINDOW, SB_PRESENT};
use super::{MIB, Vhdx};
use crate::formats::common::intact::Layout;

impl Vhdx {
    pub(super) async fn layout(&self) -> Layout {
        let mut layout = Layout::new(self.file, self.src.len(), self.block_size);
        layout.meta(0, MIB, "header section");
        let h = &self.header;
        // A replayed log's data sectors are mapped as guest data (`Vhdx::push_stored`).
        if h.log_length > 0 && self.log.is_none() {
            layout.meta(h.log_offset, u64::from(h.log_length), "log");
        }
        layout.meta(self.meta.offset, self.meta.length, "metadata region");
        layout.meta(self.bat.offset, self.bat.length, "BAT");
        if self.has_parent {
            self.declare_bitmaps(&mut layout).await;
        }
        layout
    }

    /// The sector bitmap blocks of a differencing disk (one per chunk, [MS-VHDX] 2.5.1.2).
    async fn declare_bitmaps(&self, layout: &mut Layout) {
        let per = self.chunk_ratio + 1;
        let total = self.bat_entries();
        let mut first = 0;
        while first < total {
            let n = (total - first).min(BAT_WINDOW * per);
            let Ok(entries) = self.bat_read(first, n).await else {
                return;
            };
            for (k, &e) in entries.iter().enumerate() {
                let index = first + k as u64;
                if self.is_bitmap_entry(index) && e & 7 == SB_PRESENT {
                    layout.meta((e >> 20) << 20, MIB, "sector bitmap");
                }
            }
            first += n;
        }
    }
}
