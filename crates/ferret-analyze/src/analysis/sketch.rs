//! The latency sketch behind percentiles: exact while a name has few
//! values, then an HdrHistogram with 2 significant digits (relative error at
//! most 1/128 ≈ 0.8%), which records in a few nanoseconds and merges.
//!
//! The histogram is kept here as its counts array only, laid out exactly
//! as `hdrhistogram::Histogram::<u64>::new(2)` lays out its own (the same
//! index for every value, the same array growth), so that recording a
//! value is a leading-zero count, a shift and an increment, inlined in the
//! scan loop, where the crate's `record` is an out-of-line call with
//! range checks and min/max/total bookkeeping (a quarter of a native
//! analysis). Quantiles and buckets read the counts the way the crate
//! does; the tests check both against the crate, value for value.
//!
//! Memory: at most 64 values (512 bytes) for a rare name; a counts array
//! (≈ 36 KB for values spanning ns to minutes) only for names with more.

/// Values kept exactly before switching to the histogram.
const EXACT: usize = 64;

/// log2 of the half sub-bucket count of a 2-significant-digit histogram
/// (sub-buckets of 256 values give unit resolution up to 200).
const HALF_MAG: u32 = 7;
/// Counts in the first bucket (the histogram's first array length).
const FIRST_LEN: usize = 256;

/// The bucket of `v`: how many powers of two `v` lies above the first
/// bucket's 256 values (0..=56).
#[inline(always)]
fn bucket(v: u64) -> u32 {
    56 - (v | 255).leading_zeros()
}

/// The counts index of `v`, as HdrHistogram computes it for 2
/// significant digits and a lowest discernible value of 1.
#[inline(always)]
fn index(v: u64) -> usize {
    let b = bucket(v);
    ((b as usize) << HALF_MAG) + (v >> b) as usize
}

/// The lowest value counted at `index`.
fn value_at(index: usize) -> u64 {
    let b = (index >> HALF_MAG) as i64 - 1;
    let sub = (index & ((1 << HALF_MAG) - 1)) as u64 + (1 << HALF_MAG);
    if b < 0 {
        sub - (1 << HALF_MAG)
    } else {
        sub << b
    }
}

/// The highest value equivalent to `v` (counted at the same index).
fn highest_equivalent(v: u64) -> u64 {
    if v == u64::MAX {
        return u64::MAX;
    }
    let b = bucket(v);
    ((v >> b) << b).saturating_add(1 << b) - 1
}

/// The counts array length the histogram grows to when it must hold `v`:
/// enough buckets to cover it, plus the lower half of the first one.
fn len_for(v: u64) -> usize {
    (bucket(v) as usize + 2) << HALF_MAG
}

/// A mergeable relative-error sketch of durations in ns.
#[derive(Clone, Debug, Default)]
pub struct LatencySketch {
    exact: Vec<u64>,
    /// HdrHistogram counts by index; empty while the values are exact.
    counts: Vec<u64>,
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> LatencySketch {
        LatencySketch::default()
    }

    /// Adds one value.
    ///
    /// The loop's case, a value within the counts array, is an index and an
    /// increment (a count cannot overflow: it counts values added, fewer
    /// than 2^64); the exact values (an empty array: at most 64 adds per
    /// sketch) and a value past the array's end go out of line.
    #[inline(always)]
    pub fn add(&mut self, v: u64) {
        match self.counts.get_mut(index(v)) {
            Some(c) => *c += 1,
            None => self.add_cold(v),
        }
    }

    /// Adds `v` while the values are exact, or past the end of the counts
    /// array.
    #[cold]
    #[inline(never)]
    fn add_cold(&mut self, v: u64) {
        if self.counts.is_empty() {
            if self.exact.len() < EXACT {
                self.exact.push(v);
                return;
            }
            self.promote();
            if let Some(c) = self.counts.get_mut(index(v)) {
                *c += 1;
                return;
            }
        }
        self.counts.resize(len_for(v), 0);
        self.counts[index(v)] += 1;
    }

    /// Moves the exact values into a fresh histogram.
    #[cold]
    #[inline(never)]
    fn promote(&mut self) {
        self.counts = vec![0; FIRST_LEN];
        for v in std::mem::take(&mut self.exact) {
            self.add(v);
        }
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        if self.counts.is_empty() {
            self.exact.len() as u64
        } else {
            self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.counts.is_empty() {
            for &v in &other.exact {
                self.add(v);
            }
            return;
        }
        if self.counts.is_empty() {
            self.promote();
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, &b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(b);
        }
    }

    /// The recorded values as sorted `(value, count)` buckets: exact values
    /// below 65 values, else each histogram bucket's highest equivalent
    /// value (the value [`LatencySketch::quantile`] reports). Memory: the
    /// buckets in use, whatever the count.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        if !self.counts.is_empty() {
            return self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c != 0)
                .map(|(i, &c)| (highest_equivalent(value_at(i)), c))
                .collect();
        }
        let mut v = self.exact.clone();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for x in v {
            match out.last_mut() {
                Some(last) if last.0 == x => last.1 += 1,
                _ => out.push((x, 1)),
            }
        }
        out
    }

    /// The nearest-rank quantile: the value at 1-based rank `ceil(q·n)`
    /// (exact below 65 values, else within 0.8%). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let q = q.clamp(0.0, 1.0);
        if self.counts.is_empty() {
            let n = self.exact.len() as u64;
            if n == 0 {
                return 0;
            }
            let r = ((q * n as f64).ceil() as u64).clamp(1, n) - 1;
            let mut v = self.exact.clone();
            let (_, x, _) = v.select_nth_unstable(r as usize);
            return *x;
        }
        // As `Histogram::value_at_quantile`: the first index whose running
        // count reaches rank max(1, ceil(q·n)).
        let rank = ((q * self.count() as f64).ceil() as u64).max(1);
        let mut run = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            run = run.saturating_add(c);
            if run >= rank {
                let v = value_at(i);
                return if q == 0.0 { v } else { highest_equivalent(v) };
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_for_few_values() {
        let mut s = LatencySketch::new();
        for v in [300, 100, 200] {
            s.add(v);
        }
        assert_eq!(s.quantile(0.5), 200);
        assert_eq!(s.quantile(0.95), 300);
        assert_eq!(s.quantile(0.0), 100);
    }

    #[test]
    fn relative_error_under_one_percent_for_many_values() {
        let mut s = LatencySketch::new();
        for v in 1..=100_000u64 {
            s.add(v * 1000);
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.95, 95_000_000.0),
            (0.99, 99_000_000.0),
        ] {
            let got = s.quantile(q) as f64;
            assert!((got - want).abs() / want <= 0.01, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn buckets_hold_every_value() {
        let mut s = LatencySketch::new();
        for v in [5, 3, 5] {
            s.add(v);
        }
        assert_eq!(s.buckets(), vec![(3, 1), (5, 2)]);
        for v in 0..1000u64 {
            s.add(v * 1000);
        }
        let b = s.buckets();
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 1003);
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn merge_equals_adding_everything() {
        let (mut a, mut b, mut all) = (
            LatencySketch::new(),
            LatencySketch::new(),
            LatencySketch::new(),
        );
        for v in 0..1000u64 {
            let x = v * v + 7;
            if v % 3 == 0 {
                a.add(x)
            } else {
                b.add(x)
            }
            all.add(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
    }

    /// The histogram the sketch stood for before it kept its own counts.
    fn reference(values: &[u64]) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::<u64>::new(2).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    fn same_as_reference(values: &[u64]) {
        let mut s = LatencySketch::new();
        for &v in values {
            s.add(v);
        }
        assert_eq!(s.count(), values.len() as u64);
        if values.len() <= EXACT {
            return;
        }
        let h = reference(values);
        assert_eq!(s.counts.len(), h.distinct_values(), "array growth");
        for q in [
            0.0, 1e-9, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0, 1.5,
        ] {
            assert_eq!(
                s.quantile(q),
                h.value_at_quantile(q.clamp(0.0, 1.0)),
                "q{q}"
            );
        }
        let want: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(s.buckets(), want);
    }

    #[test]
    fn counts_match_hdrhistogram_index_for_index() {
        let probes = (0..70_000u64)
            .chain((0..64).flat_map(|s| {
                let p = 1u64 << s;
                [p - 1, p, p + 1, p.wrapping_mul(3) / 2]
            }))
            .chain([u64::MAX, u64::MAX - 1, u64::MAX / 2, u64::MAX / 2 + 1]);
        for v in probes {
            let h = reference(&[v]);
            let i = index(v);
            assert_eq!(h.distinct_values(), len_for(v).max(FIRST_LEN), "len {v}");
            assert_eq!(h.value_at_quantile(0.0), value_at(i), "lowest {v}");
            assert_eq!(
                h.value_at_quantile(1.0),
                highest_equivalent(value_at(i)),
                "highest {v}"
            );
            assert_eq!(index(value_at(i)), i, "{v}");
        }
    }

    #[test]
    fn quantiles_and_buckets_match_hdrhistogram() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
        same_as_reference(&(0..65u64).collect::<Vec<_>>());
        same_as_reference(&[u64::MAX; 100]);
        same_as_reference(&(0..1000u64).map(|v| v << 54).collect::<Vec<_>>());
        for round in 0..200 {
            let n = rng.gen_range(65..5000);
            let shift = rng.gen_range(0..60);
            let values: Vec<u64> = (0..n)
                .map(|_| match round % 3 {
                    0 => rng.gen_range(0..1u64 << shift),
                    1 => rng.gen::<u64>() >> rng.gen_range(0..64),
                    _ => 1000 + rng.gen_range(0..50u64),
                })
                .collect();
            same_as_reference(&values);
            // Merging halves (either side promoted or not) equals adding all.
            let cut = rng.gen_range(0..n);
            let (mut a, mut b) = (LatencySketch::new(), LatencySketch::new());
            values[..cut].iter().for_each(|&v| a.add(v));
            values[cut..].iter().for_each(|&v| b.add(v));
            a.merge(&b);
            let h = reference(&values);
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                assert_eq!(a.quantile(q), h.value_at_quantile(q), "merged q{q}");
            }
        }
    }
}
