//! Compressed tarballs: UEC (a machine image with its kernel and ramdisk, as Ubuntu published
//! them for EC2 and OpenStack) and GCE image tarballs (one sparse `disk.raw`).
//!
//! The tar is walked inside the decompressed stream; each member is a window of that stream.
//! Its first bytes are kept while the walk passes, so it is identified by content without
//! decoding again, and a conversion that stops the walk at its disk reads on from there: the
//! stream is decoded once. Member roles follow `cloud-publish-tarball` (cloud-utils): a
//! `*vmlinuz*` kernel (or `*-loader` when there is none), an `*initrd*` ramdisk, the `*.img`
//! image; the content decides, a name that disagrees is a warning.

use super::compressed::{Compression, Stream};
use super::member::{Spans, Window};
use super::tar::{End, Kind, Member, Walk};
use super::{Disk, Options, Package, Role, unsafe_name, unsafe_name_finding};
use crate::error::Result;
use crate::extent::FileId;
use crate::finding_code::FindingCode;
use crate::probe::{self, Format, HEAD_LEN};
use crate::report::{Finding, Severity};
use crate::source::{ImageSet, Source};
use serde_json::{Value, json};
use std::rc::Rc;

/// Member bytes kept for identification: the probe's head.
const KEEP: u64 = HEAD_LEN;
/// Members identified by content at most (each keeps [`KEEP`] bytes).
const IDENTIFIED: usize = 16;

pub async fn open(
    set: &mut ImageSet,
    id: FileId,
    format: Format,
    opts: &Options,
) -> Result<Package> {
    let src = set.file(id).clone();
    let codec = Compression::of_source(&*src)
        .await?
        .unwrap_or(Compression::Gzip);
    let whole = Rc::new(Stream::new(src.name(), src.clone(), codec, None));
    let stream: Rc<dyn Source> = whole.clone();
    let mut pkg = Package::new(format);
    // Verifying reads the stream to its end: gzip's CRC covers the whole tarball.
    pkg.checks.streams.push(whole);
    pkg.details
        .insert("compression".into(), codec.name().into());
    let mut walk = Walk::new(&*stream);
    let mut listed = vec![];
    let mut names: Vec<String> = vec![];
    let mut stopped = false;
    while let Some(m) = walk.next().await? {
        if m.is_noise() {
            continue;
        }
        let mut entry = json!({"name": m.path, "size": m.size});
        if let Some(why) = unsafe_name(&m.path) {
            pkg.findings
                .push(unsafe_name_finding("the member", &m.path, why));
            listed.push(entry);
            continue;
        }
        match &m.kind {
            Kind::Symlink(to) | Kind::Hardlink(to) => {
                pkg.findings.push(link_finding(&m.path, to));
                listed.push(entry);
                continue;
            }
            Kind::Regular | Kind::Sparse { .. } => {}
            _ => continue,
        }
        if names.iter().any(|n| n == m.name()) {
            pkg.findings.push(Finding::new(
                FindingCode::UnsafeMemberName,
                Severity::Critical,
                format!(
                    "two members are named {}: tools disagree on which one they use",
                    m.name()
                ),
            ));
            continue;
        }
        names.push(m.name().to_string());
        let source = member_source(&stream, &m, pkg.disks.len() < IDENTIFIED).await?;
        let found = probe::probe(&*source).await.ok();
        let (role, mismatch) = role(format, &m, found.as_ref().map(|p| p.primary().format));
        if let Some(f) = mismatch {
            pkg.findings.push(f);
        }
        entry["role"] = role.name().into();
        if let Some(p) = &found {
            entry["format"] = p.primary().format.name().into();
        }
        if let Some((disk_format, container)) = glance(role) {
            entry["glance"] = json!({"disk_format": disk_format, "container_format": container});
        }
        listed.push(entry);
        let file = set.add(source);
        pkg.files.push((file, "member"));
        let mut disk = Disk::new(m.name(), role, Some(file));
        disk.compression = Some(codec);
        pkg.disks.push(disk);
        let wanted = match opts.disk {
            Some(n) => pkg.disks.len() == n + 1,
            None => matches!(role, Role::Ami) || (format == Format::Gce && role == Role::Disk),
        };
        if !opts.list_all && wanted {
            stopped = true;
            break;
        }
    }
    match &walk.end {
        Some(End::Truncated { at }) => pkg.findings.push(Finding::new(
            FindingCode::Truncated,
            Severity::Critical,
            format!(
                "the tar archive inside the {} stream is cut off at byte {at}",
                codec.name()
            ),
        )),
        Some(End::Bad { why, .. }) => pkg.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Critical,
            format!(
                "the tar archive inside the {} stream is damaged: {why}",
                codec.name()
            ),
        )),
        Some(End::TooMany) => pkg.findings.push(Finding::new(
            FindingCode::Corrupt,
            Severity::Warning,
            format!(
                "more than {} members: the rest were not examined",
                super::tar::MAX_MEMBERS
            ),
        )),
        _ => {}
    }
    pkg.details.insert("members".into(), Value::Array(listed));
    pkg.details
        .insert("all-members-seen".into(), (!stopped).into());
    if format == Format::Uec {
        uec_summary(&mut pkg);
    }
    Ok(pkg)
}

/// The member as a source: a window of the stream (its first bytes kept when `keep`), or for
/// an old-GNU sparse member its segments with zeros between them.
async fn member_source(stream: &Rc<dyn Source>, m: &Member, keep: bool) -> Result<Rc<dyn Source>> {
    if let Kind::Sparse { segments } = &m.kind {
        let spans = Spans::sparse(m.name(), stream, m.data, segments, m.size)?;
        return Ok(Rc::new(spans));
    }
    let mut w = Window::new(m.name(), stream.clone(), m.data, m.size);
    if keep && m.size > 0 {
        let mut head = vec![0u8; m.size.min(KEEP) as usize];
        stream.read_at(m.data, &mut head).await?;
        w = w.with_head(head.into());
    }
    Ok(Rc::new(w))
}

fn link_finding(path: &str, to: &str) -> Finding {
    Finding::new(
        FindingCode::UnsafeMemberName,
        Severity::Critical,
        format!(
            "the member {path:?} is a link to {to:?}: extracting tools follow links out of their folder, vmdisk ignores it"
        ),
    )
}

/// A member's role: what its content is, else what its name says. A name that promises
/// something else than the content is a warning.
fn role(package: Format, m: &Member, content: Option<Format>) -> (Role, Option<Finding>) {
    let name = m.name().to_ascii_lowercase();
    let by_name = if package == Format::Gce {
        (name == "disk.raw").then_some(Role::Disk)
    } else if name.contains("vmlinuz") || name.ends_with("-loader") {
        Some(Role::Aki)
    } else if name.contains("initrd") {
        Some(Role::Ari)
    } else if name.ends_with(".img") {
        Some(Role::Ami)
    } else {
        None
    };
    let by_content = match content {
        Some(Format::Aki) => Some(Role::Aki),
        Some(Format::Ari) => Some(Role::Ari),
        Some(Format::Ami) => Some(Role::Ami),
        Some(f) if package == Format::Gce && !f.is_raw_content() => Some(Role::Other),
        _ => None,
    };
    let role = by_content.or(by_name).unwrap_or(Role::Other);
    let mismatch = match (by_name, by_content) {
        (Some(n), Some(c)) if n != c && !(n == Role::Ami && package == Format::Uec) => {
            Some(Finding::new(
                FindingCode::NameMismatch,
                Severity::Warning,
                format!(
                    "{} is named like {} but holds {}: it is treated as {}",
                    m.name(),
                    describe(n),
                    describe(c),
                    describe(c)
                ),
            ))
        }
        _ => None,
    };
    (role, mismatch)
}

fn describe(r: Role) -> &'static str {
    match r {
        Role::Aki => "a kernel (AKI)",
        Role::Ari => "a ramdisk (ARI)",
        Role::Ami => "a machine image (AMI)",
        Role::Disk => "a disk",
        Role::Other => "something else",
    }
}

/// The glance `disk_format` and `container_format` a member is uploaded with.
fn glance(role: Role) -> Option<(&'static str, &'static str)> {
    match role {
        Role::Ami => Some(("ami", "ami")),
        Role::Aki => Some(("aki", "aki")),
        Role::Ari => Some(("ari", "ari")),
        Role::Disk => Some(("raw", "bare")),
        Role::Other => None,
    }
}

/// Name the image, kernel and ramdisk, and say how they are registered.
fn uec_summary(pkg: &mut Package) {
    let first = |r: Role| {
        pkg.disks
            .iter()
            .find(|d| d.role == r)
            .map(|d| d.name.clone())
    };
    let (image, kernel, ramdisk) = (first(Role::Ami), first(Role::Aki), first(Role::Ari));
    for (key, value) in [
        ("image", &image),
        ("kernel", &kernel),
        ("ramdisk", &ramdisk),
    ] {
        if let Some(v) = value {
            pkg.details.insert(key.into(), v.as_str().into());
        }
    }
    let mut steps = vec![];
    if let Some(k) = &kernel {
        steps.push(format!(
            "upload {k} with disk_format=aki container_format=aki"
        ));
    }
    if let Some(r) = &ramdisk {
        steps.push(format!(
            "upload {r} with disk_format=ari container_format=ari"
        ));
    }
    if let Some(i) = &image {
        let mut props = vec![];
        if kernel.is_some() {
            props.push("kernel_id=<the kernel's image id>");
        }
        if ramdisk.is_some() {
            props.push("ramdisk_id=<the ramdisk's image id>");
        }
        steps.push(format!(
            "upload {i} with disk_format=ami container_format=ami{}{}",
            if props.is_empty() {
                ""
            } else {
                " and the properties "
            },
            props.join(" ")
        ));
    }
    pkg.details.insert("register".into(), json!(steps));
    if image.is_none() {
        pkg.findings.push(Finding::new(
            FindingCode::MissingMember,
            Severity::Critical,
            "the tarball holds no machine image (AMI): nothing in it can boot",
        ));
    }
    if kernel.is_none() && image.is_some() {
        pkg.findings.push(Finding::new(
            FindingCode::MissingMember,
            Severity::Warning,
            "the tarball holds no kernel (AKI): the machine image must boot by itself",
        ));
    }
}
