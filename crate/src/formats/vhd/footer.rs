//! The hard disk footer (spec "Hard Disk Footer Format"): at the end of every VHD, with a copy
//! at offset 0 in dynamic and differencing disks. [`VhdFooter::parse`] is the one parser the
//! driver and detection share: it returns the footer and what is wrong with it, and each side
//! judges.

use super::SECTOR;
use crate::error::{Error, Result};
use crate::formats::common::bytes::whole_fields;
use crate::formats::common::layout::on_disk;
use crate::source::{Source, read_vec};
use core::mem::offset_of;
use zerocopy::byteorder::big_endian::{U16, U32, U64};

pub(super) const FOOTER_LEN: u64 = 512;
/// The geometry qemu treats as "size does not fit CHS": use the current size.
pub(super) const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;

on_disk! {
    /// The footer as stored (big-endian).
    #[derive(Clone, Copy)]
    pub(crate) struct VhdFooter: FOOTER_LEN {
        0 cookie: [u8; 8],
        8 features: U32,
        12 format_version: U32,
        16 data_offset: U64,
        24 timestamp: U32,
        28 creator_app: [u8; 4],
        32 creator_version: U32,
        36 creator_os: [u8; 4],
        40 original_size: U64,
        48 current_size: U64,
        56 cylinders: U16,
        58 heads: u8,
        59 sectors: u8,
        60 disk_type: U32,
        64 checksum: U32,
        68 uuid: [u8; 16],
        84 saved_state: u8,
        85 reserved: [u8; 427],
    }
}

/// What is wrong with a footer, in the order the driver checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FooterProblem {
    NoCookie,
    Checksum { stored: u32, computed: u32 },
    UnknownDiskType(u32),
}

impl FooterProblem {
    /// The driver's wording.
    pub(crate) fn message(self) -> String {
        match self {
            FooterProblem::NoCookie => "no VHD footer (conectix)".into(),
            FooterProblem::Checksum { stored, computed } => format!(
                "the VHD footer checksum is {stored:#010x} but its contents sum to {computed:#010x}"
            ),
            FooterProblem::UnknownDiskType(t) => format!("unknown VHD disk type {t}"),
        }
    }
}

/// The spec's checksum: one's complement of the byte sum, the checksum field counting as zero.
pub(crate) fn checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

impl VhdFooter {
    /// The footer in `b`: 512 bytes, 511 from an old Virtual PC, or fewer from a truncated
    /// file (whose missing fields read as zeros). The checksum covers the bytes of `b`.
    pub(crate) fn parse(b: &[u8]) -> (VhdFooter, Vec<FooterProblem>) {
        let f: VhdFooter = whole_fields(b);
        let mut problems = vec![];
        if &f.cookie != b"conectix" {
            problems.push(FooterProblem::NoCookie);
        }
        let computed = checksum(b, offset_of!(VhdFooter, checksum));
        if computed != f.checksum.get() {
            let stored = f.checksum.get();
            problems.push(FooterProblem::Checksum { stored, computed });
        }
        if f.disk_type().is_none() {
            problems.push(FooterProblem::UnknownDiskType(f.disk_type.get()));
        }
        (f, problems)
    }

    pub(crate) fn disk_type(&self) -> Option<DiskType> {
        match self.disk_type.get() {
            2 => Some(DiskType::Fixed),
            3 => Some(DiskType::Dynamic),
            4 => Some(DiskType::Differencing),
            _ => None,
        }
    }

    pub(crate) fn chs_sectors(&self) -> u64 {
        u64::from(self.cylinders.get()) * u64::from(self.heads) * u64::from(self.sectors)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

impl DiskType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// The hard disk footer (spec "Hard Disk Footer Format").
#[derive(Clone, Debug)]
pub(super) struct Footer {
    pub(super) data_offset: u64,
    pub(super) creator_app: [u8; 4],
    pub(super) creator_version: u32,
    pub(super) creator_os: [u8; 4],
    pub(super) original_size: u64,
    pub(super) current_size: u64,
    pub(super) cylinders: u16,
    pub(super) heads: u8,
    pub(super) sectors: u8,
    pub(super) disk_type: DiskType,
    pub(super) uuid: [u8; 16],
    pub(super) saved_state: bool,
}

impl Footer {
    /// Parse a footer (512 bytes, or 511 from an old Virtual PC). Err explains why it is unusable.
    pub(super) fn parse(b: &[u8]) -> std::result::Result<Footer, String> {
        if b.len() < 511 {
            return Err(FooterProblem::NoCookie.message());
        }
        let (f, problems) = VhdFooter::parse(b);
        if let Some(p) = problems.first() {
            return Err(p.message());
        }
        let disk_type = f
            .disk_type()
            .ok_or_else(|| FooterProblem::UnknownDiskType(f.disk_type.get()).message())?;
        Ok(Footer {
            data_offset: f.data_offset.get(),
            creator_app: f.creator_app,
            creator_version: f.creator_version.get(),
            creator_os: f.creator_os,
            original_size: f.original_size.get(),
            current_size: f.current_size.get(),
            cylinders: f.cylinders.get(),
            heads: f.heads,
            sectors: f.sectors,
            disk_type,
            uuid: f.uuid,
            saved_state: f.saved_state != 0,
        })
    }

    pub(super) fn chs_sectors(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors)
    }

    /// The virtual size qemu's vpc driver reports for this footer.
    pub(super) fn qemu_size(&self) -> u64 {
        let current = matches!(
            &self.creator_app,
            b"win " | b"qem2" | b"d2v " | b"CTXS" | b"tap\0"
        );
        let chs = self.chs_sectors();
        if current || chs == MAX_CHS_SECTORS {
            self.current_size
        } else {
            chs * SECTOR
        }
    }
}

pub(super) fn four_cc(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

/// Where the footer was found, and what was wrong with the other copy.
pub(super) struct FooterFound {
    pub(super) footer: Footer,
    /// Bytes the footer takes at the end of the file (512, 511, or 0 when it is missing).
    pub(super) tail_len: u64,
    pub(super) warning: Option<String>,
}

/// Read the footer of `src`: the one at the end, else the copy at offset 0.
pub(super) async fn read_footer(src: &dyn Source) -> Result<FooterFound> {
    let len = src.len();
    let mut tail_err = String::from("the file is shorter than a VHD footer");
    let mut tail_len = 0;
    for n in [FOOTER_LEN, FOOTER_LEN - 1] {
        if len < n {
            continue;
        }
        let b = read_vec(src, len - n, n, "VHD footer").await?;
        if &b[0..8] != b"conectix" {
            tail_err = "the VHD footer at the end of the file is missing".into();
            continue;
        }
        match Footer::parse(&b) {
            Ok(footer) => {
                return Ok(FooterFound {
                    footer,
                    tail_len: n,
                    warning: None,
                });
            }
            Err(e) => {
                tail_err = e;
                tail_len = n;
                break;
            }
        }
    }
    // The copy at offset 0 (dynamic and differencing disks only).
    if len >= FOOTER_LEN {
        let b = read_vec(src, 0, FOOTER_LEN, "VHD footer copy").await?;
        if let Ok(footer) = Footer::parse(&b)
            && footer.disk_type != DiskType::Fixed
        {
            return Ok(FooterFound {
                footer,
                tail_len,
                warning: Some(format!(
                    "{tail_err}; the copy of the footer at offset 0 was used instead"
                )),
            });
        }
    }
    Err(Error::corrupt(format!("{}: {tail_err}", src.name())))
}
