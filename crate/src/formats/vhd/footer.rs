//! The hard disk footer (spec "Hard Disk Footer Format"): at the end of every VHD, with a copy
//! at offset 0 in dynamic and differencing disks.

use super::SECTOR;
use crate::error::{Error, Result};
use crate::formats::common::bytes::{be16, be32, be64};
use crate::source::{Source, read_vec};

pub(super) const FOOTER_LEN: u64 = 512;
/// The geometry qemu treats as "size does not fit CHS": use the current size.
pub(super) const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;

/// The spec's checksum: one's complement of the byte sum, the checksum field counting as zero.
pub(super) fn checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

impl DiskType {
    pub(super) fn name(self) -> &'static str {
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
        if b.len() < 511 || &b[0..8] != b"conectix" {
            return Err("no VHD footer (conectix)".into());
        }
        let want = be32(b, 64);
        if checksum(b, 64) != want {
            return Err(format!(
                "the VHD footer checksum is {want:#010x} but its contents sum to {:#010x}",
                checksum(b, 64)
            ));
        }
        let disk_type = match be32(b, 60) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => return Err(format!("unknown VHD disk type {t}")),
        };
        Ok(Footer {
            data_offset: be64(b, 16),
            creator_app: b[28..32].try_into().expect("4"),
            creator_version: be32(b, 32),
            creator_os: b[36..40].try_into().expect("4"),
            original_size: be64(b, 40),
            current_size: be64(b, 48),
            cylinders: be16(b, 56),
            heads: b[58],
            sectors: b[59],
            disk_type,
            uuid: b[68..84].try_into().expect("16"),
            saved_state: b[84] != 0,
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
