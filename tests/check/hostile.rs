//! Damaged copies of every format the check reads itself: random bytes changed in the
//! metadata, and cuts at random lengths. The check must end with a verdict (exit 0, 2 or 3
//! with a JSON object) or a clean failure (exit 1), never a panic or a hang.

use crate::common::{Rng, path, qemu_img_line, qemu_io, run, scratch, vmdisk_bin};
use std::path::Path;

fn verdict_is_sound(dir: &Path, name: &str) -> i32 {
    let out = run(vmdisk_bin(), &["check", "--json", name], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    let code = out.status.code().expect("exited");
    assert!(matches!(code, 0..=3), "{name}: exit {code}: {stderr}");
    if code != 1 {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(json["check-errors"].is_u64(), "{json}");
    }
    code
}

#[test]
fn damaged_metadata_never_panics() {
    let dir = &scratch();
    qemu_img_line("create -q -f qcow2 -o cluster_size=4k q.qcow2 8M", dir);
    qemu_io(
        "q.qcow2",
        &["write -P 0x11 0 300k", "write -P 0x12 5M 64k"],
        dir,
    );
    qemu_img_line("snapshot -c s q.qcow2", dir);
    qemu_io("q.qcow2", &["write -P 0x13 0 8k"], dir);
    qemu_img_line(
        "convert -q -c -O qcow2 -o cluster_size=4k q.qcow2 c.qcow2",
        dir,
    );
    qemu_img_line("convert -q -O qed q.qcow2 q.qed", dir);
    qemu_img_line("convert -q -O vdi q.qcow2 q.vdi", dir);
    qemu_img_line(
        "convert -q -O vmdk -o subformat=streamOptimized q.qcow2 s.vmdk",
        dir,
    );
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut codes = [0usize; 4];
    for base in ["q.qcow2", "c.qcow2", "q.qed", "q.vdi", "s.vmdk"] {
        let clean = std::fs::read(path(dir, base)).unwrap();
        let meta = clean.len().min(96 << 10) as u64;
        for i in 0..40 {
            let mut data = clean.clone();
            if i % 4 == 3 {
                data.truncate(rng.below(clean.len() as u64) as usize);
            } else {
                for _ in 0..1 + rng.below(6) {
                    let at = rng.below(meta) as usize;
                    data[at] = rng.next() as u8;
                }
            }
            let name = format!("bad-{i}-{base}");
            std::fs::write(path(dir, &name), &data).unwrap();
            codes[verdict_is_sound(dir, &name) as usize] += 1;
        }
    }
    // The damage is seen (many flips land in guest data, which no check can judge), and few
    // copies could not be checked at all.
    assert!(codes[2] > 50 && codes[1] < 50, "exit codes 0..3: {codes:?}");
}
