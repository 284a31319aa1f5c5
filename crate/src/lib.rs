//! vmdisk: inspect, validate and convert virtual machine disk images.
//!
//! One core for three hosts (native CLI, browser worker, node). Format code reads through
//! [`Source`] and writes through [`Sink`]; it never touches files, threads or clocks itself.
//!
//! The flow: [`probe`] names what a file is, a format driver ([`formats`]) parses and validates
//! it into an [`Image`] that maps guest ranges to file ranges ([`Extent`]), [`inspect`] turns that
//! into a [`Report`], and [`engine::convert`] copies any image through a [`writer`].

#![deny(unsafe_code)]

pub mod chain;
pub mod check;
pub mod cloud;
pub mod codec;
pub mod compose;
pub mod engine;
pub mod error;
pub mod extent;
pub mod finding_code;
pub mod format;
pub mod formats;
pub mod glance;
pub mod image;
pub mod inspect;
pub mod package;
pub mod probe;
pub mod report;
pub mod sink;
pub mod source;
pub mod writer;
pub mod zero;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, ErrorKind, Result};

/// Give the host its turn during long synchronous work (decoding a stream): in a browser
/// worker, the messages waiting (a cancel) are handled; natively, nothing happens.
pub async fn yield_now() {
    #[cfg(target_arch = "wasm32")]
    wasm::yield_now().await;
}
pub use extent::{Extent, FileId, Mapping};
pub use finding_code::FindingCode;
pub use image::{Image, OpenedImage, inspect, open};
pub use inspect::inspect_guest;
pub use probe::Format;
pub use report::{Finding, Report, Severity};
pub use sink::Sink;
pub use source::{ImageSet, Source};
