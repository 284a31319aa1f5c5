//! The formats vmdisk names: what detection finds and what the drivers read.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Qcow2,
    Qcow,
    Qed,
    Vmdk,
    Vdi,
    Vhd,
    Vhdx,
    Parallels,
    Luks,
    Iso,
    Ova,
    /// A bare Linux root filesystem (EC2 machine image): boots only with an AKI and ARI.
    Ami,
    /// A Linux kernel (bzImage).
    Aki,
    /// An initrd / initramfs.
    Ari,
    /// A gzipped tarball holding AMI + AKI + ARI (Ubuntu UEC).
    Uec,
    /// An unpacked OVF package: the `.ovf` descriptor, picked with its files.
    Ovf,
    /// A Google Compute Engine image tarball: a gzipped tar of one `disk.raw`.
    Gce,
    /// One image compressed with gzip, xz or zstd (`disk.qcow2.xz`, `disk.raw.gz`).
    Compressed,
    /// A Bochs growing (sparse redolog) image.
    Bochs,
    /// A cloop compressed loop image (v2.0 layout).
    Cloop,
    /// An Apple disk image (UDIF: `koly` trailer, XML plist of `mish` block tables).
    Dmg,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Qed => "qed",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Parallels => "parallels",
            Format::Luks => "luks",
            Format::Iso => "iso",
            Format::Ova => "ova",
            Format::Ami => "ami",
            Format::Aki => "aki",
            Format::Ari => "ari",
            Format::Uec => "uec",
            Format::Ovf => "ovf",
            Format::Gce => "gce",
            Format::Compressed => "compressed",
            Format::Bochs => "bochs",
            Format::Cloop => "cloop",
            Format::Dmg => "dmg",
        }
    }

    /// Formats whose bytes are the guest disk itself, read as raw.
    pub fn is_raw_content(self) -> bool {
        matches!(
            self,
            Format::Raw | Format::Iso | Format::Ami | Format::Aki | Format::Ari
        )
    }

    /// Formats that take part in the polyglot rule: everything but the raw content descriptors.
    pub fn is_container(self) -> bool {
        !matches!(self, Format::Raw | Format::Ami | Format::Aki | Format::Ari)
    }
}
