//! One module per format driver. Each parses and validates its metadata and implements
//! [`crate::Image`]: it maps guest ranges to file ranges and never does bulk I/O itself.
//! [`DRIVERS`] is the one table `image.rs` opens them through.

pub mod bochs;
pub mod cloop;
pub(crate) mod common;
pub mod dmg;
pub mod parallels;
pub mod qcow;
pub mod qcow2;
pub mod qed;
pub mod raw;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

use crate::error::Result;
use crate::extent::FileId;
use crate::format::Format;
use crate::image::Image;
use crate::source::ImageSet;
use std::future::Future;
use std::pin::Pin;

/// A driver opening one file.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<Box<dyn Image>>> + 'a>>;
/// A driver's entry point: file `id` of the set, `depth` backing levels down.
pub type Open = for<'a> fn(&'a ImageSet, FileId, usize) -> Opening<'a>;

/// The [`Open`] of a driver whose `open(set, id, depth)` follows backing files.
macro_rules! opens {
    ($driver:path) => {
        |s, id, depth| boxed(<$driver>::open(s, id, depth))
    };
}

/// Every container format vmdisk reads, with its driver. Raw content (raw, ISO, AMI, AKI, ARI)
/// is read by [`raw::RawImage`]; packages by [`crate::package`].
pub const DRIVERS: &[(Format, Open)] = &[
    (Format::Qcow2, opens!(qcow2::Qcow2)),
    (Format::Qcow, opens!(qcow::Qcow)),
    (Format::Qed, opens!(qed::Qed)),
    (Format::Vmdk, opens!(vmdk::Vmdk)),
    (Format::Vdi, opens!(vdi::Vdi)),
    (Format::Vhd, opens!(vhd::Vhd)),
    (Format::Vhdx, opens!(vhdx::Vhdx)),
    // Parallels images have no backing file.
    (Format::Parallels, |s, id, _| parallels::open(s, id)),
    (Format::Bochs, |s, id, _| boxed(bochs::Bochs::open(s, id))),
    (Format::Cloop, |s, id, _| boxed(cloop::Cloop::open(s, id))),
    (Format::Dmg, |s, id, _| boxed(dmg::Dmg::open(s, id))),
];

/// The driver of `format`, if vmdisk reads it as a container.
pub fn driver(format: Format) -> Option<Open> {
    DRIVERS
        .iter()
        .find(|(f, _)| *f == format)
        .map(|&(_, open)| open)
}

fn boxed<'a, I: Image + 'static>(opening: impl Future<Output = Result<I>> + 'a) -> Opening<'a> {
    Box::pin(async move { Ok(Box::new(opening.await?) as Box<dyn Image>) })
}
