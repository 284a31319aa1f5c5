//! cloop compressed loop images. Read with the driver's header parser
//! (`formats::cloop::header`).

use super::{Ctx, Detection, Format, Scan};
use crate::formats::cloop::header;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let Some((h, problems)) = header::parse(&cx.head, cx.len) else {
        return;
    };
    let mut d = Detection::new(Format::Cloop);
    d.set("version", h.version.clone());
    if problems.is_empty() {
        d.virtual_size = Some(h.virtual_size());
        d.set("block-size", h.block_size);
        d.set("blocks", h.n_blocks);
    }
    super::problems::report(&mut d, problems);
    scan.add(0, d);
}
