//! The stall watchdog: spans open longer than their threshold are
//! reported (stderr, the `ferret_stalls` table, a callback) at 1×, 2×, 4×
//! and 8× the threshold, then once more when they end ("recovered").
//!
//! The monitor thread hands [`StallTracker::check`] the open spans grouped
//! by stack: one group per recording thread (its spans are *busy*: a
//! thread has them entered) and one per chain of waiting spans (*idle*:
//! an `in_span` future that returned `Pending` and that no thread polls).
//! In each group the innermost span past its threshold is the stalled one;
//! a group yields at most one report per check.

use super::json_str;
use ferret_format::TagValue;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Whether a stall report is a new (or repeated) stall or the end of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    /// The span is open past its threshold (reported at 1×, 2×, 4×, 8×).
    Stall,
    /// A span reported as stalled has ended.
    Recovered,
}

impl StallKind {
    /// `"stall"` or `"recovered"`, as stored in `ferret_stalls.kind`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StallKind::Stall => "stall",
            StallKind::Recovered => "recovered",
        }
    }
}

/// One span of a stalled stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StallFrame {
    /// The span's name.
    pub name: String,
    /// How long it has been open.
    pub open: Duration,
    /// Its tags, as far as they were published (tags of guards set with
    /// `tag()`, tags of `in_span` futures when they first waited).
    pub tags: Vec<(String, TagValue)>,
}

/// A stall report, as given to the callback set with
/// [`ProfilerBuilder::on_stall`](crate::ProfilerBuilder::on_stall).
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// A stall, or the end of one.
    pub kind: StallKind,
    /// The recording thread's name, for a busy span.
    pub thread_name: Option<String>,
    /// The recording thread's OS id, for a busy span (0 where unknown).
    pub tid: Option<u64>,
    /// True if a thread has the span entered (it blocks that thread);
    /// false if it is waiting (an `in_span` future that no thread polls).
    pub busy: bool,
    /// The stalled span's id.
    pub span_id: u64,
    /// The stalled span's name.
    pub name: String,
    /// How long it has been open (for `Recovered`: about how long it was
    /// open; it ended at most one check period before).
    pub open: Duration,
    /// Its threshold.
    pub threshold: Duration,
    /// The stack, outermost first, down to the stalled span.
    pub stack: Vec<StallFrame>,
}

impl Stall {
    /// The block printed on stderr.
    pub fn to_text(&self) -> String {
        let mut s = String::from("ferret: stall: ");
        match (&self.tid, &self.thread_name) {
            (Some(tid), Some(name)) => {
                let _ = write!(s, "thread {name:?} (tid {tid})");
            }
            (Some(tid), None) => {
                let _ = write!(s, "thread (tid {tid})");
            }
            _ => s.push_str("task (no thread polls it)"),
        }
        match self.kind {
            StallKind::Stall => {
                let _ = writeln!(
                    s,
                    " {} {}, threshold {}",
                    if self.busy { "busy" } else { "idle" },
                    short(self.open),
                    short(self.threshold)
                );
                let width = self.stack.iter().map(|f| f.name.len()).max().unwrap_or(0);
                for f in self.stack.iter().rev() {
                    let _ = write!(s, "  {:<width$}  {:>8}", f.name, precise(f.open));
                    for (k, v) in &f.tags {
                        let _ = match v {
                            TagValue::Str(t) => write!(s, "  {k}={t:?}"),
                            v => write!(s, "  {k}={v}"),
                        };
                    }
                    s.push('\n');
                }
            }
            StallKind::Recovered => {
                let _ = writeln!(s, " recovered after {}: {}", short(self.open), self.name);
            }
        }
        s
    }

    /// The stack as stored in `ferret_stalls.stack`: a JSON array,
    /// outermost first, of `{"name", "open_ns", "tags"}`.
    pub fn stack_json(&self) -> String {
        let mut s = String::from("[");
        for (i, f) in self.stack.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"name\":");
            json_str(&mut s, &f.name);
            let _ = write!(s, ",\"open_ns\":{},\"tags\":", f.open.as_nanos());
            let tags: Vec<(Cow<'static, str>, TagValue)> = f
                .tags
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
                .collect();
            s.push_str(super::tags_json(&tags).as_deref().unwrap_or("null"));
            s.push('}');
        }
        s.push(']');
        s
    }
}

/// "12.4s", "250ms": for headers.
fn short(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000_000 {
        let s = d.as_secs_f64();
        if ns.is_multiple_of(1_000_000_000) {
            format!("{}s", d.as_secs())
        } else {
            format!("{s:.1}s")
        }
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

/// "12.40s", "250.3ms": for stack lines.
fn precise(d: Duration) -> String {
    if d.as_nanos() >= 1_000_000_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{:.1}ms", d.as_nanos() as f64 / 1e6)
    }
}

/// A user's stall callback.
pub(crate) type StallCallback = Arc<dyn Fn(&Stall) + Send + Sync>;

/// The watchdog's options.
#[derive(Clone)]
pub(crate) struct StallConfig {
    pub threshold: Duration,
    pub overrides: FxHashMap<String, Duration>,
    pub callback: Option<StallCallback>,
    /// Print reports on stderr.
    pub stderr: bool,
}

impl std::fmt::Debug for StallConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallConfig")
            .field("threshold", &self.threshold)
            .field("overrides", &self.overrides)
            .field("callback", &self.callback.is_some())
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl StallConfig {
    /// The threshold of spans named `name`.
    pub(crate) fn threshold_of(&self, name: &str) -> Duration {
        self.overrides.get(name).copied().unwrap_or(self.threshold)
    }

    /// How often to check: min(smallest threshold / 4, 1 s), at least 1 ms.
    pub(crate) fn period(&self) -> Duration {
        let min = self
            .overrides
            .values()
            .copied()
            .chain([self.threshold])
            .min()
            .unwrap_or(self.threshold);
        (min / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
    }
}

/// One open span as the watchdog sees it.
#[derive(Debug, Clone)]
pub(crate) struct Open {
    pub id: u64,
    pub name: Arc<str>,
    pub open_ns: u64,
    pub tags: Vec<(Cow<'static, str>, TagValue)>,
}

/// Open spans of one stack, outermost first.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// (thread index, tid, name) for a thread's stack; `None` for waiting spans.
    pub thread: Option<(u32, u64, Option<String>)>,
    pub frames: Vec<Open>,
}

/// A report and where it came from (for the stalls table).
pub(crate) struct StallRow {
    pub thread: Option<u32>,
    pub stall: Stall,
    /// Wall clock ns of the report.
    pub reported_ns: i64,
}

struct State {
    /// Highest level reported or passed over (0 = 1×, 3 = 8×).
    level: u32,
    reported: bool,
    /// For the recovery report.
    last: Stall,
    thread: Option<u32>,
    /// Open time at the last check that saw it.
    open_ns: u64,
}

/// Remembers which spans were reported, at which level.
#[derive(Default)]
pub(crate) struct StallTracker {
    state: FxHashMap<u64, State>,
}

const LEVELS: u32 = 4;

impl StallTracker {
    /// Checks the open spans; returns the reports to make. `period_ns`
    /// (the check period) is added to the open time of spans that ended
    /// since the last check, half of it: their best estimate.
    pub(crate) fn check(
        &mut self,
        cfg: &StallConfig,
        groups: &[Group],
        now_wall_ns: i64,
        period_ns: u64,
    ) -> Vec<StallRow> {
        let mut out = Vec::new();
        let mut seen: FxHashMap<u64, ()> = FxHashMap::default();
        for g in groups {
            for f in &g.frames {
                seen.insert(f.id, ());
            }
            let mut cand = None;
            for (i, f) in g.frames.iter().enumerate() {
                let thr = cfg.threshold_of(&f.name);
                if f.open_ns >= thr.as_nanos() as u64 {
                    cand = Some((i, thr));
                }
            }
            let Some((ci, thr)) = cand else { continue };
            let level_of = |open_ns: u64, thr: Duration| -> u32 {
                let ratio = open_ns / (thr.as_nanos() as u64).max(1);
                (63 - ratio.max(1).leading_zeros()).min(LEVELS - 1)
            };
            let stall = make_stall(g, ci, thr);
            // Spans past their threshold outside the stalled one are
            // covered by its report: they get one of their own only when
            // they reach their next level.
            for (i, f) in g.frames[..ci].iter().enumerate() {
                let t = cfg.threshold_of(&f.name);
                if f.open_ns >= t.as_nanos() as u64 {
                    let lv = level_of(f.open_ns, t);
                    let st = self.state.entry(f.id).or_insert_with(|| State {
                        level: lv,
                        reported: false,
                        last: make_stall(g, i, t),
                        thread: g.thread.as_ref().map(|t| t.0),
                        open_ns: f.open_ns,
                    });
                    st.open_ns = f.open_ns;
                }
            }
            let f = &g.frames[ci];
            let lv = level_of(f.open_ns, thr);
            let report = match self.state.get_mut(&f.id) {
                None => true,
                Some(st) => {
                    st.open_ns = f.open_ns;
                    st.level < lv
                }
            };
            if report {
                self.state.insert(
                    f.id,
                    State {
                        level: lv,
                        reported: true,
                        last: stall.clone(),
                        thread: g.thread.as_ref().map(|t| t.0),
                        open_ns: f.open_ns,
                    },
                );
                out.push(StallRow {
                    thread: g.thread.as_ref().map(|t| t.0),
                    stall,
                    reported_ns: now_wall_ns,
                });
            }
        }
        let gone: Vec<u64> = self
            .state
            .keys()
            .filter(|id| !seen.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            let st = self.state.remove(&id).expect("listed");
            if st.reported {
                let mut s = st.last;
                s.kind = StallKind::Recovered;
                s.open = Duration::from_nanos(st.open_ns + period_ns / 2);
                out.push(StallRow {
                    thread: st.thread,
                    stall: s,
                    reported_ns: now_wall_ns,
                });
            }
        }
        out
    }
}

fn make_stall(g: &Group, ci: usize, thr: Duration) -> Stall {
    let f = &g.frames[ci];
    Stall {
        kind: StallKind::Stall,
        thread_name: g.thread.as_ref().and_then(|t| t.2.clone()),
        tid: g.thread.as_ref().map(|t| t.1),
        busy: g.thread.is_some(),
        span_id: f.id,
        name: f.name.to_string(),
        open: Duration::from_nanos(f.open_ns),
        threshold: thr,
        stack: g.frames[..=ci]
            .iter()
            .map(|f| StallFrame {
                name: f.name.to_string(),
                open: Duration::from_nanos(f.open_ns),
                tags: f
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ms: u64) -> StallConfig {
        StallConfig {
            threshold: Duration::from_millis(ms),
            overrides: FxHashMap::default(),
            callback: None,
            stderr: false,
        }
    }

    fn open(id: u64, name: &str, ms: u64) -> Open {
        Open {
            id,
            name: Arc::from(name),
            open_ns: ms * 1_000_000,
            tags: vec![],
        }
    }

    fn thread(frames: Vec<Open>) -> Group {
        Group {
            thread: Some((0, 42, Some("main".into()))),
            frames,
        }
    }

    #[test]
    fn reports_at_1_2_4_8_then_recovery() {
        let c = cfg(100);
        let mut t = StallTracker::default();
        let mut kinds = vec![];
        for ms in (0..1000).step_by(25) {
            for r in t.check(&c, &[thread(vec![open(1, "slow", ms)])], 0, 25_000_000) {
                kinds.push((r.stall.kind, r.stall.open.as_millis()));
            }
        }
        let r = t.check(&c, &[thread(vec![])], 0, 25_000_000);
        kinds.extend(r.iter().map(|r| (r.stall.kind, r.stall.open.as_millis())));
        use StallKind::*;
        assert_eq!(
            kinds,
            [
                (Stall, 100),
                (Stall, 200),
                (Stall, 400),
                (Stall, 800),
                (Recovered, 987)
            ]
        );
    }

    #[test]
    fn innermost_span_past_its_threshold_is_the_stalled_one() {
        let mut c = cfg(100);
        c.overrides.insert("main".into(), Duration::from_secs(3600));
        let mut t = StallTracker::default();
        let g = thread(vec![
            open(1, "main", 5000),
            open(2, "request", 150),
            open(3, "db", 20),
        ]);
        let r = t.check(&c, &[g], 0, 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].stall.name, "request");
        assert_eq!(r[0].stall.stack.len(), 2);
        assert!(r[0].stall.busy);
        let text = r[0].stall.to_text();
        assert!(
            text.starts_with(
                "ferret: stall: thread \"main\" (tid 42) busy 150ms, threshold 100ms\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("\n  request   150.0ms\n  main        5.00s\n"),
            "{text}"
        );
    }

    #[test]
    fn short_spans_give_nothing() {
        let c = cfg(100);
        let mut t = StallTracker::default();
        for id in 0..50 {
            assert!(t
                .check(&c, &[thread(vec![open(id, "quick", 99)])], 0, 1)
                .is_empty());
        }
    }

    #[test]
    fn idle_chain_and_tags() {
        let c = cfg(100);
        let mut t = StallTracker::default();
        let mut f = open(7, "wait", 120);
        f.tags = vec![(Cow::Borrowed("queue"), TagValue::Str("jobs".into()))];
        let g = Group {
            thread: None,
            frames: vec![f],
        };
        let r = t.check(&c, &[g], 0, 1);
        assert!(!r[0].stall.busy);
        let text = r[0].stall.to_text();
        assert!(text.contains("idle 120ms"), "{text}");
        assert!(text.contains("queue=\"jobs\""), "{text}");
        assert_eq!(
            r[0].stall.stack_json(),
            r#"[{"name":"wait","open_ns":120000000,"tags":{"queue":"jobs"}}]"#
        );
    }
}
