//! Per-name statistics of a run: count, total, min, max, mean, self time,
//! errors (exact) and p50/p95/p99 from a DDSketch (at most 1% relative error).
//! State: one accumulator per distinct name.

use super::parallel::{scan_threads, Merge};
use super::query::{select, Query};
use super::scan::{Fold, Resolved, ScanOptions};
use super::sketch::LatencySketch;
use crate::error::Result;
use crate::store::{FileKind, RunInfo, Store};
use ferret_format::codec::{HeadColumns, HeadFields, SpanHead};
use serde::Serialize;

/// Durations staged per name before they go into its sketch.
///
/// With hundreds of names, each span's histogram update lands on a cold
/// cache line of a different name's histogram, and the scan waits for it
/// (18% of a 300-name ferret-io analysis went to that one load). Staged
/// values go in by the batch, in a tight loop whose misses overlap. The
/// sketch's content does not depend on the order values arrive in, so
/// the results are the same. With few names the histograms stay in cache
/// and staging only adds work (8% more CPU on a 10-name run), so a fold
/// stages only once it has more than [`STAGE_FROM_NAMES`] name ids.
const STAGE: usize = 32;

/// Name ids past which a summary stages durations (see [`STAGE`]).
const STAGE_FROM_NAMES: usize = 64;

impl Acc {
    /// Adds the duration of one span (counted in `count` by the caller).
    #[inline(always)]
    fn add_timed(&mut self, d: u64, stage: bool) {
        self.total = self.total.saturating_add(d);
        // Branches, not selects: a new extreme is rare once a name has a
        // few spans, and the common case then stores nothing.
        if d < self.min {
            self.min = d;
        }
        if d > self.max {
            self.max = d;
        }
        if !stage {
            self.sketch.add(d);
            return;
        }
        if self.n_staged == STAGE {
            self.flush();
        }
        // `% STAGE` (a mask) instead of a bounds check: `n_staged < STAGE`.
        self.staged[self.n_staged % STAGE] = d;
        self.n_staged += 1;
    }

    /// Moves the staged durations into the sketch.
    fn flush(&mut self) {
        for &v in &self.staged[..self.n_staged] {
            self.sketch.add(v);
        }
        self.n_staged = 0;
    }
}

struct Acc {
    count: u64,
    /// Spans without a duration (ferret-io only): the spans with one are
    /// `count - untimed`, so that a native span costs one count.
    untimed: u64,
    total: u64,
    min: u64,
    max: u64,
    self_ns: u64,
    errors: u64,
    sketch: LatencySketch,
    /// Durations not yet in `sketch` (see [`STAGE`]): the first
    /// `n_staged`, in place (no capacity check per span).
    staged: [u64; STAGE],
    n_staged: usize,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            count: 0,
            untimed: 0,
            total: 0,
            min: u64::MAX,
            max: 0,
            self_ns: 0,
            errors: 0,
            sketch: LatencySketch::new(),
            staged: [0; STAGE],
            n_staged: 0,
        }
    }
}

/// Statistics of one span name. Times are in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameSummary {
    /// The span name.
    pub name: String,
    /// Spans with this name (including those without a duration).
    pub count: u64,
    /// Sum of durations.
    pub total_ns: u64,
    /// Mean duration (over spans with a duration).
    pub avg_ns: f64,
    /// Shortest duration.
    pub min_ns: u64,
    /// Longest duration.
    pub max_ns: u64,
    /// Median (sketch).
    pub p50_ns: f64,
    /// 95th percentile (sketch).
    pub p95_ns: f64,
    /// 99th percentile (sketch).
    pub p99_ns: f64,
    /// Self time: durations minus direct children's, each span floored at 0.
    pub self_ns: u64,
    /// Spans whose status is not "ok".
    pub error_count: u64,
    /// `error_count / count`.
    pub error_rate: f64,
}

/// The per-name summary of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Run analyzed.
    pub run_id: String,
    /// True when the run was picked as the file's latest.
    pub latest: bool,
    /// Kind of file.
    pub format: FileKind,
    /// The recorder's counters for the run (`None` for ferret-io files).
    pub counters: Option<RunInfo>,
    /// Names with at least one duration that matched the query, before
    /// the limit.
    pub names_total: usize,
    /// Spans read.
    pub spans: u64,
    /// Rows that could not be parsed and were skipped.
    pub skipped_rows: u64,
    /// First start to last end, ns.
    pub wall_ns: u64,
    /// First span start, ns since the epoch (0 if no span).
    pub first_start_ns: i64,
    /// One entry per name with at least one duration.
    pub stats: Vec<NameSummary>,
}

/// Order of summary rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Total time, largest first (default).
    #[default]
    Total,
    /// Count, largest first.
    Count,
    /// Mean, largest first.
    Avg,
    /// Max, largest first.
    Max,
    /// p99, largest first.
    P99,
    /// Self time, largest first.
    SelfTime,
    /// Error count, largest first.
    Errors,
    /// Name, ascending.
    Name,
}

impl std::str::FromStr for SortKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "total" => SortKey::Total,
            "count" => SortKey::Count,
            "avg" => SortKey::Avg,
            "max" => SortKey::Max,
            "p99" => SortKey::P99,
            "self" => SortKey::SelfTime,
            "errors" => SortKey::Errors,
            "name" => SortKey::Name,
            _ => {
                return Err(format!(
                    "unknown sort key '{s}' (total, count, avg, max, p99, self, errors, name)"
                ))
            }
        })
    }
}

impl Summary {
    /// Sorts rows by `key` (ties by name) and keeps the first `limit` (0 = all).
    pub fn sort_and_limit(&mut self, key: SortKey, limit: usize) {
        use std::cmp::Ordering;
        let f = |a: &NameSummary, b: &NameSummary| -> Ordering {
            let o = match key {
                SortKey::Total => b.total_ns.cmp(&a.total_ns),
                SortKey::Count => b.count.cmp(&a.count),
                SortKey::Avg => b.avg_ns.total_cmp(&a.avg_ns),
                SortKey::Max => b.max_ns.cmp(&a.max_ns),
                SortKey::P99 => b.p99_ns.total_cmp(&a.p99_ns),
                SortKey::SelfTime => b.self_ns.cmp(&a.self_ns),
                SortKey::Errors => b.error_count.cmp(&a.error_count),
                SortKey::Name => Ordering::Equal,
            };
            o.then_with(|| a.name.cmp(&b.name))
        };
        self.stats.sort_by(f);
        if limit > 0 {
            self.stats.truncate(limit);
        }
    }
}

/// Options of [`summarize`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryOptions {
    /// Row order.
    pub sort: SortKey,
    /// Rows to keep; 0 keeps all.
    pub limit: usize,
}

/// The per-name state of a summary.
#[derive(Default)]
struct SummaryFold {
    accs: Vec<Acc>,
    /// Whether durations are staged: `accs` holds more than
    /// [`STAGE_FROM_NAMES`] names (set when it grows).
    stage: bool,
    first: i64,
    last: i64,
}

impl SummaryFold {
    fn new() -> SummaryFold {
        SummaryFold {
            accs: Vec::new(),
            stage: false,
            first: i64::MAX,
            last: i64::MIN,
        }
    }

    #[inline(always)]
    fn acc(&mut self, name: u32) -> &mut Acc {
        self.acc_staged(name).0
    }

    /// The state of `name`, and whether its durations are to be staged.
    #[inline(always)]
    fn acc_staged(&mut self, name: u32) -> (&mut Acc, bool) {
        let i = name as usize;
        if i < self.accs.len() {
            (&mut self.accs[i], self.stage)
        } else {
            self.grow(i)
        }
    }

    /// Makes room for name id `i` (a new name: rare, out of the scan loop).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: usize) -> (&mut Acc, bool) {
        self.accs.resize_with(i + 1, Acc::new);
        self.stage = self.accs.len() > STAGE_FROM_NAMES;
        (&mut self.accs[i], self.stage)
    }

    /// Counts a span's head (count, errors, duration; the time range comes
    /// through [`Fold::range`]) and returns its name's state, for
    /// [`Fold::head_and_self`] to add the self time with the same lookup.
    #[inline(always)]
    fn count_head(&mut self, h: &SpanHead, name: u32) -> &mut Acc {
        let (a, stage) = self.acc_staged(name);
        a.count += 1;
        a.errors += h.is_error() as u64;
        a.add_timed(h.dur_ns, stage);
        a
    }
}

/// Counts spans `i..` of `c` (count, errors, duration, self time) into
/// their names' states, up to the first whose name has no state yet;
/// returns where it stopped (`c.len()` after the last).
///
/// Not inlined: a call per block, and the loop gets registers of its own
/// (inlined into the scan, it kept its slices' pointers on the stack).
#[inline(never)]
fn count_spans<const STAGE: bool>(
    accs: &mut [Acc],
    c: &HeadColumns<'_>,
    names: &[u32],
    mut i: usize,
) -> usize {
    let status = c.status_bytes();
    let n = status.len();
    // One length for all (no bounds check per span).
    let (path, dur, child) = (&c.path[..n], &c.dur[..n], &c.child[..n]);
    while i < n {
        let name = names.get(path[i] as usize).copied().unwrap_or(0);
        let Some(a) = accs.get_mut(name as usize) else {
            break;
        };
        let d = dur[i];
        a.count += 1;
        if HeadColumns::error_of(status[i]) {
            a.errors += 1;
        }
        a.add_timed(d, STAGE);
        a.self_ns = a.self_ns.saturating_add(d.saturating_sub(child[i]));
        i += 1;
    }
    i
}

impl Fold for SummaryFold {
    fn heads_only(&self) -> bool {
        true
    }

    /// The time range comes per block ([`Fold::range`]): no starts.
    fn head_fields(&self) -> HeadFields {
        HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN | HeadFields::ERROR
    }

    fn ranges(&self) -> bool {
        true
    }

    fn range(&mut self, first_start_ns: i64, last_end_ns: i64) {
        self.first = self.first.min(first_start_ns);
        self.last = self.last.max(last_end_ns);
    }

    #[inline(always)]
    fn head(&mut self, h: &SpanHead, name: u32) {
        self.count_head(h, name);
    }

    #[inline(always)]
    fn head_and_self(&mut self, h: &SpanHead, name: u32) {
        let a = self.count_head(h, name);
        a.self_ns = a
            .self_ns
            .saturating_add(h.dur_ns.saturating_sub(h.child_ns));
    }

    /// Each span's name state (the time range comes per block).
    #[inline(always)]
    fn head_columns(&mut self, c: &HeadColumns<'_>, names: &[u32]) {
        let mut i = 0;
        while i < c.len() {
            // A loop for each staging choice, with the states in a local
            // (the stores into a state do not make the loop load them
            // again), until a name without a state yet.
            i = if self.stage {
                count_spans::<true>(&mut self.accs, c, names, i)
            } else {
                count_spans::<false>(&mut self.accs, c, names, i)
            };
            if i < c.len() {
                let name = names.get(c.path[i] as usize).copied().unwrap_or(0);
                self.grow(name as usize);
            }
        }
    }

    fn span(&mut self, r: Resolved<'_>) {
        let rec = r.span;
        self.first = self.first.min(rec.start_ns());
        self.last = self.last.max(match rec.duration_ns() {
            Some(_) => rec.end_ns(),
            None => rec.start_ns(),
        });
        let (a, stage) = self.acc_staged(rec.name);
        a.count += 1;
        a.errors += rec.status.is_error() as u64;
        match rec.duration_ns() {
            Some(d) => a.add_timed(d, stage),
            None => a.untimed += 1,
        }
    }

    #[inline(always)]
    fn self_time(&mut self, name: u32, _path: u32, self_ns: u64) {
        let a = self.acc(name);
        a.self_ns = a.self_ns.saturating_add(self_ns);
    }
}

impl Merge for SummaryFold {
    fn fresh(&self) -> Self {
        SummaryFold::new()
    }

    fn merge(&mut self, other: Self) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        for (i, a) in other.accs.into_iter().enumerate() {
            if a.count > 0 || a.self_ns > 0 {
                self.acc(i as u32).merge(a);
            }
        }
    }
}

/// What one file contributes to a summary: its per-name state, keyed by
/// name text so that files merge.
pub(crate) struct Partial {
    run: String,
    latest: bool,
    kind: FileKind,
    counters: Option<RunInfo>,
    spans: u64,
    skipped_rows: u64,
    first: i64,
    last: i64,
    names: Option<super::query::NameFilter>,
    accs: Vec<(String, Acc)>,
}

impl Acc {
    /// Adds `o`'s spans: exact for counts, totals, min/max and self time;
    /// the sketches merge as if every value had been added to one.
    fn merge(&mut self, mut o: Acc) {
        self.flush();
        o.flush();
        self.count += o.count;
        self.untimed += o.untimed;
        self.total = self.total.saturating_add(o.total);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.self_ns = self.self_ns.saturating_add(o.self_ns);
        self.errors += o.errors;
        self.sketch.merge(&o.sketch);
    }
}

/// Scans one file into a [`Partial`].
pub(crate) fn partial(
    store: &Store,
    q: &Query,
    threads: usize,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Partial> {
    let sel = select(store, q)?;
    let mut fold = SummaryFold::new();
    let scanned = scan_threads(
        store,
        &sel,
        ScanOptions {
            with_tags: false,
            progress,
        },
        threads,
        &mut fold,
    )?;
    let accs = fold
        .accs
        .into_iter()
        .enumerate()
        .filter(|(_, a)| a.count > 0)
        .map(|(i, mut a)| {
            a.flush();
            (scanned.name(i as u32).to_owned(), a)
        })
        .collect();
    Ok(Partial {
        run: sel.run,
        latest: sel.latest,
        kind: scanned.kind,
        counters: sel.counters,
        spans: scanned.spans,
        skipped_rows: scanned.skipped_rows,
        first: fold.first,
        last: fold.last,
        names: sel.names,
        accs,
    })
}

/// Merges the partials of one or more files into one summary.
pub(crate) fn finish(parts: Vec<Partial>, opts: &SummaryOptions) -> Summary {
    let mut by_name: rustc_hash::FxHashMap<String, Acc> = Default::default();
    let (mut first, mut last, mut n, mut skipped) = (i64::MAX, i64::MIN, 0u64, 0u64);
    let mut runs: Vec<String> = Vec::new();
    let latest = parts.iter().all(|p| p.latest);
    let kind = parts.first().map(|p| p.kind).unwrap_or_default();
    let mut counters: Option<RunInfo> = None;
    let all_counted = parts.iter().all(|p| p.counters.is_some());
    let names = parts.first().and_then(|p| p.names.clone());
    for p in parts {
        first = first.min(p.first);
        last = last.max(p.last);
        n += p.spans;
        skipped += p.skipped_rows;
        if !runs.contains(&p.run) {
            runs.push(p.run);
        }
        if let (true, Some(c)) = (all_counted, p.counters) {
            counters = Some(match counters {
                None => c,
                Some(mut m) => {
                    m.spans += c.spans;
                    m.accepted += c.accepted;
                    m.dropped_queue += c.dropped_queue;
                    m.dropped_write += c.dropped_write;
                    m.sampled_out += c.sampled_out;
                    m.shed += c.shed;
                    m.processes_unclosed += c.processes_unclosed;
                    m.lost_unclosed += c.lost_unclosed;
                    m.first_start_ns = m.first_start_ns.min(c.first_start_ns);
                    m.last_end_ns = m.last_end_ns.max(c.last_end_ns);
                    m.pids.extend(c.pids);
                    m
                }
            });
        }
        for (name, a) in p.accs {
            match by_name.get_mut(&name) {
                Some(m) => m.merge(a),
                None => {
                    by_name.insert(name, a);
                }
            }
        }
    }
    let mut stats = Vec::new();
    for (name, a) in by_name {
        let timed = a.count - a.untimed;
        if timed == 0 {
            continue;
        }
        if names.as_ref().is_some_and(|g| !g.is_match(&name)) {
            continue;
        }
        let q = |p: f64| -> f64 { a.sketch.quantile(p).clamp(a.min, a.max) as f64 };
        stats.push(NameSummary {
            count: a.count,
            total_ns: a.total,
            avg_ns: a.total as f64 / timed as f64,
            min_ns: a.min,
            max_ns: a.max,
            p50_ns: q(0.50),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
            self_ns: a.self_ns,
            error_count: a.errors,
            error_rate: a.errors as f64 / a.count as f64,
            name,
        });
    }
    let mut s = Summary {
        run_id: runs.join(","),
        latest,
        format: kind,
        counters,
        names_total: stats.len(),
        spans: n,
        skipped_rows: skipped,
        wall_ns: if n == 0 {
            0
        } else {
            last.saturating_sub(first).max(0) as u64
        },
        first_start_ns: if n == 0 { 0 } else { first },
        stats,
    };
    s.sort_and_limit(opts.sort, opts.limit);
    s
}

/// The per-name summary of the run `q` selects: every span is read once,
/// in memory proportional to the distinct names. `progress`, if given, is
/// called now and then with (spans so far, bytes read so far).
pub fn summarize(
    store: &Store,
    q: &Query,
    opts: &SummaryOptions,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Summary> {
    summarize_threads(store, q, opts, 1, progress)
}

/// [`summarize`] on up to `threads` threads (native files; see
/// [`scan_threads`]): the same summary, bit for bit, sooner.
pub fn summarize_threads(
    store: &Store,
    q: &Query,
    opts: &SummaryOptions,
    threads: usize,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Summary> {
    Ok(finish(vec![partial(store, q, threads, progress)?], opts))
}
