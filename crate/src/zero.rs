//! Zero detection, the hot loop of every conversion.

/// True when every byte of `buf` is zero. Checks the first bytes alone first (most data
/// clusters fail there), then ORs wide words so the compiler can vectorise the reduction.
pub fn is_zero(buf: &[u8]) -> bool {
    let (head, rest) = buf.split_at(buf.len().min(16));
    if head.iter().any(|&b| b != 0) {
        return false;
    }
    let mut chunks = rest.chunks_exact(256);
    for chunk in &mut chunks {
        let mut acc = 0u64;
        for word in chunk.chunks_exact(8) {
            acc |= u64::from_ne_bytes(word.try_into().unwrap());
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_single_set_byte_anywhere() {
        for len in [0usize, 1, 15, 16, 17, 255, 256, 257, 4096, 65536 + 3] {
            let mut buf = vec![0u8; len];
            assert!(is_zero(&buf));
            for pos in [0, len / 2, len.saturating_sub(1)] {
                if pos < len {
                    buf[pos] = 1;
                    assert!(!is_zero(&buf), "len {len} pos {pos}");
                    buf[pos] = 0;
                }
            }
        }
    }
}
