//! Running `vmdisk check --json` and `qemu-img check --output=json` on one image and
//! comparing what they found.

use crate::common::{path, run, vmdisk_bin};
use serde_json::Value;
use std::path::Path;

/// One tool's verdict: the JSON object (Null when it printed none) and the exit status.
pub struct Verdict {
    pub json: Value,
    pub code: i32,
}

impl Verdict {
    /// A counter, 0 when left out (both tools leave zero counters out).
    pub fn count(&self, key: &str) -> u64 {
        self.json.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

fn verdict(cmd: &str, args: &[&str], dir: &Path) -> Verdict {
    let out = run(cmd, args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{cmd} panicked: {stderr}");
    Verdict {
        json: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        code: out.status.code().expect("an exit status"),
    }
}

pub fn qemu(dir: &Path, name: &str) -> Verdict {
    verdict("qemu-img", &["check", "--output=json", name], dir)
}

pub fn ours(dir: &Path, name: &str) -> Verdict {
    assert!(path(dir, name).exists());
    verdict(vmdisk_bin(), &["check", "--json", name], dir)
}

/// Both tools agree on the exit status, and on the corruption and leak counts when qemu-img
/// could open the image; returns (qemu's, ours) for more assertions.
pub fn agree(dir: &Path, name: &str) -> (Verdict, Verdict) {
    let (q, v) = (qemu(dir, name), ours(dir, name));
    let show = || {
        format!(
            "{name}: qemu-img {} {}, vmdisk {} {}",
            q.code, q.json, v.code, v.json
        )
    };
    assert_eq!(q.code, v.code, "{}", show());
    if !q.json.is_null() {
        for key in ["corruptions", "leaks"] {
            assert_eq!(q.count(key), v.count(key), "{key}: {}", show());
        }
    }
    (q, v)
}

/// Both agree the image is clean, and on every statistic qemu-img gives.
pub fn agree_clean(dir: &Path, name: &str) {
    let (q, v) = agree(dir, name);
    assert_eq!(q.code, 0, "{name} should be clean: {}", q.json);
    for key in [
        "check-errors",
        "image-end-offset",
        "total-clusters",
        "allocated-clusters",
        "fragmented-clusters",
        "compressed-clusters",
    ] {
        assert_eq!(
            q.count(key),
            v.count(key),
            "{name} {key}: {} vs {}",
            q.json,
            v.json
        );
    }
    assert_eq!(v.json["format"], q.json["format"]);
    assert_eq!(v.json["problems"], serde_json::json!([]));
}
