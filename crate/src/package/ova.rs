//! OVF packages: an OVA (a tar of the descriptor, its disks, a manifest and a certificate) and
//! an unpacked OVF (the `.ovf` picked together with those files). Both are one driver: only
//! where the files come from differs (the tar's members, or the picked files by name).
//!
//! Each `Disk` of the descriptor leads through its `ovf:fileRef` to a `File`: its `href` names
//! a member (or, with `ovf:chunkSize`, the members `href.000000000`, `href.000000001`, ...
//! concatenated), stored as is or with `ovf:compression="gzip"`. The disk's format is sniffed
//! from its bytes, never taken from the descriptor: oVirt labels qcow2 and raw disks as sparse
//! VMDK, Oracle VM writes file sizes as capacities.
//!
//! Spec: DMTF DSP0243 (OVF 1.1 and 2.1); VirtualBox's and ovftool's exports for practice
//! (VirtualBox writes the manifest last; ovftool may sign the manifest).

use super::compressed::{Compression, Stream};
use super::manifest::{self, MAX_MANIFEST};
use super::member::{Part, Spans, Window};
use super::ovf::{self, AttachTo, Envelope};
use super::tar::{self, End, Kind};
use super::verify::DigestCheck;
use super::{Disk, Options, OvfDisk, Package, Role, unsafe_name, unsafe_name_finding};
use crate::error::{Error, Result};
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::format::Format;
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source, base_name, read_vec};
use serde_json::{Value, json};
use std::rc::Rc;

/// Chunks of one chunked file followed at most.
const MAX_CHUNKS: usize = 100_000;

/// The files a package holds, by the names its descriptor and manifest use.
struct Files {
    /// `(name, file)`: tar member paths for an OVA, picked file names for an OVF.
    by_name: Vec<(String, FileId)>,
}

impl Files {
    fn find(&self, name: &str) -> Option<FileId> {
        let name = name.strip_prefix("./").unwrap_or(name);
        self.by_name
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| {
                self.by_name
                    .iter()
                    .find(|(n, _)| base_name(n) == base_name(name))
            })
            .map(|&(_, id)| id)
    }
}

pub async fn open_ova(set: &mut ImageSet, id: FileId, opts: &Options) -> Result<Package> {
    let src = set.file(id).clone();
    let listing = tar::list(&*src).await?;
    let mut pkg = Package::new(Format::Ova);
    match &listing.end {
        End::Complete => {}
        End::Truncated { at } => pkg.findings.push(Finding::new(
            FindingCode::Truncated,
            Severity::Critical,
            format!("the OVA is cut off: its tar archive ends early (at byte {at} of the file)"),
        )),
        End::Bad { why, .. } => pkg.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("the OVA's tar archive is damaged: {why}"),
        )),
        End::TooMany => pkg.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Warning,
            format!(
                "more than {} members: the rest were not examined",
                tar::MAX_MEMBERS
            ),
        )),
    }
    let mut files = Files { by_name: vec![] };
    let mut listed = vec![];
    let mut order = vec![];
    for m in listing.members.iter().filter(|m| !m.is_noise()) {
        let mut entry = json!({"name": m.path, "size": m.size, "offset": m.data});
        order.push(m.path.clone());
        if let Some(why) = unsafe_name(&m.path) {
            pkg.findings
                .push(unsafe_name_finding("the member", &m.path, why));
        } else if let Kind::Symlink(to) | Kind::Hardlink(to) = &m.kind {
            entry["type"] = "link".into();
            pkg.findings.push(Finding::new(
                FindingCode::UnsafeMemberName,
                Severity::Critical,
                format!("the member {:?} is a link to {to:?}: extracting tools follow links out of their folder, vmdisk ignores it", m.path),
            ));
        } else if files.by_name.iter().any(|(n, _)| n == &m.path) {
            pkg.findings.push(Finding::new(
                FindingCode::UnsafeMemberName,
                Severity::Critical,
                format!("two members are named {:?}: tools disagree on which one they use; vmdisk uses the first", m.path),
            ));
        } else if m.is_file() && m.data.checked_add(m.stored).is_some_and(|e| e <= src.len()) {
            let source: Rc<dyn Source> = match &m.kind {
                Kind::Sparse { segments } => {
                    Rc::new(Spans::sparse(m.name(), &src, m.data, segments, m.size)?)
                }
                _ => Rc::new(Window::new(m.name(), src.clone(), m.data, m.size)),
            };
            let file = set.add(source);
            pkg.files.push((file, "member"));
            files.by_name.push((m.path.clone(), file));
        }
        listed.push(entry);
    }
    pkg.details
        .insert("member-count".into(), listed.len().into());
    pkg.details.insert("members".into(), Value::Array(listed));
    let Some((ovf_name, ovf_file)) = files
        .by_name
        .iter()
        .find(|(n, _)| n.to_ascii_lowercase().ends_with(".ovf"))
        .cloned()
    else {
        return Err(Error::not_an_image(format!(
            "{} is a tar archive without a readable .ovf descriptor, so not an OVA",
            src.name()
        )));
    };
    if order.first() != Some(&ovf_name) {
        pkg.findings.push(Finding::new(
            FindingCode::OvaLayout,
            Severity::Warning,
            "the .ovf descriptor is not the first member of the OVA, as the OVF specification requires (VMware refuses such files)",
        ));
    }
    describe(set, &mut pkg, &files, &ovf_name, ovf_file, opts).await?;
    Ok(pkg)
}

/// An unpacked OVF: the descriptor names its files, found among the picked files by name.
pub async fn open_ovf(set: &mut ImageSet, id: FileId, opts: &Options) -> Result<Package> {
    let mut pkg = Package::new(Format::Ovf);
    let files = Files {
        by_name: set
            .picked()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().to_string(), FileId(i)))
            .collect(),
    };
    let name = set.file(id).name().to_string();
    describe(set, &mut pkg, &files, &name, id, opts).await?;
    Ok(pkg)
}

/// Read the descriptor, the manifest and the certificate, and lay out every disk.
async fn describe(
    set: &mut ImageSet,
    pkg: &mut Package,
    files: &Files,
    ovf_name: &str,
    ovf_file: FileId,
    opts: &Options,
) -> Result<()> {
    let ovf_src = set.file(ovf_file).clone();
    if ovf_src.len() > ovf::MAX_DESCRIPTOR_BYTES as u64 {
        return Err(Error::unsupported(format!(
            "the OVF descriptor {ovf_name} is {} bytes, more than vmdisk reads ({} MiB)",
            ovf_src.len(),
            ovf::MAX_DESCRIPTOR_BYTES >> 20
        )));
    }
    let xml = read_vec(&*ovf_src, 0, ovf_src.len(), "OVF descriptor").await?;
    let env = ovf::parse(&xml)?;
    pkg.files.push((ovf_file, "descriptor"));
    pkg.details.insert("ovf".into(), ovf_name.into());
    pkg.details
        .insert("ovf-version".into(), env.version.as_str().into());
    pkg.findings.extend(env.problems.iter().cloned());
    pkg.details.insert("virtual-systems".into(), systems(&env));
    let stem = ovf_name
        .get(..ovf_name.len().saturating_sub(4))
        .unwrap_or(ovf_name);
    let manifest = manifest_check(set, pkg, files, stem).await?;
    signature_check(set, pkg, files, stem, manifest, opts).await?;
    for d in &env.disks {
        let disk = lay_out(set, pkg, files, &env, d).await?;
        pkg.disks.push(disk);
    }
    if env.disks.is_empty() {
        pkg.findings.push(Finding::new(
            FindingCode::MissingMember,
            Severity::Warning,
            "the OVF descriptor declares no disk",
        ));
    }
    Ok(())
}

/// The VMs as the report lists them: name, OS, CPUs, memory, disks with their controllers, NICs.
fn systems(env: &Envelope) -> Value {
    Value::Array(
        env.systems
            .iter()
            .map(|vs| serde_json::to_value(vs).unwrap_or(Value::Null))
            .collect(),
    )
}

/// Parse `<stem>.mf` (or the only `.mf`) and queue its digests; returns the manifest's file
/// and name.
async fn manifest_check(
    set: &ImageSet,
    pkg: &mut Package,
    files: &Files,
    stem: &str,
) -> Result<Option<(FileId, String)>> {
    let named = format!("{stem}.mf");
    let mfs: Vec<&(String, FileId)> = files
        .by_name
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().ends_with(".mf"))
        .collect();
    let found = files
        .find(&named)
        .map(|id| (id, named.clone()))
        .or_else(|| (mfs.len() == 1).then(|| (mfs[0].1, mfs[0].0.clone())));
    let Some((mf, mf_name)) = found else {
        pkg.findings.push(Finding::new(
            FindingCode::Manifest,
            Severity::Info,
            "no manifest (.mf): the package's files cannot be checked for damage",
        ));
        return Ok(None);
    };
    let src = set.file(mf).clone();
    if src.len() > MAX_MANIFEST {
        pkg.findings.push(Finding::new(
            FindingCode::Manifest,
            Severity::Warning,
            format!(
                "the manifest {mf_name} is larger than {} KiB: not read",
                MAX_MANIFEST >> 10
            ),
        ));
        return Ok(None);
    }
    pkg.files.push((mf, "manifest"));
    pkg.details
        .insert("manifest".into(), mf_name.as_str().into());
    let parsed = manifest::parse(&read_vec(&*src, 0, src.len(), "manifest").await?);
    if !parsed.bad_lines.is_empty() {
        pkg.findings.push(Finding::new(
            FindingCode::Manifest,
            Severity::Warning,
            format!(
                "lines {:?} of the manifest are not digests vmdisk reads",
                parsed.bad_lines
            ),
        ));
    }
    for e in parsed.entries {
        match files.find(&e.file) {
            Some(file) => pkg.checks.digests.push(DigestCheck {
                name: e.file,
                file,
                algorithm: e.algorithm,
                expected: e.digest,
            }),
            None => pkg.findings.push(Finding::new(
                FindingCode::Manifest,
                Severity::Warning,
                format!(
                    "the manifest lists {} but the package does not hold it",
                    e.file
                ),
            )),
        }
    }
    Ok(Some((mf, mf_name)))
}

/// Check `<stem>.cert` against the manifest, when there is one.
async fn signature_check(
    set: &ImageSet,
    pkg: &mut Package,
    files: &Files,
    stem: &str,
    manifest: Option<(FileId, String)>,
    opts: &Options,
) -> Result<()> {
    let Some(cert) = files.find(&format!("{stem}.cert")) else {
        return Ok(());
    };
    pkg.files.push((cert, "certificate"));
    let Some((mf, mf_name)) = manifest else {
        pkg.findings.push(Finding::new(
            FindingCode::BadSignature,
            Severity::Critical,
            "the package has a certificate but no manifest for it to sign",
        ));
        return Ok(());
    };
    let cert_src = set.file(cert).clone();
    let cert_bytes = if cert_src.len() > super::cert::MAX_CERT_FILE as u64 {
        vec![]
    } else {
        read_vec(&*cert_src, 0, cert_src.len(), "certificate").await?
    };
    let mf_src = set.file(mf).clone();
    let mf_bytes = read_vec(&*mf_src, 0, mf_src.len(), "manifest").await?;
    let sig = super::cert::verify(&cert_bytes, &mf_bytes, base_name(&mf_name), opts.now);
    pkg.findings.extend(sig.findings.iter().cloned());
    pkg.details.insert(
        "signature".into(),
        serde_json::to_value(&sig).unwrap_or(Value::Null),
    );
    Ok(())
}

/// One Disk of the descriptor: its member source (joined into the set), what the descriptor
/// says of it, or why it cannot be read.
async fn lay_out(
    set: &mut ImageSet,
    pkg: &mut Package,
    files: &Files,
    env: &Envelope,
    d: &ovf::DiskDef,
) -> Result<Disk> {
    let file_ref = d
        .file_ref
        .as_ref()
        .and_then(|r| env.files.iter().find(|f| &f.id == r));
    let name = file_ref.map_or(d.id.clone(), |f| f.href.clone());
    let mut disk = Disk::new(name.clone(), Role::Disk, None);
    disk.ovf = Some(ovf_disk(env, d));
    let Some(f) = file_ref else {
        disk.problem = Some(Error::missing(format!(
            "the OVF disk {} refers to no file (an empty disk the VM creates)",
            d.id
        )));
        return Ok(disk);
    };
    if let Some(why) = unsafe_name(&f.href) {
        pkg.findings
            .push(unsafe_name_finding("the OVF href", &f.href, why));
        disk.problem = Some(Error::invalid(format!("the href {:?} {why}", f.href)));
        return Ok(disk);
    }
    let source = match f.chunk_size {
        Some(_) => chunks(set, files, &f.href)?,
        None => files
            .find(&f.href)
            .map(|id| (set.file(id).clone(), vec![id])),
    };
    let Some((source, members)) = source else {
        pkg.findings.push(Finding::new(
            FindingCode::MissingMember,
            Severity::Critical,
            format!("the disk {} is not in the package", f.href),
        ));
        disk.problem = Some(Error::missing(format!("{} is not in the package", f.href)));
        return Ok(disk);
    };
    if let Some(size) = f.size
        && size != source.len()
    {
        disk.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Warning,
            format!(
                "the descriptor says {} holds {size} bytes, the package holds {}",
                f.href,
                source.len()
            ),
        ));
    }
    // The disk is its one member as it is, or a new source over its chunks or compression.
    let mut file = match (members.as_slice(), f.chunk_size) {
        ([one], None) => *one,
        _ => set.add(source.clone()),
    };
    match f.compression.as_deref() {
        None | Some("identity") => {}
        Some("gzip") => {
            let stream = Rc::new(Stream::new(
                base_name(&f.href),
                source.clone(),
                Compression::Gzip,
                None,
            ));
            disk.compression = Some(Compression::Gzip);
            disk.stream = Some(stream.clone());
            pkg.checks.streams.push(stream.clone());
            file = set.add(stream);
        }
        Some(other) => {
            disk.problem = Some(Error::unsupported(format!(
                "{} is compressed with {other:?}, which the OVF specification does not define",
                f.href
            )));
            return Ok(disk);
        }
    }
    pkg.files.push((file, "disk"));
    disk.file = Some(file);
    disk.members = members;
    Ok(disk)
}

/// A disk's source and the members it is made of.
type Joined = (Rc<dyn Source>, Vec<FileId>);

/// The members `href.000000000`, `href.000000001`, ... concatenated (DSP0243 chunking).
fn chunks(set: &ImageSet, files: &Files, href: &str) -> Result<Option<Joined>> {
    let mut parts = vec![];
    let mut ids = vec![];
    for i in 0..MAX_CHUNKS {
        let Some(id) = files.find(&format!("{href}.{i:09}")) else {
            break;
        };
        let src = set.file(id).clone();
        parts.push((src.len(), Part::Bytes { src, offset: 0 }));
        ids.push(id);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some((Rc::new(Spans::new(base_name(href), parts)?), ids)))
}

/// What the descriptor says of a disk: its capacity, which VM uses it on which controller.
fn ovf_disk(env: &Envelope, d: &ovf::DiskDef) -> OvfDisk {
    let mut out = OvfDisk {
        capacity: d.capacity,
        declared_format: d.format.clone(),
        ..OvfDisk::default()
    };
    for vs in &env.systems {
        if let Some(a) = vs
            .disks
            .iter()
            .find(|a| a.target == AttachTo::Disk && a.disk_id == d.id)
        {
            out.vm = vs.name.clone().or_else(|| Some(vs.id.clone()));
            out.controller = a.controller.as_ref().map(|c| {
                let mut s = c.kind.clone();
                if let Some(m) = &c.model {
                    s = format!("{s} ({m})");
                }
                if let Some(i) = c.index {
                    s = format!("{s} {i}");
                }
                if let Some(p) = a.address_on_parent {
                    s = format!("{s}, slot {p}");
                }
                s
            });
            break;
        }
    }
    out
}

/// After the disk was opened: does the descriptor agree with its bytes? A disagreeing format
/// label or capacity is a warning; the disk's own header wins.
pub fn check_disk(disk: &mut Disk, format: Format, virtual_size: u64) {
    let Some(o) = &disk.ovf else {
        return;
    };
    if let Some(label) = &o.declared_format
        && let Some(says) = label_format(label)
        && says != format
    {
        disk.findings.push(Finding::new(
            FindingCode::FormatLabel,
            Severity::Warning,
            format!(
                "the descriptor labels {} as {says} ({label}) but its bytes are {format}: vmdisk reads it as {format}",
                disk.name
            ),
        ));
    }
    if let Some(cap) = o.capacity
        && cap != virtual_size
    {
        disk.findings.push(Finding::new(
            FindingCode::CapacityMismatch,
            Severity::Warning,
            format!(
                "the descriptor gives {} a capacity of {cap} bytes but the disk holds {virtual_size}: the disk's own size is used",
                disk.name
            ),
        ));
    }
}

/// The format an `ovf:format` URI names, when it names one.
fn label_format(uri: &str) -> Option<Format> {
    let u = uri.to_ascii_lowercase();
    // First match wins: "vhdx" before "vhd".
    [
        ("vmdk", Format::Vmdk),
        ("qcow", Format::Qcow2),
        ("vhdx", Format::Vhdx),
        ("vhd", Format::Vhd),
        ("vdi", Format::Vdi),
        ("raw", Format::Raw),
    ]
    .into_iter()
    .find(|(word, _)| u.contains(word))
    .map(|(_, format)| format)
}
