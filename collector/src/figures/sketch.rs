//! A mergeable RTT histogram with bounded relative error (the "DDSketch" bucketing).
//!
//! A positive value `x` (nanoseconds) falls in bucket `i = ⌈log_γ x⌉` with
//! `γ = (1 + α) / (1 − α)`, α = [`RELATIVE_ERROR`]; bucket `i` covers `(γ^(i−1), γ^i]` and is read
//! back as `2γ^i / (γ + 1)`, which is within α (1 %) of every value in it. Zero has its own
//! bucket. Counts only add, so merging is exact, associative and commutative, and a sketch of
//! a probe's day or hour costs one counter per distinct bucket (about 230 buckets span 1 ms to
//! 100 ms at most; in practice a few dozen) however many samples it holds.
//!
//! A median read from a sketch is within α of the exact median of the same samples: the
//! order statistics of the sketch are the bucket representatives of the exact order statistics,
//! and the mean of two values each within α is within α.

use std::collections::BTreeMap;

/// Relative error of every value read back from a sketch.
pub const RELATIVE_ERROR: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    zeros: u64,
    buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    pub fn add_ns(&mut self, ns: u64) {
        if ns == 0 {
            self.zeros += 1;
            return;
        }
        let index = ((ns as f64).ln() / gamma().ln()).ceil() as i32;
        *self.buckets.entry(index).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zeros += other.zeros;
        for (index, count) in &other.buckets {
            *self.buckets.entry(*index).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.buckets.values().sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The value of rank `rank` (0-based, ascending), in nanoseconds.
    fn value_at(&self, rank: u64) -> f64 {
        if rank < self.zeros {
            return 0.0;
        }
        let mut seen = self.zeros;
        let g = gamma();
        for (index, count) in &self.buckets {
            seen += count;
            if rank < seen {
                return 2.0 * g.powi(*index) / (g + 1.0);
            }
        }
        // Unreachable for rank < count(); the largest bucket is the safe answer.
        self.buckets
            .keys()
            .next_back()
            .map_or(0.0, |i| 2.0 * g.powi(*i) / (g + 1.0))
    }

    /// The median in milliseconds (mean of the two middle values for an even count), within
    /// [`RELATIVE_ERROR`] of the exact one; `None` when empty.
    pub fn median_ms(&self) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let low = self.value_at((n - 1) / 2);
        let high = self.value_at(n / 2);
        Some((low + high) / 2.0 / 1e6)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        super::codec::put_u64(out, self.zeros);
        super::codec::put_u64(out, self.buckets.len() as u64);
        let mut previous = 0i64;
        for (index, count) in &self.buckets {
            // Indexes ascend: small deltas, one byte each mostly.
            super::codec::put_i64(out, i64::from(*index) - previous);
            super::codec::put_u64(out, *count);
            previous = i64::from(*index);
        }
    }

    pub fn decode(input: &mut super::codec::Reader<'_>) -> Result<Self, super::codec::CodecError> {
        let zeros = input.u64()?;
        let len = input.u64()?;
        let mut buckets = BTreeMap::new();
        let mut index = 0i64;
        for _ in 0..len {
            index = index
                .checked_add(input.i64()?)
                .ok_or(super::codec::CodecError("sketch bucket index overflows"))?;
            let index = i32::try_from(index)
                .map_err(|_| super::codec::CodecError("sketch bucket index out of range"))?;
            buckets.insert(index, input.u64()?);
        }
        Ok(Self { zeros, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_median(values: &mut [u64]) -> f64 {
        values.sort_unstable();
        let n = values.len();
        (values[(n - 1) / 2] as f64 + values[n / 2] as f64) / 2.0 / 1e6
    }

    #[test]
    fn medians_are_within_the_relative_error_and_merge_exactly() {
        let mut seed = 7u64;
        for round in 0..200 {
            let mut a = Sketch::default();
            let mut b = Sketch::default();
            let mut values = Vec::new();
            for i in 0..(1 + round % 37) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let ns = (seed >> 20) % 400_000_000 + u64::from(i % 5 == 0);
                values.push(ns);
                if i % 2 == 0 {
                    a.add_ns(ns)
                } else {
                    b.add_ns(ns)
                }
            }
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            assert_eq!(ab, ba);
            assert_eq!(ab.count(), values.len() as u64);
            let exact = exact_median(&mut values);
            let approx = ab.median_ms().unwrap();
            assert!(
                (approx - exact).abs() <= RELATIVE_ERROR * exact + 1e-12,
                "round {round}: {approx} vs {exact}"
            );
            let mut bytes = Vec::new();
            ab.encode(&mut bytes);
            let back = Sketch::decode(&mut super::super::codec::Reader::new(&bytes)).unwrap();
            assert_eq!(back, ab);
        }
        assert_eq!(Sketch::default().median_ms(), None);
        let mut zero = Sketch::default();
        zero.add_ns(0);
        assert_eq!(zero.median_ms(), Some(0.0));
    }
}
