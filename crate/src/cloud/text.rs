//! The verdicts and the glance record as the CLI prints them: one line a target.

use super::Target;
use crate::report::Report;
use std::fmt::Write;

/// `clouds:` then `    openstack: accepted (declare ...)` / `    azure: refused: ...`, then
/// the glance line.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    if !r.clouds.is_empty() {
        let _ = writeln!(s, "clouds:");
    }
    for v in &r.clouds {
        let name = v.target.name();
        if v.accepted {
            let declare = match (&r.glance, v.target) {
                (Some(g), Target::Openstack) => format!(
                    " (declare disk_format={}, container_format={})",
                    g.disk_format, g.container_format
                ),
                _ => String::new(),
            };
            let _ = writeln!(s, "    {name}: accepted{declare}");
        } else {
            let why: Vec<_> = v
                .reasons
                .iter()
                .map(|x| format!("{} (fix: {})", x.message, x.fix))
                .collect();
            let _ = writeln!(s, "    {name}: refused: {}", why.join("; "));
        }
    }
    if let Some(g) = &r.glance {
        let _ = write!(
            s,
            "glance: disk_format={} container_format={} size={} virtual_size={} min_disk={}",
            g.disk_format, g.container_format, g.size, g.virtual_size, g.min_disk
        );
        if let (Some(md5), Some(algo), Some(value)) =
            (&g.checksum, g.os_hash_algo, &g.os_hash_value)
        {
            let _ = write!(
                s,
                " checksum={md5} os_hash_algo={algo} os_hash_value={value}"
            );
        }
        let _ = writeln!(s);
    } else if let Some(h) = &r.hashes {
        let _ = writeln!(
            s,
            "hashes: checksum={} os_hash_algo={} os_hash_value={}",
            h.checksum, h.os_hash_algo, h.os_hash_value
        );
    }
    s
}
