//! Run comparison and the regression gate behind `ferret diff`, as plain
//! data: [`diff`] folds the runs of each side into per-name (or per-path)
//! state and [`compare`] turns two sides into a [`DiffReport`].
//!
//! State per side: one [`KeyStats`] per distinct name or path (count,
//! total, self time, a mergeable latency sketch) plus three quantiles and a
//! count per run. Memory grows with names × runs, never with spans.
//!
//! The gate flags a metric (p50, p95, p99, calls per root) of a name only
//! when all of these hold (see `docs/diff.md`):
//! 1. both sides have at least [`min_samples`] values for the quantile;
//! 2. the relative change is at least the threshold;
//! 3. the absolute change is at least `min_abs`;
//! 4. the change is significant — beyond half the threshold, see [`MARGIN`] —
//!    after Benjamini–Hochberg across names (one family per metric): an
//!    exact bootstrap over histogram buckets with one run on a side, a
//!    Mann–Whitney test on run-level values with several runs on both sides.

use super::paths::folded_frame;
use super::query::{select, Query};
use super::scan::{scan, Fold, Resolved, ScanOptions};
use super::sketch::LatencySketch;
use super::stats::{
    benjamini_hochberg, compare_bootstrap, mann_whitney_greater, min_samples, poisson_rate_test,
    quantile_bootstrap,
};
use crate::error::{Error, Result};
use crate::store::{FileKind, Store};
use ferret_format::codec::{HeadFields, SpanHead};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// What rows are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Span name (default).
    #[default]
    Name,
    /// Call path from the root, frames joined by `;`.
    Path,
}

impl By {
    /// "name" or "path".
    pub fn as_str(&self) -> &'static str {
        match self {
            By::Name => "name",
            By::Path => "path",
        }
    }
}

/// Which clock durations are compared on (the same as every report's).
pub use super::query::Clock;

/// How significance was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One run on a side: exact bootstrap over the merged histograms.
    Bootstrap,
    /// Several runs on both sides: Mann–Whitney on run-level values.
    RankTest,
}

/// A metric the gate tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median duration.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Spans of this name per root span (catches N+1 regressions).
    CallsPerRoot,
}

impl Metric {
    /// All tested metrics, in display order.
    pub const ALL: [Metric; 4] = [Metric::P50, Metric::P95, Metric::P99, Metric::CallsPerRoot];

    /// "p50", "p95", "p99" or "calls_per_root".
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::CallsPerRoot => "calls_per_root",
        }
    }

    fn quantile(&self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.50),
            Metric::P95 => Some(0.95),
            Metric::P99 => Some(0.99),
            Metric::CallsPerRoot => None,
        }
    }
}

/// The verdict of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Verdict {
    /// A metric got significantly worse.
    #[serde(rename = "regressed")]
    Regressed,
    /// A metric got significantly better, none worse.
    #[serde(rename = "improved")]
    Improved,
    /// Only in the candidate.
    #[serde(rename = "new")]
    New,
    /// Only in the base.
    #[serde(rename = "gone")]
    Gone,
    /// No significant change.
    #[serde(rename = "~")]
    Same,
}

impl Verdict {
    /// "regressed", "improved", "new", "gone" or "~".
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::New => "new",
            Verdict::Gone => "gone",
            Verdict::Same => "~",
        }
    }
}

/// Why a metric was or was not flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fewer samples (or runs) than the minimum on a side: not tested.
    TooFewSamples,
    /// Relative change below the threshold.
    BelowThreshold,
    /// Absolute change below `min_abs`.
    BelowMinAbs,
    /// Not significant after the multiple-comparison correction.
    NotSignificant,
    /// Flagged: worse.
    Regressed,
    /// Flagged: better.
    Improved,
}

/// A per-name override of the gate, matched by glob (`*`, `?`, `[..]`).
/// Later rules override earlier ones for the fields they set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameRule {
    /// Glob over the row key (name, or `;`-joined path with `--by path`).
    pub pattern: String,
    /// Relative threshold (0.25 = 25%) for matching names.
    pub threshold: Option<f64>,
    /// Absolute threshold in ns for matching names.
    pub min_abs_ns: Option<f64>,
    /// Leave matching names out of the comparison entirely.
    pub exclude: bool,
}

/// Options of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffOptions {
    /// Row key.
    pub by: By,
    /// Clock compared.
    pub clock: Clock,
    /// Minimum relative change (0.10 = 10%).
    pub threshold: f64,
    /// Minimum absolute change, ns.
    pub min_abs_ns: f64,
    /// False discovery rate of the Benjamini–Hochberg correction.
    pub alpha: f64,
    /// Per-name overrides and exclusions.
    pub rules: Vec<NameRule>,
    /// Names only in the candidate fail the gate.
    pub fail_on_new: bool,
    /// Names only in the base fail the gate.
    pub fail_on_gone: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            by: By::Name,
            clock: Clock::Wall,
            threshold: 0.10,
            min_abs_ns: 50_000.0,
            alpha: 0.05,
            rules: vec![],
            fail_on_new: false,
            fail_on_gone: false,
        }
    }
}

/// Statistics of one key (name or path) in a run or a side. Times in ns.
#[derive(Debug, Clone, Default)]
pub struct KeyStats {
    /// Spans (with or without a duration).
    pub count: u64,
    /// Spans with a duration.
    pub timed: u64,
    /// Sum of durations.
    pub total_ns: u64,
    /// Sum of self times.
    pub self_ns: u64,
    /// Shortest duration (u64::MAX when none).
    pub min_ns: u64,
    /// Longest duration.
    pub max_ns: u64,
    /// Durations.
    pub sketch: LatencySketch,
}

impl KeyStats {
    /// Empty statistics.
    pub fn new() -> KeyStats {
        KeyStats {
            min_ns: u64::MAX,
            ..KeyStats::default()
        }
    }

    /// Adds a span with duration `dur_ns` and self time `self_ns`.
    #[inline]
    pub fn record(&mut self, dur_ns: u64, self_ns: u64) {
        self.count += 1;
        self.timed += 1;
        self.total_ns = self.total_ns.saturating_add(dur_ns);
        self.self_ns = self.self_ns.saturating_add(self_ns);
        self.min_ns = self.min_ns.min(dur_ns);
        self.max_ns = self.max_ns.max(dur_ns);
        self.sketch.add(dur_ns);
    }

    /// Adds a span with duration `dur_ns`; its self time comes separately
    /// through [`KeyStats::add_self`].
    #[inline]
    pub fn record_duration(&mut self, dur_ns: u64) {
        self.record(dur_ns, 0);
    }

    /// Adds self time to the key.
    #[inline]
    pub fn add_self(&mut self, self_ns: u64) {
        self.self_ns = self.self_ns.saturating_add(self_ns);
    }

    /// Adds a span without a duration.
    pub fn record_untimed(&mut self) {
        self.count += 1;
    }

    /// Adds everything of `o`.
    pub fn merge(&mut self, o: &KeyStats) {
        self.count += o.count;
        self.timed += o.timed;
        self.total_ns = self.total_ns.saturating_add(o.total_ns);
        self.self_ns = self.self_ns.saturating_add(o.self_ns);
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
        self.sketch.merge(&o.sketch);
    }

    /// The `q` quantile within `[min, max]`, `None` without durations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        (self.timed > 0).then(|| self.sketch.quantile(q).clamp(self.min_ns, self.max_ns) as f64)
    }
}

/// One run folded into per-key statistics.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    /// Run id.
    pub run_id: String,
    /// Spans read.
    pub spans: u64,
    /// Root spans (no parent).
    pub roots: u64,
    /// Rows skipped as malformed.
    pub skipped_rows: u64,
    /// Per name (or path).
    pub keys: FxHashMap<String, KeyStats>,
}

impl RunData {
    /// An empty run.
    pub fn new(run_id: impl Into<String>) -> RunData {
        RunData {
            run_id: run_id.into(),
            ..RunData::default()
        }
    }

    /// The statistics of `key`, created empty if new.
    pub fn key(&mut self, key: &str) -> &mut KeyStats {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_owned(), KeyStats::new());
        }
        self.keys.get_mut(key).expect("just inserted")
    }
}

/// The per-run values of a key kept for the rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RunPoint {
    timed: u64,
    count: u64,
    q: [f64; 3],
}

#[derive(Debug, Clone, Default)]
struct SideKey {
    stats: KeyStats,
    /// Indexed like `SideData::run_ids`; `None` where the run lacks the key.
    runs: Vec<Option<RunPoint>>,
}

/// One side of a comparison: one or several runs merged.
#[derive(Debug, Clone)]
pub struct SideData {
    /// File the runs come from.
    pub file: String,
    /// Kind of that file.
    pub format: FileKind,
    /// Runs, in the order added.
    pub run_ids: Vec<String>,
    /// Roots of each run.
    pub run_roots: Vec<u64>,
    /// Spans read over all runs.
    pub spans: u64,
    /// Rows skipped over all runs.
    pub skipped_rows: u64,
    keys: BTreeMap<String, SideKey>,
}

impl SideData {
    /// An empty side.
    pub fn new(file: impl Into<String>, format: FileKind) -> SideData {
        SideData {
            file: file.into(),
            format,
            run_ids: vec![],
            run_roots: vec![],
            spans: 0,
            skipped_rows: 0,
            keys: BTreeMap::new(),
        }
    }

    /// Adds a run: merges its statistics and keeps its run-level quantiles.
    pub fn add_run(&mut self, run: RunData) {
        let idx = self.run_ids.len();
        self.run_ids.push(run.run_id);
        self.run_roots.push(run.roots);
        self.spans += run.spans;
        self.skipped_rows += run.skipped_rows;
        for (k, s) in run.keys {
            let point = RunPoint {
                timed: s.timed,
                count: s.count,
                q: [0.50, 0.95, 0.99].map(|q| s.quantile(q).unwrap_or(0.0)),
            };
            let e = self.keys.entry(k).or_insert_with(|| SideKey {
                stats: KeyStats::new(),
                runs: vec![],
            });
            e.stats.merge(&s);
            e.runs.resize(idx + 1, None);
            e.runs[idx] = Some(point);
        }
    }

    /// Roots over all runs.
    pub fn roots(&self) -> u64 {
        self.run_roots.iter().sum()
    }

    /// Merged statistics of a key.
    pub fn key(&self, key: &str) -> Option<&KeyStats> {
        self.keys.get(key).map(|k| &k.stats)
    }

    fn info(&self) -> SideInfo {
        SideInfo {
            file: self.file.clone(),
            run_ids: self.run_ids.clone(),
            format: self.format,
            spans: self.spans,
            roots: self.roots(),
            skipped_rows: self.skipped_rows,
        }
    }
}

/// Where a side came from, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideInfo {
    /// File.
    pub file: String,
    /// Runs compared.
    pub run_ids: Vec<String>,
    /// Kind of file.
    pub format: FileKind,
    /// Spans read.
    pub spans: u64,
    /// Root spans.
    pub roots: u64,
    /// Malformed rows skipped.
    pub skipped_rows: u64,
}

/// One side's figures in a row. Times in ns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowStats {
    /// Spans.
    pub count: u64,
    /// Spans per root span of the side (`None` without roots).
    pub calls_per_root: Option<f64>,
    /// Median.
    pub p50_ns: Option<f64>,
    /// 95th percentile.
    pub p95_ns: Option<f64>,
    /// 99th percentile.
    pub p99_ns: Option<f64>,
    /// Sum of durations.
    pub total_ns: u64,
    /// Sum of self times.
    pub self_ns: u64,
    /// Mean duration.
    pub avg_ns: Option<f64>,
}

/// Relative changes, candidate against base (0.25 = +25%); `None` where
/// either side lacks the figure or the base is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    /// Count.
    pub count: Option<f64>,
    /// Calls per root.
    pub calls_per_root: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Total time.
    pub total: Option<f64>,
    /// Self time.
    pub self_time: Option<f64>,
}

/// The gate's work on one metric of one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricTest {
    /// Metric.
    pub metric: Metric,
    /// Relative change.
    pub change: Option<f64>,
    /// Absolute change in ns (for calls per root: the change times the mean
    /// duration, i.e. time per root).
    pub abs_ns: f64,
    /// Raw two-sided p-value (`None` when not tested).
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value.
    pub q_value: Option<f64>,
    /// Bootstrap interval of the relative change at `1 - alpha`, when computed.
    pub ci: Option<(f64, f64)>,
    /// Result.
    pub outcome: Outcome,
}

/// One compared name (or path).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    /// Name, or `;`-joined path.
    pub name: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Base figures (`None` for a new name).
    pub base: Option<RowStats>,
    /// Candidate figures (`None` for a gone name).
    pub candidate: Option<RowStats>,
    /// Relative changes.
    pub change: Changes,
    /// Tests of the metrics (empty for new or gone names).
    pub tests: Vec<MetricTest>,
    /// Threshold applied to this row.
    pub threshold: f64,
    /// Absolute threshold applied, ns.
    pub min_abs_ns: f64,
}

impl DiffRow {
    /// Metrics flagged in the direction of the verdict.
    pub fn flagged(&self) -> impl Iterator<Item = &MetricTest> {
        let want = match self.verdict {
            Verdict::Regressed => Some(Outcome::Regressed),
            Verdict::Improved => Some(Outcome::Improved),
            _ => None,
        };
        self.tests.iter().filter(move |t| Some(t.outcome) == want)
    }
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// Base side.
    pub base: SideInfo,
    /// Candidate side.
    pub candidate: SideInfo,
    /// Row key.
    pub by: By,
    /// Clock.
    pub clock: Clock,
    /// Test used.
    pub method: Method,
    /// Default relative threshold.
    pub threshold: f64,
    /// Default absolute threshold, ns.
    pub min_abs_ns: f64,
    /// False discovery rate.
    pub alpha: f64,
    /// Rows: regressed, improved, new, gone, then unchanged; heaviest first within each.
    pub rows: Vec<DiffRow>,
    /// Rows regressed.
    pub regressions: usize,
    /// Rows improved.
    pub improvements: usize,
    /// Names only in the candidate.
    pub new: usize,
    /// Names only in the base.
    pub gone: usize,
    /// Names left out by a rule.
    pub excluded: usize,
    /// New names fail the gate.
    pub fail_on_new: bool,
    /// Gone names fail the gate.
    pub fail_on_gone: bool,
    /// True when the gate fails: a regression, or a new / gone name when
    /// those are asked to fail.
    pub failed: bool,
}

/// Runs of one file to compare as one side.
#[derive(Debug)]
pub struct SideSpec<'a> {
    /// The file.
    pub store: &'a Store,
    /// Runs (at least one).
    pub runs: Vec<String>,
}

/// Compares two sides read from files: folds every run (one streaming pass
/// each), then [`compare`]s on `opts.clock`. Errors on an unknown run or a
/// side without spans. `progress` gets (spans, bytes) of
/// the run being read now and then.
pub fn diff(
    base: &SideSpec<'_>,
    candidate: &SideSpec<'_>,
    opts: &DiffOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DiffReport> {
    let mut sides = vec![];
    for (what, spec) in [("base", base), ("candidate", candidate)] {
        if spec.runs.is_empty() {
            return Err(Error::Invalid(format!("the {what} side has no run")));
        }
        let mut side = SideData::new(spec.store.path().display().to_string(), spec.store.kind());
        for run in &spec.runs {
            let data = collect_run(spec.store, run, opts.by, opts.clock, progress)?;
            if data.spans == 0 {
                return Err(Error::Invalid(format!(
                    "{}: run {run} ({what}) has no spans to compare",
                    spec.store.path().display()
                )));
            }
            side.add_run(data);
        }
        sides.push(side);
    }
    let cand = sides.pop().expect("two sides");
    let base = sides.pop().expect("two sides");
    compare(&base, &cand, opts)
}

/// Folds one run into per-key statistics (one streaming pass through the
/// [scan driver](mod@super::scan), which gives self times and call paths the
/// same way for native and ferret-io files), on `clock`.
pub fn collect_run(
    store: &Store,
    run: &str,
    by: By,
    clock: Clock,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunData> {
    let q = Query {
        clock,
        ..Query::run(run)
    };
    let sel = select(store, &q)?;
    let mut fold = DiffFold {
        by,
        by_id: Vec::new(),
        // A native file's path ids come from its path table; a ferret-io
        // file's are given densely by the reader.
        dense: match store.kind() {
            FileKind::Native => store.paths()?.len() + 1,
            FileKind::FerretIo => usize::MAX,
        },
        far: Default::default(),
        by_name: Vec::new(),
        roots: 0,
    };
    let opts = ScanOptions {
        with_tags: false,
        progress: Some(progress),
    };
    let scanned = scan(store, &sel, opts, &mut fold).map_err(|e| {
        Error::Invalid(format!(
            "{}: reading run {run} failed: {e}",
            store.path().display()
        ))
    })?;
    let mut data = RunData::new(run);
    data.spans = scanned.spans;
    data.roots = fold.roots;
    data.skipped_rows = scanned.skipped_rows;
    let name_key = |id: usize| folded_frame(scanned.name(id as u32));
    let far = fold.far.into_iter().map(|(i, s)| (i as usize, s));
    for (i, s) in fold.by_id.into_iter().enumerate().chain(far) {
        if s.count == 0 {
            continue;
        }
        let key = match by {
            By::Name => name_key(i),
            By::Path => {
                let frames: Vec<String> = scanned
                    .paths
                    .frames(i as u32)
                    .into_iter()
                    .map(|n| folded_frame(scanned.name(n)))
                    .collect();
                if frames.is_empty() {
                    format!("?path{i}")
                } else {
                    frames.join(";")
                }
            }
        };
        data.key(&key).merge(&s);
    }
    for (i, s) in fold.by_name.into_iter().enumerate() {
        if s.count > 0 {
            data.key(&name_key(i)).merge(&s);
        }
    }
    Ok(data)
}

fn grow(v: &mut Vec<KeyStats>, i: usize) -> &mut KeyStats {
    if i >= v.len() {
        v.resize_with(i + 1, KeyStats::new);
    }
    &mut v[i]
}

/// Per-key state of one run: indexed by name id (`--by name`) or path id
/// (`--by path`, where spans without a path fall back to `by_name`).
struct DiffFold {
    by: By,
    by_id: Vec<KeyStats>,
    /// Path ids from here on are not in a native file's path table
    /// (damaged blocks): they go to `far`, not to a vector as long as the
    /// id.
    dense: usize,
    far: std::collections::BTreeMap<u32, KeyStats>,
    by_name: Vec<KeyStats>,
    roots: u64,
}

impl DiffFold {
    #[inline]
    fn slot(&mut self, name: u32, path: u32) -> &mut KeyStats {
        match self.by {
            By::Name => grow(&mut self.by_id, name as usize),
            By::Path if path != 0 && (path as usize) < self.dense => {
                grow(&mut self.by_id, path as usize)
            }
            // `new`, not `default`: its minimum starts at u64::MAX.
            #[allow(clippy::unwrap_or_default)]
            By::Path if path != 0 => self.far.entry(path).or_insert_with(KeyStats::new),
            By::Path => grow(&mut self.by_name, name as usize),
        }
    }
}

impl Fold for DiffFold {
    fn heads_only(&self) -> bool {
        true
    }

    fn head_fields(&self) -> HeadFields {
        HeadFields::PARENT | HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN
    }

    #[inline(always)]
    fn head(&mut self, h: &SpanHead, name: u32) {
        self.roots += (h.parent == 0) as u64;
        self.slot(name, h.path).record_duration(h.dur_ns);
    }

    fn span(&mut self, r: Resolved<'_>) {
        self.roots += r.span.parent_id().is_none() as u64;
        let s = self.slot(r.span.name, r.path);
        match r.span.duration_ns() {
            Some(d) => s.record_duration(d),
            None => s.record_untimed(),
        }
    }

    #[inline(always)]
    fn self_time(&mut self, name: u32, path: u32, self_ns: u64) {
        self.slot(name, path).add_self(self_ns);
    }
}

/// The gate settings that apply to one key.
struct Applied {
    threshold: f64,
    min_abs_ns: f64,
    exclude: bool,
}

struct Rules {
    set: Vec<(globset::GlobMatcher, NameRule)>,
}

impl Rules {
    fn new(rules: &[NameRule]) -> Result<Rules> {
        let mut set = vec![];
        for r in rules {
            let g = globset::GlobBuilder::new(&r.pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| Error::Invalid(format!("bad name pattern '{}': {e}", r.pattern)))?;
            set.push((g.compile_matcher(), r.clone()));
        }
        Ok(Rules { set })
    }

    fn apply(&self, key: &str, opts: &DiffOptions) -> Applied {
        let mut a = Applied {
            threshold: opts.threshold,
            min_abs_ns: opts.min_abs_ns,
            exclude: false,
        };
        for (g, r) in &self.set {
            if g.is_match(key) {
                if let Some(t) = r.threshold {
                    a.threshold = t;
                }
                if let Some(m) = r.min_abs_ns {
                    a.min_abs_ns = m;
                }
                a.exclude |= r.exclude;
            }
        }
        a
    }
}

fn rel(base: Option<f64>, cand: Option<f64>) -> Option<f64> {
    match (base, cand) {
        (Some(b), Some(c)) if b > 0.0 && b.is_finite() && c.is_finite() => Some(c / b - 1.0),
        _ => None,
    }
}

fn row_stats(s: &KeyStats, roots: u64) -> RowStats {
    RowStats {
        count: s.count,
        calls_per_root: (roots > 0).then(|| s.count as f64 / roots as f64),
        p50_ns: s.quantile(0.50),
        p95_ns: s.quantile(0.95),
        p99_ns: s.quantile(0.99),
        total_ns: s.total_ns,
        self_ns: s.self_ns,
        avg_ns: (s.timed > 0).then(|| s.total_ns as f64 / s.timed as f64),
    }
}

/// A test before the correction: its p-value, if it was run.
struct Pending {
    row: usize,
    test: usize,
}

/// Compares two sides. Pure: the same sides give the same report.
pub fn compare(base: &SideData, cand: &SideData, opts: &DiffOptions) -> Result<DiffReport> {
    if !(opts.threshold >= 0.0 && opts.min_abs_ns >= 0.0 && opts.alpha > 0.0 && opts.alpha < 1.0) {
        return Err(Error::Invalid(
            "threshold and min-abs must be ≥ 0, alpha in (0, 1)".into(),
        ));
    }
    let rules = Rules::new(&opts.rules)?;
    let method = if base.run_ids.len() >= 2 && cand.run_ids.len() >= 2 {
        Method::RankTest
    } else {
        Method::Bootstrap
    };
    let (roots_b, roots_c) = (base.roots(), cand.roots());
    let mut keys: Vec<&String> = base.keys.keys().chain(cand.keys.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rows: Vec<DiffRow> = vec![];
    let mut pending: Vec<Pending> = vec![];
    let mut excluded = 0;
    for key in keys {
        let applied = rules.apply(key, opts);
        if applied.exclude {
            excluded += 1;
            continue;
        }
        let kb = base.keys.get(key).filter(|k| k.stats.count > 0);
        let kc = cand.keys.get(key).filter(|k| k.stats.count > 0);
        let sb = kb.map(|k| row_stats(&k.stats, roots_b));
        let sc = kc.map(|k| row_stats(&k.stats, roots_c));
        let change = match (&sb, &sc) {
            (Some(b), Some(c)) => Changes {
                count: rel(Some(b.count as f64), Some(c.count as f64)),
                calls_per_root: rel(b.calls_per_root, c.calls_per_root),
                p50: rel(b.p50_ns, c.p50_ns),
                p95: rel(b.p95_ns, c.p95_ns),
                p99: rel(b.p99_ns, c.p99_ns),
                total: rel(Some(b.total_ns as f64), Some(c.total_ns as f64)),
                self_time: rel(Some(b.self_ns as f64), Some(c.self_ns as f64)),
            },
            _ => Changes::default(),
        };
        let mut tests = vec![];
        let verdict = match (kb, kc) {
            (None, Some(_)) => Verdict::New,
            (Some(_), None) => Verdict::Gone,
            (None, None) => continue,
            (Some(kb), Some(kc)) => {
                let (b, c) = (sb.as_ref().expect("base"), sc.as_ref().expect("cand"));
                for m in Metric::ALL {
                    let margin = applied.threshold * MARGIN;
                    let t = test_metric(m, kb, kc, b, c, base, cand, method, opts.alpha, margin);
                    if t.p_value.is_some() {
                        pending.push(Pending {
                            row: rows.len(),
                            test: tests.len(),
                        });
                    }
                    tests.push(t);
                }
                Verdict::Same
            }
        };
        rows.push(DiffRow {
            name: key.clone(),
            verdict,
            base: sb,
            candidate: sc,
            change,
            tests,
            threshold: applied.threshold,
            min_abs_ns: applied.min_abs_ns,
        });
    }
    // Benjamini–Hochberg across names, one family per metric, then the gate.
    let mut adjusted: Vec<(usize, f64)> = Vec::with_capacity(pending.len());
    for m in Metric::ALL {
        let family: Vec<usize> = (0..pending.len())
            .filter(|&i| rows[pending[i].row].tests[pending[i].test].metric == m)
            .collect();
        let ps: Vec<f64> = family
            .iter()
            .map(|&i| {
                rows[pending[i].row].tests[pending[i].test]
                    .p_value
                    .unwrap_or(1.0)
            })
            .collect();
        adjusted.extend(family.into_iter().zip(benjamini_hochberg(&ps)));
    }
    for (i, q) in adjusted {
        let p = &pending[i];
        let row = &mut rows[p.row];
        let (threshold, min_abs) = (row.threshold, row.min_abs_ns);
        let t = &mut row.tests[p.test];
        t.q_value = Some(q);
        let change = t.change.unwrap_or(0.0);
        t.outcome = if change.abs() < threshold || t.change.is_none() {
            Outcome::BelowThreshold
        } else if t.abs_ns.abs() < min_abs {
            Outcome::BelowMinAbs
        } else if q > opts.alpha {
            Outcome::NotSignificant
        } else if change > 0.0 {
            Outcome::Regressed
        } else {
            Outcome::Improved
        };
    }
    for row in &mut rows {
        if row.verdict != Verdict::Same {
            continue;
        }
        if row.tests.iter().any(|t| t.outcome == Outcome::Regressed) {
            row.verdict = Verdict::Regressed;
        } else if row.tests.iter().any(|t| t.outcome == Outcome::Improved) {
            row.verdict = Verdict::Improved;
        }
    }
    let weight = |r: &DiffRow| {
        r.base
            .as_ref()
            .map_or(0, |s| s.total_ns)
            .max(r.candidate.as_ref().map_or(0, |s| s.total_ns))
    };
    rows.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then_with(|| weight(b).cmp(&weight(a)))
            .then_with(|| a.name.cmp(&b.name))
    });
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let (regressions, improvements, new, gone) = (
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::New),
        count(Verdict::Gone),
    );
    Ok(DiffReport {
        base: base.info(),
        candidate: cand.info(),
        by: opts.by,
        clock: opts.clock,
        method,
        threshold: opts.threshold,
        min_abs_ns: opts.min_abs_ns,
        alpha: opts.alpha,
        failed: regressions > 0 || (opts.fail_on_new && new > 0) || (opts.fail_on_gone && gone > 0),
        rows,
        regressions,
        improvements,
        new,
        gone,
        excluded,
        fail_on_new: opts.fail_on_new,
        fail_on_gone: opts.fail_on_gone,
    })
}

/// The significance test asks whether the change lies beyond this fraction
/// of the threshold (not merely beyond 0): sampling noise on heavy tails
/// then cannot make a real but sub-threshold difference a regression.
pub const MARGIN: f64 = 0.5;

/// Runs one metric's test (before the correction: the outcome is set to
/// `TooFewSamples` or left for the gate).
#[allow(clippy::too_many_arguments)]
fn test_metric(
    m: Metric,
    kb: &SideKey,
    kc: &SideKey,
    b: &RowStats,
    c: &RowStats,
    base: &SideData,
    cand: &SideData,
    method: Method,
    alpha: f64,
    margin: f64,
) -> MetricTest {
    let mut t = MetricTest {
        metric: m,
        change: None,
        abs_ns: 0.0,
        p_value: None,
        q_value: None,
        ci: None,
        outcome: Outcome::TooFewSamples,
    };
    match m.quantile() {
        Some(q) => {
            let qi = match m {
                Metric::P50 => 0,
                Metric::P95 => 1,
                _ => 2,
            };
            let (vb, vc) = match qi {
                0 => (b.p50_ns, c.p50_ns),
                1 => (b.p95_ns, c.p95_ns),
                _ => (b.p99_ns, c.p99_ns),
            };
            t.change = rel(vb, vc);
            t.abs_ns = vc.unwrap_or(0.0) - vb.unwrap_or(0.0);
            let need = min_samples(q);
            if kb.stats.timed < need || kc.stats.timed < need {
                return t;
            }
            match method {
                Method::Bootstrap => {
                    let db = quantile_bootstrap(&kb.stats.sketch.buckets(), q);
                    let dc = quantile_bootstrap(&kc.stats.sketch.buckets(), q);
                    let r = compare_bootstrap(&db, &dc, alpha, margin);
                    t.p_value = Some(r.p_value);
                    t.ci = Some((r.ci_low, r.ci_high));
                }
                Method::RankTest => {
                    let pts = |k: &SideKey| -> Vec<f64> {
                        k.runs
                            .iter()
                            .flatten()
                            .filter(|p| p.timed >= need)
                            .map(|p| p.q[qi])
                            .collect()
                    };
                    let (xb, xc) = (pts(kb), pts(kc));
                    if xb.len() < 2 || xc.len() < 2 {
                        return t;
                    }
                    t.p_value = Some(rank_test(&xb, &xc, margin));
                }
            }
        }
        None => {
            t.change = rel(b.calls_per_root, c.calls_per_root);
            let avg = match (b.avg_ns, c.avg_ns) {
                (Some(x), Some(y)) => (x + y) / 2.0,
                (x, y) => x.or(y).unwrap_or(0.0),
            };
            t.abs_ns = (c.calls_per_root.unwrap_or(0.0) - b.calls_per_root.unwrap_or(0.0)) * avg;
            let need = min_samples(0.5);
            let (rb, rc) = (base.roots(), cand.roots());
            if rb < need || rc < need {
                return t;
            }
            match method {
                Method::Bootstrap => {
                    t.p_value = Some(poisson_rate_test(
                        kb.stats.count,
                        rb,
                        kc.stats.count,
                        rc,
                        margin,
                    ));
                }
                Method::RankTest => {
                    let pts = |k: &SideKey, side: &SideData| -> Vec<f64> {
                        side.run_roots
                            .iter()
                            .enumerate()
                            .filter(|(_, &r)| r > 0)
                            .map(|(i, &r)| {
                                let n = k.runs.get(i).copied().flatten().map_or(0, |p| p.count);
                                n as f64 / r as f64
                            })
                            .collect()
                    };
                    let (xb, xc) = (pts(kb, base), pts(kc, cand));
                    if xb.len() < 2 || xc.len() < 2 {
                        return t;
                    }
                    t.p_value = Some(rank_test(&xb, &xc, margin));
                }
            }
        }
    }
    t.outcome = Outcome::NotSignificant;
    t
}

/// Two-sided rank test of run-level values beyond ±`margin`: the candidate
/// above the base scaled by `1 + margin`, or below it scaled by `1 - margin`.
fn rank_test(base: &[f64], cand: &[f64], margin: f64) -> f64 {
    let up: Vec<f64> = base.iter().map(|v| v * (1.0 + margin)).collect();
    let down: Vec<f64> = base.iter().map(|v| v * (1.0 - margin)).collect();
    (2.0 * mann_whitney_greater(&up, cand).min(mann_whitney_greater(cand, &down))).min(1.0)
}

/// Self time per call path on each side, for a differential flame graph:
/// `(frames joined by ';', base ns, candidate ns)`, averaged over each
/// side's runs so that sides with different run counts compare. Memory: the
/// distinct paths.
pub fn diff_paths(base: &SideSpec<'_>, cand: &SideSpec<'_>) -> Result<Vec<(String, f64, f64)>> {
    let mut all: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (side, spec) in [(0, base), (1, cand)] {
        let k = spec.runs.len().max(1) as f64;
        for run in &spec.runs {
            let (paths, _) = super::paths::fold_paths(spec.store, &Query::run(run.clone()))?;
            for p in paths {
                let e = all.entry(p.stack).or_default();
                if side == 0 {
                    e.0 += p.self_ns as f64 / k;
                } else {
                    e.1 += p.self_ns as f64 / k;
                }
            }
        }
    }
    Ok(all.into_iter().map(|(k, (a, b))| (k, a, b)).collect())
}
