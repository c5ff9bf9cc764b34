//! The statistics behind `ferret diff`'s gate, all deterministic and with a
//! cost that depends on histogram buckets or runs, never on span counts:
//!
//! - [`quantile_bootstrap`]: the *exact* bootstrap distribution of a sample
//!   quantile, computed over histogram buckets. Resampling `n` values from
//!   the empirical distribution and taking the value at rank `r` gives a
//!   value `≤ v` exactly when at least `r` of the `n` draws are `≤ v`, so
//!   `P(Q* ≤ v) = P(Binomial(n, F(v)) ≥ r)`. No random draws: the result is
//!   what infinitely many bootstrap resamples would give.
//! - [`compare_bootstrap`]: the two-sample test and percentile confidence
//!   interval of the relative change `Q_cand / Q_base - 1` from two such
//!   distributions.
//! - [`mann_whitney`]: the rank test for several runs per side (exact
//!   distribution for small samples without ties, normal approximation with
//!   tie correction otherwise).
//! - [`poisson_rate_test`]: calls per root, the conditional binomial test
//!   of two Poisson rates.
//! - [`benjamini_hochberg`]: adjusted p-values controlling the false
//!   discovery rate across names.

/// Minimum samples for a quantile `q` on each side: `max(30, 10/(1-q))`,
/// so p50 needs 30, p95 200 and p99 1,000.
pub fn min_samples(q: f64) -> u64 {
    if q >= 1.0 {
        return u64::MAX;
    }
    // Rounded before ceil: 10/(1-0.99) is 1000.0000000000009 in floating point.
    let need = ((10.0 / (1.0 - q)) * 1e6).round() / 1e6;
    (need.ceil() as u64).max(30)
}

/// `P(X ≥ r)` for `X ~ Binomial(n, p)`, summing terms outward from the
/// mode (about 20 standard deviations of work, whatever `n` is); terms
/// below 1e-18 of the total are dropped.
pub fn binomial_sf(n: u64, p: f64, r: u64) -> f64 {
    if r == 0 {
        return 1.0;
    }
    if r > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let mean = nf * p;
    let sd = (nf * p * (1.0 - p)).sqrt();
    let rf = r as f64;
    if rf > mean + 40.0 * sd + 2.0 {
        return 0.0;
    }
    if rf < mean - 40.0 * sd - 2.0 {
        return 1.0;
    }
    let mode = (((n + 1) as f64 * p).floor() as u64).min(n);
    let odds = p / (1.0 - p);
    let mut all = 1.0f64;
    let mut tail = if mode >= r { 1.0 } else { 0.0 };
    let (mut t, mut k) = (1.0f64, mode);
    while k < n {
        t *= (n - k) as f64 / (k + 1) as f64 * odds;
        k += 1;
        all += t;
        if k >= r {
            tail += t;
        }
        if t < 1e-18 * all {
            break;
        }
    }
    let (mut t, mut k) = (1.0f64, mode);
    while k > 0 {
        t *= k as f64 / (n - k + 1) as f64 / odds;
        k -= 1;
        all += t;
        if k >= r {
            tail += t;
        }
        if t < 1e-18 * all {
            break;
        }
    }
    (tail / all).clamp(0.0, 1.0)
}

/// `P(X ≤ x)` for `X ~ Binomial(n, p)`.
pub fn binomial_cdf(n: u64, p: f64, x: u64) -> f64 {
    1.0 - binomial_sf(n, p, x + 1)
}

/// The exact bootstrap distribution of the nearest-rank `q` quantile of a
/// sample given as sorted `(value, count)` buckets: `(value, probability)`
/// pairs in value order, negligible ones (< 1e-15) left out. Empty when the
/// sample is.
pub fn quantile_bootstrap(buckets: &[(u64, u64)], q: f64) -> Vec<(f64, f64)> {
    let n: u64 = buckets.iter().map(|b| b.1).sum();
    if n == 0 {
        return vec![];
    }
    let r = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
    let mut out = Vec::new();
    let mut cum = 0u64;
    let mut prev = 0.0f64;
    for &(v, c) in buckets {
        cum += c;
        let g = if cum == n {
            1.0
        } else {
            binomial_sf(n, cum as f64 / n as f64, r)
        };
        let p = (g - prev).max(0.0);
        prev = g.max(prev);
        if p > 1e-15 {
            out.push((v as f64, p));
        }
    }
    out
}

/// The outcome of comparing a quantile between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapTest {
    /// Two-sided p-value of "the relative change is within ±margin".
    pub p_value: f64,
    /// Lower end of the `1 - alpha` percentile interval of the relative change.
    pub ci_low: f64,
    /// Upper end of that interval.
    pub ci_high: f64,
}

/// `P(b* ≤ a* · k)` for independent discrete distributions `a`, `b`
/// (sorted by value), by a merge: O(len a + len b).
fn prob_b_at_most_scaled_a(a: &[(f64, f64)], b: &[(f64, f64)], k: f64) -> f64 {
    let mut j = 0;
    let mut cdf_b = 0.0f64;
    let mut acc = 0.0;
    for &(va, pa) in a {
        let lim = va * k;
        while j < b.len() && b[j].0 <= lim {
            cdf_b += b[j].1;
            j += 1;
        }
        acc += pa * cdf_b;
    }
    acc.clamp(0.0, 1.0)
}

/// Compares two bootstrap distributions (from [`quantile_bootstrap`]) of a
/// quantile: base `a`, candidate `b`. Tests whether the relative change
/// `b/a - 1` lies beyond ±`margin`: the p-value is twice the smaller of
/// `P(b* ≤ a*·(1+margin))` and `P(b* ≥ a*·(1−margin))`, i.e. the smallest
/// level whose percentile interval of the change excludes the whole band
/// [-margin, +margin] on one side. With `margin = 0` it is the plain test of
/// "no change". The interval is that of `b*/a* - 1` at level `1 - alpha`.
pub fn compare_bootstrap(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    alpha: f64,
    margin: f64,
) -> BootstrapTest {
    let up = prob_b_at_most_scaled_a(a, b, 1.0 + margin);
    // P(b* ≥ a*(1−m)) = 1 − P(b* < a*(1−m)); with discrete values use the
    // mirror: P(a* ≤ b*/(1−m)) counts ties on the "no change" side too.
    let down = if margin < 1.0 {
        prob_b_at_most_scaled_a(b, a, 1.0 / (1.0 - margin))
    } else {
        1.0
    };
    let p_value = (2.0 * up.min(down)).clamp(0.0, 1.0);
    // Percentile interval of the ratio over the pairs that carry the mass.
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    let heavy = |d: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = d.iter().copied().filter(|x| x.1 > 1e-9).collect();
        if v.len() > 1500 {
            v.sort_by(|x, y| y.1.total_cmp(&x.1));
            v.truncate(1500);
        }
        v
    };
    let hb = heavy(b);
    for &(va, pa) in &heavy(a) {
        if va <= 0.0 {
            continue;
        }
        for &(vb, pb) in &hb {
            pairs.push((vb / va - 1.0, pa * pb));
        }
    }
    pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let at = |level: f64| -> f64 {
        let mut acc = 0.0;
        for &(r, p) in &pairs {
            acc += p;
            if acc >= level * total {
                return r;
            }
        }
        pairs.last().map_or(f64::NAN, |p| p.0)
    };
    let (ci_low, ci_high) = if pairs.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (at(alpha / 2.0), at(1.0 - alpha / 2.0))
    };
    BootstrapTest {
        p_value,
        ci_low,
        ci_high,
    }
}

/// Two-sided Mann–Whitney U test of `x` against `y`: twice the smaller of
/// the one-sided p-values of [`mann_whitney_greater`]. 1.0 when a side is empty.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> f64 {
    (2.0 * mann_whitney_greater(x, y).min(mann_whitney_greater(y, x))).min(1.0)
}

/// One-sided Mann–Whitney U test: the p-value of "`y` tends to be greater
/// than `x`". Exact for up to 25 values a side without ties, else the
/// normal approximation with tie and continuity corrections. 1.0 when a
/// side is empty.
pub fn mann_whitney_greater(x: &[f64], y: &[f64]) -> f64 {
    let (m, n) = (x.len(), y.len());
    if m == 0 || n == 0 {
        return 1.0;
    }
    let mut all: Vec<(f64, usize)> = x
        .iter()
        .map(|&v| (v, 0))
        .chain(y.iter().map(|&v| (v, 1)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mid-ranks, and the tie correction term sum(t^3 - t).
    let mut rank_y = 0.0f64;
    let mut ties = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for e in &all[i..=j] {
            if e.1 == 1 {
                rank_y += mid;
            }
        }
        i = j + 1;
    }
    let (mf, nf) = (m as f64, n as f64);
    let u = rank_y - nf * (nf + 1.0) / 2.0; // pairs with y > x (ties half)
    if ties == 0.0 && m <= 25 && n <= 25 {
        let dist = u_distribution(m, n);
        let total: f64 = dist.iter().sum();
        let u = u.round() as usize;
        return (dist[u..].iter().sum::<f64>() / total).min(1.0);
    }
    let mean = mf * nf / 2.0;
    let big_n = mf + nf;
    let var = mf * nf / 12.0 * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u - mean - 0.5) / var.sqrt();
    normal_sf(z).min(1.0)
}

/// Frequencies of U for sample sizes m, n (no ties): index = U.
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    // f[i][j] = distribution for sizes i, j; built up over j for each i.
    let max = m * n;
    let mut prev: Vec<Vec<f64>> = (0..=n)
        .map(|_| {
            let mut v = vec![0.0; max + 1];
            v[0] = 1.0;
            v
        })
        .collect(); // i = 0
    for i in 1..=m {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max + 1]; n + 1];
        cur[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=i * j {
                // Largest value is from x (adds j to U) or from y.
                let from_x = if u >= j { prev[j][u - j] } else { 0.0 };
                cur[j][u] = from_x + cur[j - 1][u];
            }
        }
        prev = cur;
    }
    prev.swap_remove(n)
}

/// Upper tail of the standard normal distribution.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Two-sided test that two Poisson rates per root differ by more than
/// ±`margin` (relative): `x_a` events over `roots_a` roots (base) against
/// `x_b` over `roots_b`. Given the total, `x_b` is binomial under each
/// boundary of the band, which gives exact one-sided p-values.
pub fn poisson_rate_test(x_a: u64, roots_a: u64, x_b: u64, roots_b: u64, margin: f64) -> f64 {
    if roots_a == 0 || roots_b == 0 {
        return 1.0;
    }
    let n = x_a + x_b;
    if n == 0 {
        return 1.0;
    }
    let share = |k: f64| {
        let rb = roots_b as f64 * k;
        rb / (roots_a as f64 + rb)
    };
    // Increase: the null is rate_b = rate_a·(1+m); large x_b is evidence.
    let up = binomial_sf(n, share(1.0 + margin), x_b);
    // Decrease: the null is rate_b = rate_a·(1−m); small x_b is evidence.
    let down = if margin < 1.0 {
        binomial_cdf(n, share(1.0 - margin), x_b)
    } else {
        1.0
    };
    (2.0 * up.min(down)).min(1.0)
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the input's order:
/// rejecting every hypothesis with `q ≤ alpha` keeps the expected false
/// discovery rate at most `alpha`.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for k in (0..m).rev() {
        let i = idx[k];
        running = running.min(p[i] * m as f64 / (k + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn minimum_samples_follow_the_rule() {
        assert_eq!(min_samples(0.5), 30);
        assert_eq!(min_samples(0.95), 200);
        assert_eq!(min_samples(0.99), 1000);
        assert_eq!(min_samples(0.999), 10_000);
    }

    #[test]
    fn binomial_tail_matches_direct_sums() {
        // n = 10, p = 0.3: P(X >= 4) = 0.3503892816.
        assert!(close(binomial_sf(10, 0.3, 4), 0.350_389_281_6, 1e-9));
        assert!(close(binomial_cdf(10, 0.3, 3), 0.649_610_718_4, 1e-9));
        assert_eq!(binomial_sf(10, 0.3, 0), 1.0);
        assert_eq!(binomial_sf(10, 0.3, 11), 0.0);
        // Large n: P(X >= mean) ~ 0.5 and far tails vanish.
        assert!(close(
            binomial_sf(1_000_000_000, 0.5, 500_000_000),
            0.5,
            1e-3
        ));
        assert_eq!(binomial_sf(1_000_000_000, 0.5, 600_000_000), 0.0);
    }

    #[test]
    fn bootstrap_of_the_median_of_three_values() {
        // Median of 3 resampled from {1, 2, 3}: P(1) = P(3) = 7/27, P(2) = 13/27.
        let d = quantile_bootstrap(&[(1, 1), (2, 1), (3, 1)], 0.5);
        assert_eq!(d.len(), 3);
        assert!(close(d[0].1, 7.0 / 27.0, 1e-12));
        assert!(close(d[1].1, 13.0 / 27.0, 1e-12));
        assert!(close(d[2].1, 7.0 / 27.0, 1e-12));
    }

    #[test]
    fn identical_samples_are_not_different_and_shifted_ones_are() {
        let a: Vec<(u64, u64)> = (100..200).map(|v| (v, 10)).collect();
        let b: Vec<(u64, u64)> = (130..230).map(|v| (v, 10)).collect();
        let da = quantile_bootstrap(&a, 0.5);
        let db = quantile_bootstrap(&b, 0.5);
        let same = compare_bootstrap(&da, &da, 0.05, 0.0);
        assert!(same.p_value > 0.9, "{same:?}");
        assert!(same.ci_low < 0.0 && same.ci_high > 0.0);
        let t = compare_bootstrap(&da, &db, 0.05, 0.0);
        assert!(t.p_value < 1e-6, "{t:?}");
        assert!(t.ci_low > 0.15 && t.ci_high < 0.25, "{t:?}");
        // A +20% change is well beyond a 5% band, not beyond a 20% one.
        assert!(compare_bootstrap(&da, &db, 0.05, 0.05).p_value < 1e-3);
        assert!(compare_bootstrap(&da, &db, 0.05, 0.2).p_value > 0.2);
        // Symmetric: the decrease is as significant.
        let back = compare_bootstrap(&db, &da, 0.05, 0.05);
        assert!(back.p_value < 1e-3 && back.ci_high < 0.0, "{back:?}");
    }

    #[test]
    fn mann_whitney_exact_and_approximate() {
        // Complete separation of 5 vs 5: p = 2/252.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!(close(mann_whitney(&x, &y), 2.0 / 252.0, 1e-12));
        assert!(close(mann_whitney(&y, &x), 2.0 / 252.0, 1e-12));
        assert!(close(mann_whitney_greater(&x, &y), 1.0 / 252.0, 1e-12));
        assert!(mann_whitney_greater(&y, &x) > 0.99);
        assert!(mann_whitney(&x, &[1.5, 2.5, 3.5, 4.5, 5.5]) > 0.5);
        // Ties: the normal approximation.
        let p = mann_whitney(&[1.0; 30], &[1.0; 30]);
        assert_eq!(p, 1.0);
        let big_x: Vec<f64> = (0..40).map(f64::from).collect();
        let big_y: Vec<f64> = (20..60).map(f64::from).collect();
        assert!(mann_whitney(&big_x, &big_y) < 1e-3);
        assert_eq!(mann_whitney(&[], &[1.0]), 1.0);
    }

    #[test]
    fn normal_tail() {
        assert!(close(normal_sf(0.0), 0.5, 1e-7));
        assert!(close(normal_sf(1.959_964), 0.025, 1e-6));
        assert!(close(normal_sf(-1.959_964), 0.975, 1e-6));
    }

    #[test]
    fn poisson_rates() {
        assert!(poisson_rate_test(2000, 1000, 2000, 1000, 0.0) > 0.9);
        assert!(poisson_rate_test(2000, 1000, 6000, 1000, 0.0) < 1e-12);
        assert!(poisson_rate_test(2000, 1000, 6000, 1000, 0.5) < 1e-12);
        assert!(poisson_rate_test(2000, 1000, 2100, 1000, 0.05) > 0.5);
        assert!(poisson_rate_test(6000, 1000, 2000, 1000, 0.05) < 1e-12);
        assert_eq!(poisson_rate_test(1, 0, 1, 1, 0.0), 1.0);
    }

    #[test]
    fn benjamini_hochberg_adjusts() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        assert!(close(q[0], 0.04, 1e-12));
        assert!(close(q[1], 0.0533333333, 1e-9));
        assert!(close(q[2], 0.0533333333, 1e-9));
        assert!(close(q[3], 0.5, 1e-12));
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
