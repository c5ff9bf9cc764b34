//! Live views of a file being written: the state behind `ferret watch`.
//!
//! A [`Watcher`] follows one run of a file through a [`Tail`] (a read-only
//! connection that reads only new commits) and feeds a [`View`]: a sliding
//! window of per-second, per-name statistics with sort, filter and pause.
//! Every call that depends on time takes the current time (`now_ns`, ns
//! since the epoch) from its caller, so the whole model runs under an
//! injected clock in tests.
//!
//! Two modes:
//! - live: attach at any time; the window is first filled from the rows
//!   that may hold spans ending in it (found by walking back from the
//!   newest rows), then each [`Watcher::poll`] reads what was committed since;
//! - replay (`speed`): a finished run is played from its first span, its
//!   time running `speed` times faster than the wall clock; spans are held
//!   back until the replay clock passes their end.
//!
//! Memory: the window's cells (names × seconds of the ring), the name
//! table and, in replay, the spans read ahead of the replay clock.

pub mod view;
pub mod window;

pub use view::{InFlightRow, LiveSort, NameRow, ProcessRow, Snapshot, View, WINDOW_CHOICES};

use crate::error::Result;
use crate::store::live::{self as live_tables, InFlightSpan, ProcessState};
use crate::store::tail::{Tail, TailCounters, TailSpan};
use crate::store::{FileKind, OpenOptions, RunInfo};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

/// Spans read per poll at most (the rest waits for the next poll, so a
/// burst never freezes the screen).
const READ_PER_POLL: u64 = 1 << 20;

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Window length in seconds.
    pub window_s: u32,
    /// Replay a finished run at this speed (1 = its original pace) instead
    /// of following the file live.
    pub replay_speed: Option<f64>,
    /// In-flight spans open longer than this are flagged as stalled.
    pub stall_threshold_ns: u64,
    /// The run to follow (the latest when `None`).
    pub run: Option<String>,
    /// How to open the file (ferret-io namespace).
    pub open: OpenOptions,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            window_s: 10,
            replay_speed: None,
            stall_threshold_ns: 5_000_000_000,
            run: None,
            open: OpenOptions::default(),
        }
    }
}

/// The header line's facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    /// The file watched.
    pub file: PathBuf,
    /// Its kind.
    pub format: FileKind,
    /// The run followed.
    pub run: String,
    /// Processes of the run still recording (no clean close yet), with
    /// the age of their last sign of life.
    pub processes: Vec<ProcessRow>,
    /// The recorder's counters (native files).
    pub counters: Option<TailCounters>,
    /// Rows skipped as unreadable.
    pub skipped_rows: u64,
    /// Spans that arrived after their second had left the window's ring.
    pub late: u64,
    /// Replay: the speed; `None` when live.
    pub replay_speed: Option<f64>,
    /// Replay: every span has been played.
    pub replay_done: bool,
}

/// One row per open stack: each innermost open span (one that is no other
/// open span's parent) with the names of its open ancestors, outermost
/// first. A thread in `handle_request > db.query` is one row, `db.query`,
/// whose open time is what the stall threshold is compared with.
pub fn stacks(open: &[InFlightSpan]) -> Vec<InFlightRow> {
    use rustc_hash::{FxHashMap, FxHashSet};
    let by_id: FxHashMap<(i64, u64), &InFlightSpan> =
        open.iter().map(|s| ((s.process, s.span_id), s)).collect();
    let parents: FxHashSet<(i64, u64)> = open
        .iter()
        .filter_map(|s| s.parent_id.map(|p| (s.process, p)))
        .collect();
    let mut rows = Vec::new();
    for s in open {
        if parents.contains(&(s.process, s.span_id)) {
            continue;
        }
        let mut stack = vec![s.name.clone()];
        let mut cur = s;
        while let Some(p) = cur.parent_id.and_then(|p| by_id.get(&(s.process, p))) {
            if stack.len() > 4096 {
                break; // a cycle in a damaged file
            }
            stack.push(p.name.clone());
            cur = p;
        }
        stack.reverse();
        let thread = match (&s.thread_name, s.tid, s.thread) {
            (Some(n), _, _) => n.clone(),
            (None, Some(tid), _) => format!("tid {tid}"),
            (None, None, Some(idx)) => format!("thread #{idx}"),
            (None, None, None) => String::new(),
        };
        rows.push(InFlightRow {
            pid: s.pid,
            thread,
            name: s.name.clone(),
            stack,
            start_ns: s.start_ns,
            open_ns: 0,
            busy: s.entered,
            stalled: false,
        });
    }
    rows
}

/// A span read ahead of the replay clock, ordered by end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held(TailSpan);

impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0.end_ns(), self.0.start_ns, self.0.name).cmp(&(o.0.end_ns(), o.0.start_ns, o.0.name))
    }
}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// The replay clock and the spans read ahead of it.
#[derive(Debug)]
struct Replay {
    speed: f64,
    /// Replay time (ns since the epoch, in the run's clock); `None` until
    /// the first span is read.
    at_ns: Option<i64>,
    last_wall_ns: i64,
    held: BinaryHeap<Reverse<Held>>,
    /// Largest end read so far.
    read_to_ns: i64,
    exhausted: bool,
}

/// Follows one run of a file; see the module docs.
#[derive(Debug)]
pub struct Watcher {
    tail: Tail,
    view: View,
    path: PathBuf,
    opts: WatchOptions,
    replay: Option<Replay>,
    counters: Option<TailCounters>,
    /// Live processes: (pid, host, last sign of life, heartbeat interval
    /// when it has heartbeats).
    processes: Vec<(u32, Option<String>, i64, Option<i64>)>,
    /// A read stopped at its limit: read again without waiting for a commit.
    more: bool,
}

impl Watcher {
    /// Opens `path` and positions the reader: live, on the rows that may
    /// hold spans ending in the window before `now_ns`; replay, on the
    /// run's first span.
    pub fn open(path: impl AsRef<Path>, opts: WatchOptions, now_ns: i64) -> Result<Watcher> {
        let path = path.as_ref().to_path_buf();
        let mut tail = Tail::open(&path, &opts.open, opts.run.as_deref())?;
        let mut view = View::new(opts.window_s);
        view.set_stall_threshold(opts.stall_threshold_ns);
        let replay = match opts.replay_speed {
            Some(speed) => Some(Replay {
                speed: if speed.is_finite() && speed > 0.0 {
                    speed
                } else {
                    1.0
                },
                at_ns: None,
                last_wall_ns: now_ns,
                held: BinaryHeap::new(),
                read_to_ns: i64::MIN,
                exhausted: false,
            }),
            None => {
                view.set_origin(tail.run_started_ns()?);
                let back = (view.window_s() as i64 + 1) * 1_000_000_000;
                tail.seek_ends_after(now_ns.saturating_sub(back))?;
                None
            }
        };
        Ok(Watcher {
            tail,
            view,
            path,
            opts,
            replay,
            counters: None,
            processes: Vec::new(),
            more: false,
        })
    }

    /// The view model (sort, filter, pause, window).
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The view model, to change its settings.
    pub fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }

    /// The run followed.
    pub fn run(&self) -> &str {
        self.tail.run()
    }

    /// The time the view shows at wall time `now_ns`: `now_ns` itself when
    /// live, the replay clock in a replay.
    pub fn view_time(&self, now_ns: i64) -> i64 {
        match &self.replay {
            Some(r) => r.at_ns.unwrap_or(now_ns),
            None => now_ns,
        }
    }

    /// Reads what is new at wall time `now_ns` into the window. Returns
    /// true when something changed. Errors: the file was deleted or became
    /// unreadable.
    pub fn poll(&mut self, now_ns: i64) -> Result<bool> {
        if self.replay.is_some() {
            return self.poll_replay(now_ns);
        }
        let changed = self.tail.changed()?;
        if !changed && !self.more {
            return Ok(false);
        }
        let view = &mut self.view;
        let r = self.tail.read(READ_PER_POLL, &mut |s| view.add(s))?;
        self.more = r.more;
        self.sync_names();
        if changed {
            self.counters = self.tail.counters()?;
            self.load_live()?;
        }
        Ok(true)
    }

    /// Reads the live tables: the processes' heartbeats (else, for files
    /// without them, the unclosed processes and their last commit) and the
    /// latest snapshot of their open spans.
    fn load_live(&mut self) -> Result<()> {
        let store = self.tail.store();
        let run = Some(self.tail.run());
        let beats = live_tables::heartbeats(store, run)?;
        self.processes = if beats.is_empty() {
            self.tail
                .live_processes()?
                .into_iter()
                .map(|(pid, host, seen)| (pid, host, seen, None))
                .collect()
        } else {
            beats
                .into_iter()
                .filter(|b| b.state(b.beat_ns) != ProcessState::Closed)
                .map(|b| (b.pid, b.host, b.beat_ns, Some(b.interval_ns)))
                .collect()
        };
        let open = live_tables::inflight(store, run)?;
        self.view.set_inflight(stacks(&open));
        Ok(())
    }

    fn poll_replay(&mut self, now_ns: i64) -> Result<bool> {
        let Some(rp) = self.replay.as_mut() else {
            return Ok(false);
        };
        self.tail.changed()?; // notices a deleted file
        if let Some(at) = rp.at_ns.as_mut() {
            let paused = self.view.paused();
            let dt = now_ns.saturating_sub(rp.last_wall_ns).max(0);
            if !paused {
                *at = at.saturating_add((dt as f64 * rp.speed) as i64);
            }
        }
        rp.last_wall_ns = now_ns;
        let mut changed = false;
        // Read until the spans read reach past the replay clock.
        while !rp.exhausted && rp.at_ns.is_none_or(|at| rp.read_to_ns <= at) {
            let held = &mut rp.held;
            let mut to = rp.read_to_ns;
            let mut first_start = i64::MAX;
            let r = self.tail.read(1 << 16, &mut |s| {
                to = to.max(s.end_ns());
                first_start = first_start.min(s.start_ns);
                held.push(Reverse(Held(*s)));
            })?;
            rp.read_to_ns = to;
            if rp.at_ns.is_none() && first_start != i64::MAX {
                rp.at_ns = Some(first_start);
                self.view.set_origin(Some(first_start));
            }
            if r.spans == 0 && !r.more {
                rp.exhausted = true;
            }
        }
        if let Some(at) = rp.at_ns {
            while let Some(Reverse(Held(s))) = rp.held.peek().copied() {
                if s.end_ns() > at {
                    break;
                }
                rp.held.pop();
                self.view.add(&s);
                changed = true;
            }
        }
        if changed {
            self.sync_names();
            self.counters = self.tail.counters()?;
        }
        Ok(changed)
    }

    /// True when a replay has played every span.
    pub fn replay_done(&self) -> bool {
        self.replay
            .as_ref()
            .is_some_and(|r| r.exhausted && r.held.is_empty())
    }

    fn sync_names(&mut self) {
        for id in self.view.name_count()..self.tail.name_count() {
            self.view.set_name(id as u32, self.tail.name(id as u32));
        }
    }

    /// Replaces the in-flight spans shown (see [`View::set_inflight`]).
    pub fn set_inflight(&mut self, rows: Vec<InFlightRow>) {
        self.view.set_inflight(rows);
    }

    /// The header at wall time `now_ns`.
    pub fn header(&self, now_ns: i64) -> Header {
        let at = self.view_time(now_ns);
        Header {
            file: self.path.clone(),
            format: self.tail.store().kind(),
            run: self.tail.run().to_owned(),
            processes: self
                .processes
                .iter()
                .map(|(pid, host, seen, interval)| {
                    let age = at.saturating_sub(*seen).max(0);
                    ProcessRow {
                        pid: *pid,
                        host: host.clone(),
                        heartbeat_age_ns: age as u64,
                        stale: interval
                            .is_some_and(|i| age > i.saturating_mul(live_tables::STALE_INTERVALS)),
                    }
                })
                .collect(),
            counters: self.counters,
            skipped_rows: self.tail.skipped,
            late: self.view.late(),
            replay_speed: self.replay.as_ref().map(|r| r.speed),
            replay_done: self.replay_done(),
        }
    }

    /// What to show at wall time `now_ns`.
    pub fn snapshot(&self, now_ns: i64) -> Snapshot {
        self.view.snapshot(self.view_time(now_ns))
    }

    /// The file's runs, oldest first (for picking another one).
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        self.tail.store().runs()
    }

    /// Follows another run from now on, keeping the view's settings.
    pub fn switch_run(&mut self, run: &str, now_ns: i64) -> Result<()> {
        let mut opts = self.opts.clone();
        opts.run = Some(run.to_owned());
        opts.window_s = self.view.window_s();
        let mut w = Watcher::open(&self.path, opts, now_ns)?;
        w.view.set_sort(self.view.sort());
        w.view.set_filter(self.view.filter());
        *self = w;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(
        process: i64,
        id: u64,
        parent: Option<u64>,
        name: &str,
        thread: Option<u32>,
    ) -> InFlightSpan {
        InFlightSpan {
            run_id: "r".into(),
            process,
            pid: 7,
            snapshot_ns: 100,
            thread,
            tid: thread.map(|t| 1000 + t as u64),
            thread_name: (thread == Some(0)).then(|| "main".to_owned()),
            depth: 0,
            span_id: id,
            parent_id: parent,
            trace_id: None,
            name: name.into(),
            start_ns: id as i64,
            entered: thread.is_some(),
            tags: None,
        }
    }

    #[test]
    fn one_row_per_innermost_open_span_with_its_stack() {
        let rows = stacks(&[
            open(1, 1, None, "handle_request", Some(0)),
            open(1, 2, Some(1), "db.query", Some(0)),
            open(1, 3, None, "batch", Some(1)),
            open(1, 4, Some(9), "fetch", None), // parent not open: its own stack
            open(2, 2, None, "other", Some(0)), // same id, another process
        ]);
        let got: Vec<(String, Vec<String>, String, bool)> = rows
            .into_iter()
            .map(|r| (r.name, r.stack, r.thread, r.busy))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (
                    "db.query".into(),
                    s(&["handle_request", "db.query"]),
                    "main".into(),
                    true
                ),
                ("batch".into(), s(&["batch"]), "tid 1001".into(), true),
                ("fetch".into(), s(&["fetch"]), String::new(), false),
                ("other".into(), s(&["other"]), "main".into(), true),
            ]
        );
    }
}
