//! The finding codes the core emits: stable names that dashboards, the page and tests match on,
//! each with a title and a plain-words explanation (the page shows them above the finding's own
//! message, which gives the specifics).

use serde::{Serialize, Serializer};

macro_rules! finding_codes {
    ($($variant:ident = $code:literal, $title:literal, $explanation:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingCode {
            $($variant,)*
        }

        impl FindingCode {
            /// Every code, in the order of this table.
            pub const ALL: &'static [FindingCode] = &[$(FindingCode::$variant,)*];

            /// The stable name (`backing-file`), as `info --json` prints it.
            pub fn code(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $code,)*
                }
            }

            /// A short title in plain words.
            pub fn title(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $title,)*
                }
            }

            /// What the finding means for the user, in plain words.
            pub fn explanation(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $explanation,)*
                }
            }
        }
    };
}

finding_codes! {
    BackingFile = "backing-file",
        "Depends on another file",
        "This image is an overlay: whatever it does not store itself is read from a second file, its backing file, found by a path written inside the image. A hypervisor or cloud would open that path on its own disk, which is how a crafted image reads files it should not. Choose the backing file together with the image to convert both into one standalone disk.";
    BackingFormat = "backing-format",
        "Backing file is not what the image says",
        "The image declares one format for its backing file, but the file supplied is another. A hypervisor trusting the declaration would read the backing file differently.";
    DataFile = "data-file",
        "Data kept in an external file",
        "The image keeps its data in a separate file named inside it. A hypervisor would open that file on the host, so the image can expose host files.";
    ExternalExtent = "external-extent",
        "Points to files or devices outside the image",
        "This VMDK reads parts of the disk from files or raw devices named by path. A hypervisor would open those paths on the host.";
    Encrypted = "encrypted",
        "Encrypted",
        "The contents are encrypted, so they cannot be checked or converted without the key.";
    UnknownFeature = "unknown-feature",
        "Uses features vmdisk does not know",
        "The image sets flags this tool does not understand. Other programs may read it differently, so its contents cannot be vouched for.";
    FormatMismatch = "format-mismatch",
        "Valid as several formats at once",
        "The file is a polyglot: it parses as more than one format. Different programs would see different disks, a known trick to slip content past upload checks.";
    Truncated = "truncated",
        "Cut short",
        "The file ends before the data it describes: an incomplete download or copy. Part of the disk is missing.";
    Corrupt = "corrupt",
        "Damaged structure",
        "The image's internal structure (its tables, or a compressed stream's data and checksums) is inconsistent or marked corrupt. Reading it may give wrong data.";
    UnsupportedFormat = "unsupported-format",
        "Format not readable yet",
        "vmdisk recognises this format but cannot read its contents yet, so it cannot convert it. The size and checks above still apply.";
    Dirty = "dirty",
        "Not closed cleanly",
        "The program writing this image stopped without closing it (a crash or power loss). Its metadata may need repair, for example with qemu-img check -r all.";
    UnalignedSize = "unaligned-size",
        "Size is not a whole number of sectors",
        "Raw disks must be a multiple of 512 bytes long; clouds refuse other sizes.";
    UnusedFile = "unused-file",
        "File not used",
        "One of the files you chose is not part of this image; it was ignored.";
    PartitionPastEnd = "partition-past-end",
        "Partition runs past the end",
        "The partition table describes space beyond the end of the file: the disk was truncated or shrunk.";
    MissingExtent = "missing-extent",
        "Part of the disk is missing",
        "The VMDK descriptor lists an extent file that was not chosen. Choose every file of the image together.";
    NoaccessExtent = "noaccess-extent",
        "Part of the disk is unreadable by design",
        "The VMDK marks an extent as not accessible; that part of the disk reads as zeros.";
    ExtentSize = "extent-size",
        "Extent size disagrees with the descriptor",
        "A VMDK extent holds a different amount of data than its descriptor says. Programs may disagree on the disk's contents.";
    ParentMismatch = "parent-mismatch",
        "Parent does not match",
        "This differencing image and the parent supplied do not fit together (different sizes or identities): the combined disk may be wrong.";
    ParentModified = "parent-modified",
        "Parent changed since this image was made",
        "The parent disk was modified after this differencing image was created, so the combined disk is probably not what the VM last saw.";
    SizeAmbiguous = "size-ambiguous",
        "Two possible disk sizes",
        "The image records its size in two ways that disagree. Different hypervisors pick different ones.";
    BareFilesystem = "bare-filesystem",
        "A filesystem, not a whole disk",
        "The file holds a single filesystem with no partition table or boot loader. It boots only as a cloud machine image with a separate kernel and ramdisk.";
    DirtyBitmap = "dirty-bitmap",
        "Carries change-tracking bitmaps",
        "The image holds dirty bitmaps used for incremental backups. They are not carried over by a conversion.";
    LogReplayed = "log-replayed",
        "Unfinished updates were applied",
        "The VHDX log held updates that were not yet applied to the file. vmdisk applied them in memory to read the disk; the file itself is unchanged.";
    OvaLayout = "ova-layout",
        "Unusual OVA layout",
        "The OVA archive does not put its descriptor first, as the OVF standard requires; some hypervisors refuse it.";
    UnsafeMemberName = "unsafe-member-name",
        "A name that escapes its folder",
        "A name inside the package (an archive member, or a file the descriptor points to) is an absolute path, climbs out with \"..\", is a URL or is a link, or two members share one name. vmdisk never follows such a name, but a tool unpacking the package might write or read files outside its folder, or use a different file than vmdisk did.";
    UnverifiedContent = "unverified-content",
        "Content not verified",
        "The appliance's checksums could not be checked against its contents, so tampering would go unnoticed.";
    MissingMember = "missing-member",
        "Part of the package is missing",
        "The package lacks a file it should hold: a disk its descriptor names, a machine image or a kernel. What is missing can be neither checked nor converted.";
    Manifest = "manifest",
        "Manifest and checksums",
        "A package's manifest (.mf) records a digest, a fingerprint, of each of its files. This note says what was checked against it, or why it could not be: no manifest, lines vmdisk cannot read, files it lists that the package does not hold. A compressed stream's own checksums are reported here too.";
    DigestMismatch = "digest-mismatch",
        "A file does not match the manifest",
        "The package's manifest records a digest of this file, and the file's digest is different: it was damaged in transfer or changed after the manifest was made. Do not use the package until you have a copy whose digests match.";
    Signed = "signed",
        "Signed",
        "The package carries a signature over its manifest (a .cert file), and vmdisk checked that it matches the certificate's key. The message names the signer. A browser has no list of authorities to vouch for certificates, so vmdisk cannot tell whether the signer is who the certificate claims: compare the name with who you expect the package from.";
    BadSignature = "bad-signature",
        "The signature does not match",
        "The package's signature does not verify over its manifest (or there is a certificate but no manifest for it to sign). The manifest or the certificate file was changed after signing: this is not the package that was signed.";
    SignedFileMismatch = "signed-file-mismatch",
        "The signature covers another file",
        "The .cert file signs a file other than this package's manifest, so it vouches for nothing in this package.";
    UnparsableCertFile = "unparsable-cert-file",
        "Signature file unreadable",
        "The package's .cert file does not start with the line vmdisk expects (a digest name, the manifest's name and the signature in hex), or is far too large to be one. The signature cannot be checked.";
    UnparsableCertificate = "unparsable-certificate",
        "Certificate unreadable",
        "The .cert file holds no readable X.509 certificate, so the signature cannot be checked.";
    UnsupportedDigest = "unsupported-digest",
        "Unknown signature digest",
        "The signature names a digest other than SHA-1, SHA-256, SHA-384 or SHA-512, so vmdisk cannot check it.";
    UnsupportedKey = "unsupported-key",
        "Signing key cannot be checked",
        "OVF signatures use RSA keys. This certificate's key is of another kind, or an RSA key of a size vmdisk does not accept, so the signature was not checked.";
    WeakDigest = "weak-digest",
        "Signed over SHA-1",
        "The signature is made over a SHA-1 digest, which a well-funded attacker can forge. A signature over SHA-256 (ovftool --shaAlgorithm=SHA256) is stronger.";
    WeakKey = "weak-key",
        "Weak signing key",
        "The signing key is RSA with fewer than 2048 bits; keys that short can be forged.";
    BadCertificateSignature = "bad-certificate-signature",
        "Certificate damaged",
        "The certificate names itself as its issuer, but its own signature does not verify with its key: it was damaged or edited after it was made.";
    CertificateExpired = "certificate-expired",
        "Signing certificate expired",
        "The certificate that signed the package is past its expiry date. The signature itself can still match; whether an expired signer is acceptable is your call.";
    CertificateNotYetValid = "certificate-not-yet-valid",
        "Signing certificate not valid yet",
        "The certificate's validity starts after today's date: either the certificate or this computer's clock is wrong.";
    CapacityMismatch = "capacity-mismatch",
        "The descriptor gives another disk size",
        "The OVF descriptor records a different capacity for this disk than the disk image itself holds. vmdisk uses the image's own size; a hypervisor importing the package may use the descriptor's and grow or cut the disk.";
    FormatLabel = "format-label",
        "Not the format the descriptor says",
        "The OVF descriptor labels this disk as one format, but its bytes are another (oVirt, for example, labels qcow2 disks as VMDK). vmdisk reads the bytes as what they are; an importer that trusts the label may refuse or misread the disk.";
    NameMismatch = "name-mismatch",
        "Named like something else",
        "A member of the tarball is named like one thing (a kernel, a ramdisk, a disk) but holds another. vmdisk goes by the content; a tool that goes by the name would use it wrongly.";
    NotADisk = "not-a-disk",
        "A boot file, not a disk",
        "This is a Linux kernel (AKI) or an initial ramdisk (ARI), not a disk image, so it is not converted. Upload it unchanged next to the machine image, with the image formats the message gives.";
    CompressedDisk = "compressed-disk",
        "Stored compressed",
        "This disk is inside a compressed stream, and its format must be read at random places, so its tables are checked in full only when it is converted: vmdisk first decompresses it into a temporary file in this site's private browser storage, deleted when the conversion ends.";
    OvfDanglingRef = "ovf-dangling-ref",
        "The descriptor refers to something it lacks",
        "An entry of the OVF descriptor points to another (a disk to its file, a hardware item to its disk or controller) that the descriptor does not contain. Importers may drop the disk or refuse the package.";
    OvfDuplicateId = "ovf-duplicate-id",
        "The descriptor reuses an id",
        "Two files, disks, virtual machines or hardware items in the OVF descriptor share one id, so what refers to it is ambiguous: importers may pick different ones.";
    OvfMissingAttribute = "ovf-missing-attribute",
        "A descriptor entry is incomplete",
        "An entry of the OVF descriptor lacks a required attribute: a file's id or path, a disk's id, a virtual machine's id. A disk without an id is skipped.";
    OvfMissingCapacity = "ovf-missing-capacity",
        "Disk size not given",
        "The OVF descriptor gives no usable capacity for a disk, so the disk image's own size is used.";
    OvfUnknownUnits = "ovf-unknown-units",
        "Unknown size units",
        "A size in the OVF descriptor is in units vmdisk does not know as a multiple of bytes, so that size is not used. Memory with no units is taken to be in MiB.";
    OvfSizeOverflow = "ovf-size-overflow",
        "Impossibly large size",
        "A size in the OVF descriptor, times its units, does not fit in 64 bits. It is ignored.";
    OvfBadValue = "ovf-bad-value",
        "Not a number",
        "A value of the OVF descriptor that must be a number (a size, a chunk size, a CPU count) is not one, and is ignored.";
    OvfNoVirtualSystem = "ovf-no-virtual-system",
        "No virtual machine described",
        "The OVF descriptor lists files and disks but describes no virtual machine, so an importer has no machine to create from it.";
    OvfNestingLimit = "ovf-nesting-limit",
        "Groups nested too deeply",
        "The descriptor nests groups of virtual machines deeper than vmdisk reads; what lies deeper was ignored.";
    OvfTooMany = "ovf-too-many",
        "Too many entries",
        "The OVF descriptor lists more files, disks, machines and devices than vmdisk reads; the rest were ignored.";
    OvfVersionMismatch = "ovf-version-mismatch",
        "OVF version and namespace disagree",
        "The descriptor's version number and the OVF namespace it is written in name different OVF versions. oVirt and virt-v2v exports do this; importers usually accept it.";
    OvfProblemsTruncated = "ovf-problems-truncated",
        "More descriptor problems",
        "The OVF descriptor has more problems than are listed here; the rest were counted, not shown.";
    UnsupportedChunk = "unsupported-chunk",
        "Data compressed in a way vmdisk cannot read",
        "Part of the disk is stored with a compression method vmdisk does not decode (for Apple disk images: LZFSE, LZMA or ADC chunks). The image is named, but its data cannot be converted; re-create it uncompressed, zlib- or bzip2-compressed (hdiutil convert -format UDRW, UDZO or UDBZ).";
    Unidentified = "unidentified",
        "Format not confirmed",
        "Nothing at the start of this file names a disk format, so it is treated as a raw disk; but some formats keep their only header at the end of the file (Apple DMG, a fixed VHD), and that end could not be read here. It may be one of them: decompress it and inspect the file itself.";
    ConvertBeforeUpload = "convert-before-upload",
        "Clouds do not take this format",
        "vmdisk reads this format and can convert it, but no cloud imports it: convert it (to raw, qcow2 or VHD, as the target asks) before uploading.";
}

impl FindingCode {
    pub fn from_code(code: &str) -> Option<FindingCode> {
        FindingCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for FindingCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for &c in FindingCode::ALL {
            assert!(seen.insert(c.code()), "{c} twice");
            assert!(
                c.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{c}"
            );
            assert!(!c.title().is_empty() && c.explanation().len() > 20, "{c}");
            assert_eq!(FindingCode::from_code(c.code()), Some(c));
        }
    }
}
