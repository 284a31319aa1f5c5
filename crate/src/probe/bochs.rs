//! Bochs growing images. Read with the driver's header parser (`formats::bochs::header`).

use super::{Ctx, Detection, Format, Scan};
use crate::formats::bochs::header;

pub fn detect(cx: &Ctx<'_>, scan: &mut Scan) {
    let Some((h, problems)) = header::parse(&cx.head, cx.len) else {
        return;
    };
    let mut d = Detection::new(Format::Bochs);
    d.virtual_size = Some(h.disk);
    d.set(
        "version",
        if h.version == header::VERSION_1 { 1 } else { 2 },
    );
    d.set("subtype", h.subtype.clone());
    d.set("extent-size", h.extent);
    super::problems::report(&mut d, problems);
    scan.add(0, d);
}
