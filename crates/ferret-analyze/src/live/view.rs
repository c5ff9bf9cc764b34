//! The view model: what `ferret watch` shows, as plain data, driven by an
//! injected clock (every call that depends on time takes `now_ns`).

use super::window::Ring;
use crate::store::tail::TailSpan;
use serde::Serialize;

const NS: i64 = 1_000_000_000;

/// Window lengths `w` cycles through, in seconds.
pub const WINDOW_CHOICES: [u32; 5] = [1, 5, 10, 30, 60];

/// Column the per-name table is sorted by (largest first, ties by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveSort {
    /// Self time (default): where the time goes.
    #[default]
    #[serde(rename = "self")]
    SelfTime,
    /// Spans per second.
    Rate,
    /// 99th percentile.
    P99,
    /// Largest duration.
    Max,
    /// Errors.
    Errors,
    /// Name, ascending.
    Name,
}

impl LiveSort {
    /// The next key (what `s` does).
    pub fn next(self) -> LiveSort {
        match self {
            LiveSort::SelfTime => LiveSort::Rate,
            LiveSort::Rate => LiveSort::P99,
            LiveSort::P99 => LiveSort::Max,
            LiveSort::Max => LiveSort::Errors,
            LiveSort::Errors => LiveSort::Name,
            LiveSort::Name => LiveSort::SelfTime,
        }
    }

    /// The key's short name ("self", "rate", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LiveSort::SelfTime => "self",
            LiveSort::Rate => "rate",
            LiveSort::P99 => "p99",
            LiveSort::Max => "max",
            LiveSort::Errors => "errors",
            LiveSort::Name => "name",
        }
    }
}

impl std::str::FromStr for LiveSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "self" => LiveSort::SelfTime,
            "rate" => LiveSort::Rate,
            "p99" => LiveSort::P99,
            "max" => LiveSort::Max,
            "errors" => LiveSort::Errors,
            "name" => LiveSort::Name,
            _ => {
                return Err(format!(
                    "unknown sort key '{s}' (self, rate, p99, max, errors, name)"
                ))
            }
        })
    }
}

/// One name over the window. Times in ns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameRow {
    /// The span name.
    pub name: String,
    /// Spans that ended in the window.
    pub count: u64,
    /// Spans per second.
    pub rate: f64,
    /// Median duration.
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest duration.
    pub max_ns: u64,
    /// Spans whose status is not ok.
    pub errors: u64,
    /// Self time in the window.
    pub self_ns: u64,
    /// Self time per wall time of the window, in percent: 100 means one
    /// thread busy in spans of this name the whole window (several threads
    /// can make it exceed 100, like `top`'s CPU column).
    pub self_pct: f64,
}

/// A span open right now, as the in-flight pane shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlightRow {
    /// Process id (0 if unknown).
    pub pid: u32,
    /// The thread: its name, else its OS tid; empty for a span no thread
    /// has entered (an awaiting future).
    pub thread: String,
    /// The span's name.
    pub name: String,
    /// Its stack, outermost first, ending with the span itself.
    pub stack: Vec<String>,
    /// Start, ns since the UNIX epoch.
    pub start_ns: i64,
    /// How long it has been open at the snapshot's time.
    pub open_ns: u64,
    /// Entered by a thread (busy), or awaiting (idle).
    pub busy: bool,
    /// Open longer than the stall threshold.
    pub stalled: bool,
}

/// A process recording into the run, from its heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessRow {
    /// Process id.
    pub pid: u32,
    /// Host name, if known.
    pub host: Option<String>,
    /// Age of its last heartbeat at the snapshot's time.
    pub heartbeat_age_ns: u64,
    /// No heartbeat for more than 3 intervals: probably gone.
    pub stale: bool,
}

/// One screenful of state: what the TUI draws and `--once --format json`
/// prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The time the snapshot describes (ns since the epoch).
    pub now_ns: i64,
    /// The window's length.
    pub window_ns: u64,
    /// Spans per second over the window, all names.
    pub spans_per_sec: f64,
    /// Spans that ended in the window, all names (before the filter).
    pub spans: u64,
    /// Names in the window before the filter.
    pub names_total: usize,
    /// Per-name rows, filtered and sorted.
    pub rows: Vec<NameRow>,
    /// Open spans, longest open first.
    pub inflight: Vec<InFlightRow>,
    /// The sort key.
    pub sort: LiveSort,
    /// The name filter ("" = none).
    pub filter: String,
    /// True when the display is frozen (space).
    pub paused: bool,
}

/// The view model; see the module docs.
#[derive(Debug, Clone)]
pub struct View {
    ring: Ring,
    names: Vec<String>,
    window_s: u32,
    sort: LiveSort,
    filter: String,
    frozen: Option<Snapshot>,
    inflight: Vec<InFlightRow>,
    stall_ns: u64,
    /// Nothing happened before this time (the run's start), if known.
    origin_ns: Option<i64>,
    /// Spans added (all time).
    pub spans_seen: u64,
    /// The latest span end seen (ns since the epoch), 0 before any.
    pub last_end_ns: i64,
}

impl View {
    /// A view over a window of `window_s` seconds; the ring holds enough
    /// seconds for the longest window `w` offers (or `window_s`, if longer).
    pub fn new(window_s: u32) -> View {
        let window_s = window_s.max(1);
        // A window of W seconds reads W + 1 slots (see `compute`).
        let cap = window_s.max(*WINDOW_CHOICES.last().unwrap_or(&60)) + 1;
        View {
            ring: Ring::new(cap),
            names: Vec::new(),
            window_s,
            sort: LiveSort::default(),
            filter: String::new(),
            frozen: None,
            inflight: Vec::new(),
            stall_ns: 5 * NS as u64,
            origin_ns: None,
            spans_seen: 0,
            last_end_ns: 0,
        }
    }

    /// Sets the text of name id `id`.
    pub fn set_name(&mut self, id: u32, text: &str) {
        let i = id as usize;
        if i >= self.names.len() {
            self.names.resize(i + 1, String::new());
        }
        if self.names[i] != text {
            self.names[i] = text.to_owned();
        }
    }

    /// Names known so far (ids are `0..name_count()`).
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Adds a span that ended (whatever the pause state: pausing freezes
    /// the display, not the window).
    #[inline]
    pub fn add(&mut self, s: &TailSpan) {
        self.spans_seen += 1;
        self.last_end_ns = self.last_end_ns.max(s.end_ns());
        self.ring.add(s);
    }

    /// Sets the time before which nothing was recorded (the run's start):
    /// a window reaching back before it covers only the time since, so that
    /// a run younger than the window shows its true rates.
    pub fn set_origin(&mut self, ns: Option<i64>) {
        self.origin_ns = ns;
    }

    /// Spans that arrived after their second had left the ring.
    pub fn late(&self) -> u64 {
        self.ring.late
    }

    /// The window's length in seconds.
    pub fn window_s(&self) -> u32 {
        self.window_s
    }

    /// Sets the window's length (clamped to 1..the ring's capacity).
    pub fn set_window(&mut self, secs: u32) {
        self.window_s = secs.clamp(1, self.ring.capacity() - 1);
    }

    /// The next window length of [`WINDOW_CHOICES`] (what `w` does).
    pub fn cycle_window(&mut self) {
        let next = WINDOW_CHOICES
            .iter()
            .copied()
            .find(|&w| w > self.window_s)
            .unwrap_or(WINDOW_CHOICES[0]);
        self.set_window(next);
    }

    /// The sort key.
    pub fn sort(&self) -> LiveSort {
        self.sort
    }

    /// Sets the sort key.
    pub fn set_sort(&mut self, key: LiveSort) {
        self.sort = key;
    }

    /// The next sort key (what `s` does).
    pub fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
    }

    /// The name filter: rows whose name contains it (ignoring case).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Sets the name filter ("" shows every name).
    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_owned();
    }

    /// True when paused.
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Freezes the display at `now_ns`, or unfreezes it (what space does).
    pub fn toggle_pause(&mut self, now_ns: i64) {
        if self.frozen.is_some() {
            self.frozen = None;
        } else {
            let mut s = self.compute(now_ns);
            s.paused = true;
            self.frozen = Some(s);
        }
    }

    /// The stall threshold: in-flight spans open longer are flagged.
    pub fn set_stall_threshold(&mut self, ns: u64) {
        self.stall_ns = ns;
    }

    /// Replaces the in-flight spans (the latest snapshot of the live
    /// processes); `open_ns` and `stalled` are computed at each snapshot.
    pub fn set_inflight(&mut self, rows: Vec<InFlightRow>) {
        self.inflight = rows;
    }

    /// What to show at `now_ns`: the frozen snapshot while paused (with the
    /// current sort and filter applied), else the window ending at `now_ns`.
    pub fn snapshot(&self, now_ns: i64) -> Snapshot {
        match &self.frozen {
            Some(f) => {
                let mut s = f.clone();
                s.sort = self.sort;
                s.filter = self.filter.clone();
                self.order(&mut s.rows);
                s.rows.retain(|r| self.keeps(&r.name));
                s
            }
            None => self.compute(now_ns),
        }
    }

    fn keeps(&self, name: &str) -> bool {
        self.filter.is_empty() || name.to_lowercase().contains(&self.filter.to_lowercase())
    }

    fn order(&self, rows: &mut [NameRow]) {
        use std::cmp::Ordering;
        let key = self.sort;
        rows.sort_by(|a, b| {
            let o = match key {
                LiveSort::SelfTime => b.self_ns.cmp(&a.self_ns),
                LiveSort::Rate => b.count.cmp(&a.count),
                LiveSort::P99 => b.p99_ns.cmp(&a.p99_ns),
                LiveSort::Max => b.max_ns.cmp(&a.max_ns),
                LiveSort::Errors => b.errors.cmp(&a.errors),
                LiveSort::Name => Ordering::Equal,
            };
            o.then_with(|| a.name.cmp(&b.name))
        });
    }

    /// The window ending at `now_ns`: its W whole seconds before `now`'s
    /// own second, plus that (partial) second, so that the window slides
    /// smoothly rather than emptying at each second's turn. Rates divide by
    /// the time those seconds cover up to `now` (W to W + 1 s).
    fn compute(&self, now_ns: i64) -> Snapshot {
        let now_sec = now_ns.div_euclid(NS);
        let first = now_sec - self.window_s as i64;
        let mut covered_ns = self.window_s as i64 * NS + now_ns.rem_euclid(NS);
        if let Some(origin) = self.origin_ns {
            covered_ns = covered_ns.min(now_ns.saturating_sub(origin));
        }
        let covered_ns = covered_ns.max(NS / 1000);
        let covered_s = (covered_ns as f64 / 1e9).max(1e-3);
        let merged = self.ring.merge(first, now_sec);
        let mut rows = Vec::new();
        let mut spans = 0;
        let mut names_total = 0;
        for (id, m) in merged.into_iter().enumerate() {
            let Some(m) = m else { continue };
            spans += m.count;
            names_total += 1;
            let name = self.names.get(id).map_or("", String::as_str);
            if !self.keeps(name) {
                continue;
            }
            rows.push(NameRow {
                name: name.to_owned(),
                count: m.count,
                rate: m.count as f64 / covered_s,
                p50_ns: m.sketch.quantile(0.5),
                p95_ns: m.sketch.quantile(0.95),
                p99_ns: m.sketch.quantile(0.99),
                max_ns: m.max_ns,
                errors: m.errors,
                self_ns: m.self_ns,
                self_pct: m.self_ns as f64 / covered_ns.max(1) as f64 * 100.0,
            });
        }
        self.order(&mut rows);
        let mut inflight: Vec<InFlightRow> = self
            .inflight
            .iter()
            .map(|r| {
                let open = now_ns.saturating_sub(r.start_ns).max(0) as u64;
                InFlightRow {
                    open_ns: open,
                    stalled: open > self.stall_ns,
                    ..r.clone()
                }
            })
            .collect();
        inflight.sort_by(|a, b| b.open_ns.cmp(&a.open_ns).then(a.name.cmp(&b.name)));
        Snapshot {
            now_ns,
            window_ns: self.window_s as u64 * NS as u64,
            spans_per_sec: spans as f64 / covered_s,
            spans,
            names_total,
            rows,
            inflight,
            sort: self.sort,
            filter: self.filter.clone(),
            paused: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS;

    fn span(name: u32, end_ns: i64, dur_ns: u64, error: bool) -> TailSpan {
        TailSpan {
            name,
            start_ns: end_ns - dur_ns as i64,
            dur_ns: Some(dur_ns),
            self_ns: Some(dur_ns),
            error,
        }
    }

    /// Names a (fast, many) and b (slow, few), one second apart each.
    fn view() -> View {
        let mut v = View::new(10);
        v.set_name(0, "alpha");
        v.set_name(1, "beta");
        for sec in 100..110 {
            for i in 0..100 {
                v.add(&span(0, sec * S + i * 1000, 1_000 + i as u64, false));
            }
            v.add(&span(1, sec * S + 5, 50_000_000, sec % 2 == 0));
        }
        v
    }

    #[test]
    fn window_gives_rate_percentiles_errors_and_self_share() {
        let v = view();
        // At 109.5 s: the window is 99..=109, covering 10.5 s.
        let s = v.snapshot(109 * S + S / 2);
        assert_eq!(s.spans, 1010);
        let a = s.rows.iter().find(|r| r.name == "alpha").unwrap();
        assert_eq!(a.count, 1000);
        assert!((a.rate - 1000.0 / 10.5).abs() < 1e-6, "{}", a.rate);
        assert_eq!(a.max_ns, 1099);
        assert!((a.p50_ns as i64 - 1050).abs() <= 10, "{}", a.p50_ns);
        assert!((a.p99_ns as i64 - 1099).abs() <= 10, "{}", a.p99_ns);
        let b = s.rows.iter().find(|r| r.name == "beta").unwrap();
        assert_eq!(b.errors, 5);
        // 10 × 50 ms of self time in 10.5 s.
        assert!((b.self_pct - 500.0 / 10500.0 * 100.0).abs() < 1e-9);
        // Default sort: self time; beta (500 ms) above alpha (~1 ms).
        assert_eq!(s.rows[0].name, "beta");
    }

    #[test]
    fn window_slides_with_the_clock() {
        let v = view();
        // 5 s later, seconds 100..=103 have left the window (104..=114).
        let s = v.snapshot(114 * S + S / 2);
        assert_eq!(s.spans, 606);
        // Much later: nothing left.
        let s = v.snapshot(200 * S);
        assert_eq!(s.spans, 0);
        assert!(s.rows.is_empty());
        assert_eq!(s.spans_per_sec, 0.0);
    }

    #[test]
    fn a_run_younger_than_the_window_shows_its_true_rate() {
        let mut v = view();
        // The run started at 100 s: at 110 s, 10 s are covered, not 10.99.
        v.set_origin(Some(100 * S));
        let s = v.snapshot(110 * S - 1);
        assert!(
            (s.spans_per_sec - 101.0).abs() < 1e-3,
            "{}",
            s.spans_per_sec
        );
    }

    #[test]
    fn shorter_window_and_cycling() {
        let mut v = view();
        v.set_window(1);
        // Second 108 whole, and 109 up to its half.
        let s = v.snapshot(109 * S + S / 2);
        assert_eq!(s.spans, 202);
        assert!((s.spans_per_sec - 202.0 / 1.5).abs() < 1e-6);
        v.cycle_window();
        assert_eq!(v.window_s(), 5);
        v.set_window(60);
        v.cycle_window();
        assert_eq!(v.window_s(), 1, "wraps around");
    }

    #[test]
    fn sort_cycles_and_orders_rows() {
        let mut v = view();
        let now = 109 * S + S / 2;
        v.set_sort(LiveSort::Rate);
        assert_eq!(v.snapshot(now).rows[0].name, "alpha");
        v.cycle_sort();
        assert_eq!(v.sort(), LiveSort::P99);
        assert_eq!(v.snapshot(now).rows[0].name, "beta");
        v.set_sort(LiveSort::Name);
        let names: Vec<_> = v.snapshot(now).rows.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["alpha", "beta"]);
        for _ in 0..6 {
            v.cycle_sort();
        }
        assert_eq!(v.sort(), LiveSort::Name, "six keys, back to the start");
    }

    #[test]
    fn filter_keeps_matching_names_ignoring_case() {
        let mut v = view();
        v.set_filter("ALP");
        let s = v.snapshot(109 * S + S / 2);
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.rows[0].name, "alpha");
        assert_eq!(s.names_total, 2, "the total counts names before the filter");
        v.set_filter("");
        assert_eq!(v.snapshot(109 * S + S / 2).rows.len(), 2);
    }

    #[test]
    fn pause_freezes_the_display_but_not_the_window() {
        let mut v = view();
        let now = 109 * S + S / 2;
        v.toggle_pause(now);
        assert!(v.paused());
        for i in 0..500 {
            v.add(&span(0, 109 * S + 10_000 + i, 1_000, false));
        }
        // Frozen: same numbers, even later.
        let s = v.snapshot(now + 3 * S);
        assert!(s.paused);
        assert_eq!(s.spans, 1010);
        // Sort and filter still apply to the frozen rows.
        v.set_filter("beta");
        assert_eq!(v.snapshot(now).rows.len(), 1);
        v.set_filter("");
        v.toggle_pause(now);
        let s = v.snapshot(now);
        assert!(!s.paused);
        assert_eq!(s.spans, 1510, "what arrived while paused is there");
    }

    #[test]
    fn inflight_longest_first_and_stalls_flagged() {
        let mut v = View::new(10);
        v.set_stall_threshold(2 * S as u64);
        let row = |name: &str, start_ns: i64| InFlightRow {
            pid: 1,
            thread: "worker".into(),
            name: name.into(),
            stack: vec!["root".into(), name.into()],
            start_ns,
            open_ns: 0,
            busy: true,
            stalled: false,
        };
        v.set_inflight(vec![row("short", 99 * S), row("long", 90 * S)]);
        let s = v.snapshot(100 * S);
        assert_eq!(s.inflight[0].name, "long");
        assert_eq!(s.inflight[0].open_ns, 10 * S as u64);
        assert!(s.inflight[0].stalled);
        assert!(!s.inflight[1].stalled);
    }
}
