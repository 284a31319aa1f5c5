//! ARM 32-bit zImage: `Documentation/arch/arm/booting.rst`.

use super::super::bytes::{be32, le32};
use super::super::{Detection, Format};
use super::{pe::set_arch, short};
use crate::finding_code::FindingCode;
use crate::report::Severity;

/// The ARM zImage magic at 0x24, in the kernel's byte order.
pub(super) const ZIMAGE_MAGIC: u32 = 0x016f_2818;

/// ARM 32-bit zImage: the words at 0x24.. are in the kernel's byte order.
pub(super) fn arm_zimage(h: &[u8], len: u64) -> Option<Detection> {
    let big = if le32(h, 0x24) == ZIMAGE_MAGIC {
        false
    } else if be32(h, 0x24) == ZIMAGE_MAGIC {
        true
    } else {
        return None;
    };
    let word = |at| if big { be32(h, at) } else { le32(h, at) };
    let mut d = Detection::new(Format::Aki);
    set_arch(&mut d, h, "arm");
    d.set("image", "zImage");
    d.set("endianness", if big { "big" } else { "little" });
    // 0x04030201 (since 3.17), 0x45454545 and the offset of a tag table follow.
    if word(0x30) == 0x0403_0201 {
        d.set("endianness-marker", true);
    }
    let (start, end) = (word(0x28), word(0x2c));
    d.set("load-address", format!("0x{start:08x}"));
    if len < 0x30 {
        d.truncated("zImage header");
    } else if end < start {
        d.finding(
            FindingCode::Corrupt,
            Severity::Critical,
            format!("the zImage header ends (0x{end:08x}) before it starts (0x{start:08x})"),
        );
    } else {
        let size = u64::from(end - start);
        d.set("image-size", size);
        if len < size {
            short(&mut d, "zImage", len, size);
        }
    }
    Some(d)
}
