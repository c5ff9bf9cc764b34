//! The regression gate of `ferret diff` on synthetic, seeded workloads fed
//! straight into the analysis state (no files): false-alarm and detection
//! rates, the absolute floor, calls per root, new / gone names, several runs
//! per side, per-name rules.

use ferret_analyze::analysis::diff::{
    compare, DiffOptions, DiffReport, Metric, NameRule, Outcome, RunData, SideData, Verdict,
};
use ferret_analyze::store::FileKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

/// One name of a workload: `n` spans per run, log-normal durations with
/// this median (ns) and log-space sigma.
#[derive(Clone, Copy)]
struct Name {
    name: &'static str,
    n: u64,
    median_ns: f64,
    sigma: f64,
}

const ROOTS: u64 = 500;

fn run(seed: u64, names: &[Name]) -> RunData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = RunData::new(format!("run-{seed}"));
    r.roots = ROOTS;
    for nm in names {
        let d = LogNormal::new(nm.median_ns.ln(), nm.sigma).unwrap();
        let s = r.key(nm.name);
        for _ in 0..nm.n {
            let v = d.sample(&mut rng).round() as u64;
            s.record(v, v);
        }
        r.spans += nm.n;
    }
    r.spans += ROOTS;
    r
}

fn side(runs: Vec<RunData>) -> SideData {
    let mut s = SideData::new("synthetic.db", FileKind::Native);
    for r in runs {
        s.add_run(r);
    }
    s
}

fn pair(seed: u64, base: &[Name], cand: &[Name], opts: &DiffOptions) -> DiffReport {
    compare(
        &side(vec![run(seed * 2, base)]),
        &side(vec![run(seed * 2 + 1, cand)]),
        opts,
    )
    .unwrap()
}

fn flagged(r: &DiffReport) -> Vec<&str> {
    r.rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Improved))
        .map(|r| r.name.as_str())
        .collect()
}

/// A service-like mix: a few hot names, some rare ones.
const MIX: [Name; 6] = [
    Name {
        name: "handle_request",
        n: 500,
        median_ns: 5e6,
        sigma: 0.4,
    },
    Name {
        name: "db.query",
        n: 1000,
        median_ns: 1e6,
        sigma: 0.5,
    },
    Name {
        name: "cache.get",
        n: 3000,
        median_ns: 80e3,
        sigma: 0.6,
    },
    Name {
        name: "render",
        n: 500,
        median_ns: 400e3,
        sigma: 0.3,
    },
    Name {
        name: "auth",
        n: 100,
        median_ns: 300e3,
        sigma: 0.5,
    },
    Name {
        name: "rare",
        n: 40,
        median_ns: 2e6,
        sigma: 0.8,
    },
];

#[test]
fn identical_workloads_rarely_flag() {
    let opts = DiffOptions::default();
    let pairs = 200;
    let hits = (0..pairs)
        .filter(|&seed| !flagged(&pair(seed, &MIX, &MIX, &opts)).is_empty())
        .count();
    eprintln!(
        "false alarms (mixed n = 40..3000): {hits}/{pairs} pairs = {:.1}%",
        100.0 * hits as f64 / pairs as f64
    );
    assert!(hits as u64 * 20 <= pairs, "{hits} of {pairs} pairs flagged");
}

#[test]
fn identical_workloads_never_flag_at_ten_thousand_samples() {
    let big = [
        Name {
            name: "db.query",
            n: 10_000,
            median_ns: 1e6,
            sigma: 0.5,
        },
        Name {
            name: "cache.get",
            n: 10_000,
            median_ns: 200e3,
            sigma: 0.8,
        },
    ];
    let opts = DiffOptions::default();
    let pairs = 200;
    let hits = (0..pairs)
        .filter(|&seed| {
            let r = pair(1000 + seed, &big, &big, &opts);
            !flagged(&r).is_empty()
        })
        .count();
    eprintln!("false alarms (n = 10,000): {hits}/{pairs} pairs");
    assert_eq!(hits, 0);
}

fn slower(names: &[Name], which: &str, factor: f64) -> Vec<Name> {
    names
        .iter()
        .map(|n| {
            let mut n = *n;
            if n.name == which {
                n.median_ns *= factor;
            }
            n
        })
        .collect()
}

/// Names of n = 1,000 each.
const THOUSANDS: [Name; 5] = [
    Name {
        name: "handle_request",
        n: 1000,
        median_ns: 5e6,
        sigma: 0.4,
    },
    Name {
        name: "db.query",
        n: 1000,
        median_ns: 1e6,
        sigma: 0.5,
    },
    Name {
        name: "cache.get",
        n: 1000,
        median_ns: 80e3,
        sigma: 0.6,
    },
    Name {
        name: "render",
        n: 1000,
        median_ns: 400e3,
        sigma: 0.3,
    },
    Name {
        name: "auth",
        n: 1000,
        median_ns: 300e3,
        sigma: 0.8,
    },
];

#[test]
fn twenty_percent_slower_median_is_caught() {
    let opts = DiffOptions::default();
    let cand = slower(&THOUSANDS, "db.query", 1.2);
    let seeds = 200;
    let (mut caught, mut others, mut others_seeds) = (0u64, 0, 0u64);
    for seed in 0..seeds {
        let r = pair(5000 + seed, &THOUSANDS, &cand, &opts);
        let f = flagged(&r);
        let row = r.rows.iter().find(|r| r.name == "db.query").unwrap();
        if row.verdict == Verdict::Regressed {
            caught += 1;
            assert!(r.failed);
        }
        others += f.iter().filter(|n| **n != "db.query").count();
        others_seeds += f.iter().any(|n| *n != "db.query") as u64;
    }
    eprintln!(
        "detection (+20% median, n = 1,000): {caught}/{seeds} = {:.1}%; \
         other names flagged: {others} of {} comparisons, in {others_seeds} seeds",
        100.0 * caught as f64 / seeds as f64,
        seeds * (THOUSANDS.len() as u64 - 1)
    );
    assert!(caught * 100 >= seeds * 99, "caught {caught} of {seeds}");
    // The other names are compared at a 5% false discovery rate; with one
    // real change in the family BH grows more lenient for the rest, and the
    // heavy-tailed p95/p99 of a n = 1,000 name then flag in about 1% of seeds.
    assert!(
        others_seeds * 100 <= seeds,
        "other names flagged in {others_seeds} seeds"
    );
}

trait RowExt {
    fn failed_metric(&self, m: Metric) -> bool;
}

impl RowExt for ferret_analyze::analysis::diff::DiffRow {
    fn failed_metric(&self, m: Metric) -> bool {
        self.tests
            .iter()
            .any(|t| t.metric == m && t.outcome == Outcome::Regressed)
    }
}

#[test]
fn twenty_percent_of_five_microseconds_is_not_flagged() {
    let base = [Name {
        name: "tiny",
        n: 20_000,
        median_ns: 25e3,
        sigma: 0.2,
    }];
    let cand = slower(&base, "tiny", 1.2);
    let r = pair(7, &base, &cand, &DiffOptions::default());
    let row = &r.rows[0];
    assert_eq!(row.verdict, Verdict::Same, "{row:?}");
    let p50 = row.tests.iter().find(|t| t.metric == Metric::P50).unwrap();
    assert_eq!(p50.outcome, Outcome::BelowMinAbs);
    assert!(p50.change.unwrap() > 0.15);
    assert!(!r.failed);
    // Without the absolute floor the same change is a regression.
    let opts = DiffOptions {
        min_abs_ns: 0.0,
        ..DiffOptions::default()
    };
    let r = pair(7, &base, &cand, &opts);
    assert_eq!(r.rows[0].verdict, Verdict::Regressed);
}

#[test]
fn tripled_calls_per_root_at_equal_latency_is_a_regression() {
    let base = [Name {
        name: "db.query",
        n: 1000,
        median_ns: 1e6,
        sigma: 0.5,
    }];
    let cand = [Name {
        name: "db.query",
        n: 3000,
        median_ns: 1e6,
        sigma: 0.5,
    }];
    let r = pair(11, &base, &cand, &DiffOptions::default());
    let row = &r.rows[0];
    assert_eq!(row.verdict, Verdict::Regressed);
    assert!(row.failed_metric(Metric::CallsPerRoot), "{row:?}");
    assert!(!row.failed_metric(Metric::P50));
    assert!((row.change.calls_per_root.unwrap() - 2.0).abs() < 1e-9);
    assert!(r.failed);
}

#[test]
fn new_and_gone_names_do_not_fail_unless_asked() {
    let base = [MIX[0], MIX[1]];
    let cand = [MIX[0], MIX[2]];
    let r = pair(3, &base, &cand, &DiffOptions::default());
    let verdict = |n: &str| r.rows.iter().find(|r| r.name == n).unwrap().verdict;
    assert_eq!(verdict("db.query"), Verdict::Gone);
    assert_eq!(verdict("cache.get"), Verdict::New);
    assert_eq!(verdict("handle_request"), Verdict::Same);
    assert_eq!((r.new, r.gone, r.regressions), (1, 1, 0));
    assert!(!r.failed);
    let gone = r.rows.iter().find(|r| r.name == "db.query").unwrap();
    assert!(gone.candidate.is_none() && gone.base.is_some() && gone.tests.is_empty());
    for (on_new, on_gone) in [(true, false), (false, true)] {
        let opts = DiffOptions {
            fail_on_new: on_new,
            fail_on_gone: on_gone,
            ..DiffOptions::default()
        };
        assert!(pair(3, &base, &cand, &opts).failed);
    }
}

#[test]
fn several_runs_per_side_use_the_rank_test() {
    let cand = slower(&MIX, "db.query", 1.3);
    let runs = |names: &[Name], seed: u64| side((0..5).map(|i| run(seed + i, names)).collect());
    let opts = DiffOptions::default();
    let r = compare(&runs(&MIX, 100), &runs(&cand, 200), &opts).unwrap();
    assert_eq!(r.method, ferret_analyze::analysis::diff::Method::RankTest);
    assert_eq!(flagged(&r), vec!["db.query"]);
    let row = &r.rows[0];
    let p50 = row.tests.iter().find(|t| t.metric == Metric::P50).unwrap();
    // 5 against 5, fully separated: the exact two-sided p is 2/252.
    assert!((p50.p_value.unwrap() - 2.0 / 252.0).abs() < 1e-12);
    let same = compare(&runs(&MIX, 300), &runs(&MIX, 400), &opts).unwrap();
    assert!(flagged(&same).is_empty());
    // Two runs a side can never reach significance: not flagged, not a crash.
    let two = |names: &[Name], seed: u64| side((0..2u64).map(|i| run(seed + i, names)).collect());
    assert!(flagged(&compare(&two(&MIX, 500), &two(&cand, 600), &opts).unwrap()).is_empty());
}

#[test]
fn rules_override_thresholds_and_exclude_names() {
    let cand = slower(&MIX, "db.query", 1.3);
    let opts = DiffOptions {
        rules: vec![
            NameRule {
                pattern: "db.*".into(),
                threshold: Some(0.5),
                ..NameRule::default()
            },
            NameRule {
                pattern: "rare".into(),
                exclude: true,
                ..NameRule::default()
            },
        ],
        ..DiffOptions::default()
    };
    let r = pair(21, &MIX, &cand, &opts);
    assert!(flagged(&r).is_empty(), "{:?}", flagged(&r));
    assert_eq!(r.excluded, 1);
    assert!(r.rows.iter().all(|r| r.name != "rare"));
    let row = r.rows.iter().find(|r| r.name == "db.query").unwrap();
    assert_eq!(row.threshold, 0.5);
    let bad = DiffOptions {
        rules: vec![NameRule {
            pattern: "[".into(),
            ..NameRule::default()
        }],
        ..DiffOptions::default()
    };
    assert!(compare(&side(vec![run(1, &MIX)]), &side(vec![run(2, &MIX)]), &bad).is_err());
}

#[test]
fn too_few_samples_are_not_tested() {
    let base = [Name {
        name: "few",
        n: 20,
        median_ns: 1e6,
        sigma: 0.3,
    }];
    let cand = slower(&base, "few", 3.0);
    let r = pair(5, &base, &cand, &DiffOptions::default());
    let row = &r.rows[0];
    assert_eq!(row.verdict, Verdict::Same);
    for m in [Metric::P50, Metric::P95, Metric::P99] {
        let t = row.tests.iter().find(|t| t.metric == m).unwrap();
        assert_eq!(t.outcome, Outcome::TooFewSamples);
        assert!(t.p_value.is_none());
    }
}
