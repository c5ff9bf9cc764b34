//! The latency sketch behind percentiles: exact while a name has few
//! values, then an HdrHistogram with 2 significant digits (relative error at
//! most 1/128 ≈ 0.8%), which records in a few nanoseconds and merges.
//!
//! Memory: at most 64 values (512 bytes) for a rare name; a histogram
//! (≈ 36 KB for values spanning ns to minutes) only for names with more.

use hdrhistogram::Histogram;

/// Values kept exactly before switching to the histogram.
const EXACT: usize = 64;

/// Records `v`, growing the histogram's range as needed (values beyond what
/// it can ever track are clamped).
#[inline]
fn record(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// A mergeable relative-error sketch of durations in ns.
#[derive(Clone, Debug, Default)]
pub struct LatencySketch {
    exact: Vec<u64>,
    hist: Option<Box<Histogram<u64>>>,
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> LatencySketch {
        LatencySketch::default()
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, v: u64) {
        match &mut self.hist {
            Some(h) => record(h, v),
            None => {
                if self.exact.len() < EXACT {
                    self.exact.push(v);
                } else {
                    self.promote();
                    if let Some(h) = &mut self.hist {
                        record(h, v);
                    }
                }
            }
        }
    }

    #[cold]
    fn promote(&mut self) {
        let mut h = Histogram::<u64>::new(2).expect("2 significant digits is valid");
        for v in self.exact.drain(..) {
            record(&mut h, v);
        }
        self.exact.shrink_to_fit();
        self.hist = Some(Box::new(h));
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        match &self.hist {
            Some(h) => h.len(),
            None => self.exact.len() as u64,
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencySketch) {
        match &other.hist {
            None => {
                for &v in &other.exact {
                    self.add(v);
                }
            }
            Some(oh) => {
                if self.hist.is_none() {
                    self.promote();
                }
                if let Some(h) = &mut self.hist {
                    let _ = h.add(&**oh);
                }
            }
        }
    }

    /// The recorded values as sorted `(value, count)` buckets: exact values
    /// below 65 values, else each histogram bucket's highest equivalent
    /// value (the value [`LatencySketch::quantile`] reports). Memory: the
    /// buckets in use, whatever the count.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        match &self.hist {
            Some(h) => h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            None => {
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
        }
    }

    /// The nearest-rank quantile: the value at 1-based rank `ceil(q·n)`
    /// (exact below 65 values, else within 0.8%). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        match &self.hist {
            Some(h) => h.value_at_quantile(q.clamp(0.0, 1.0)),
            None => {
                let n = self.exact.len() as u64;
                if n == 0 {
                    return 0;
                }
                let r = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n) - 1;
                let mut v = self.exact.clone();
                let (_, x, _) = v.select_nth_unstable(r as usize);
                *x
            }
        }
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
}
