//! A small seeded random generator (xorshift64*), so damage and mutation rounds are the same
//! on every run and a failure can be replayed.

pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`, which must not be zero (xorshift stays at zero).
    pub fn new(seed: u64) -> Self {
        assert_ne!(seed, 0, "a xorshift seed must not be zero");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
