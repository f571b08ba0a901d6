//! A small seeded generator for parameter initialisation and tests:
//! SplitMix64 (Steele, Lea & Flood 2014). Deterministic across platforms,
//! so the same seed gives the same weights everywhere.

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An independent generator for stream `stream` (an epoch, say) of
    /// `seed`. `Rng::new(seed ^ stream · φ)` would not do: SplitMix64 steps
    /// its state by φ, so such streams are shifted copies of one another.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut s = Self(seed);
        let a = s.next_u64();
        Self(a ^ Self(stream ^ 0xD1B5_4A32_D192_ED03).next_u64())
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.next_f32()
    }

    /// `n` values uniform in [low, high).
    pub fn uniform_vec(&mut self, n: usize, low: f32, high: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(low, high)).collect()
    }
}
