//! Images made by `qemu-img create` with its default options and then written by `qemu-io`:
//! the first step of most differential tests.

use super::{create_image, qemu_io};
use std::path::Path;

/// A `fmt` image `name` of `size` as `qemu-img create` makes it, then the `qemu-io` commands
/// `writes` on it.
pub fn written_image(dir: &Path, fmt: &str, name: &str, size: &str, writes: &[&str]) {
    create_image(dir, fmt, "", &[], name, size);
    qemu_io(name, writes, dir);
}
