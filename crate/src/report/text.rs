//! The text `vmdisk info` prints: the report in qemu-img info's manner, then the findings and
//! the cloud verdicts.

use super::Report;

impl Report {
    /// The report as `vmdisk info` prints it without `--json` (in qemu-img info's manner).
    pub fn text(&self) -> String {
        let r = self;
        use std::fmt::Write;
        let mut s = String::new();
        let main = r
            .files
            .iter()
            .find(|f| matches!(f.role.as_str(), "image" | "package" | "descriptor"))
            .map_or("?", |f| f.name.as_str());
        let _ = writeln!(s, "image: {main}");
        let _ = writeln!(s, "file format: {}", r.format);
        if r.detected.len() > 1 {
            let all: Vec<_> = r.detected.iter().map(|f| f.name()).collect();
            let _ = writeln!(s, "also detected: {}", all[1..].join(", "));
        }
        let _ = writeln!(
            s,
            "virtual size: {} ({} bytes)",
            size(r.virtual_size),
            r.virtual_size
        );
        let _ = writeln!(s, "disk size: {}", size(r.actual_size));
        if let serde_json::Value::Object(m) = &r.format_specific
            && !m.is_empty()
        {
            let _ = writeln!(s, "format specific information:");
            for (k, v) in m {
                let v = match v {
                    serde_json::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(s, "    {k}: {v}");
            }
        }
        if let Some(table) = r.guest.as_ref().and_then(|g| g["partition-table"].as_str()) {
            let count = r
                .guest
                .as_ref()
                .and_then(|g| g["partitions"].as_array())
                .map_or(0, Vec::len);
            let _ = writeln!(s, "guest partition table: {table} ({count} partitions)");
        }
        for (i, d) in r.disks.iter().enumerate() {
            let format = d.format.map_or("?", |f| f.name());
            let size = d.virtual_size.map_or("?".to_string(), size);
            let _ = write!(
                s,
                "disk {}: {} ({}, {format}, {size})",
                i + 1,
                d.name,
                d.role
            );
            match &d.error {
                Some(e) => {
                    let _ = writeln!(s, ": {e}");
                }
                None => {
                    let _ = writeln!(s);
                }
            }
        }
        for f in &r.files {
            if !matches!(f.role.as_str(), "image" | "package") {
                let _ = writeln!(s, "{}: {} ({})", f.role, f.name, size(f.size));
            }
        }
        let _ = writeln!(
            s,
            "convertible: {}",
            if r.convertible { "yes" } else { "no" }
        );
        let _ = writeln!(
            s,
            "safety: {}",
            if r.safety.safe { "safe" } else { "UNSAFE" }
        );
        for f in &r.safety.findings {
            let _ = writeln!(
                s,
                "    [{}] {}: {}",
                serde_json::to_value(f.severity)
                    .unwrap()
                    .as_str()
                    .unwrap_or(""),
                f.code,
                f.message
            );
        }
        s.push_str(&crate::cloud::text(r));
        s
    }
}

/// A byte count in the largest binary unit, as qemu-img prints sizes.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", UNITS[u]).replace(".000 ", " ")
    }
}
