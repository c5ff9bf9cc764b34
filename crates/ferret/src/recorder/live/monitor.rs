//! The monitor thread: every heartbeat interval it snapshots the open
//! spans and the process's vital signs for the writer to store; every
//! stall check period it runs the watchdog.

use super::stack::OpenFrame;
use super::stall::{Group, Open, StallTracker};
use super::{lock, proc_stats, IdleSpan};
use crate::clock;
use crate::intern;
use crate::recorder::shared::Inner;
use ferret_format::TagValue;
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A heartbeat row.
#[derive(Debug, Clone)]
pub(crate) struct Beat {
    pub pid: u32,
    pub host: String,
    pub cmdline: String,
    pub started_ns: i64,
    pub beat_ns: i64,
    pub interval_ns: i64,
    pub cpu_ns: Option<i64>,
    pub rss_bytes: Option<i64>,
    pub threads: Option<i64>,
    pub accepted: u64,
    pub dropped: u64,
}

/// An open span row (`ferret_inflight`).
#[derive(Debug, Clone)]
pub(crate) struct LiveSpan {
    pub thread: Option<u32>,
    pub depth: u32,
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    pub name: Arc<str>,
    pub start_ns: i64,
    pub entered: bool,
    pub tags: Option<String>,
}

/// Tells the monitor to stop.
#[derive(Default)]
pub(crate) struct StopSignal {
    stop: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub(crate) fn stop(&self) {
        *lock(&self.stop) = true;
        self.cv.notify_all();
    }

    /// Waits until `deadline`; true if asked to stop.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut s = lock(&self.stop);
        loop {
            if *s {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The open spans of the process, grouped by stack (outermost first).
pub(crate) fn open_groups(inner: &Inner) -> Vec<(Group, Vec<LiveSpan>)> {
    let Some(live) = &inner.live else {
        return vec![];
    };
    let now_raw = clock::now_raw();
    let threads: Vec<(u64, Option<String>)> = lock(&inner.threads).clone();
    let stacks = lock(&live.stacks).clone();
    let mut names: FxHashMap<u32, Arc<str>> = FxHashMap::default();
    let mut name_of = |path: u32| -> Arc<str> {
        names
            .entry(path)
            .or_insert_with(|| intern::name_text(intern::path_entry(path).1))
            .clone()
    };
    let mut out = Vec::new();
    let mut on_threads: FxHashSet<u64> = FxHashSet::default();
    let mut frames: Vec<OpenFrame> = Vec::new();
    for s in &stacks {
        if s.read(&mut frames).is_none() || frames.is_empty() {
            continue;
        }
        let tags = s.tags();
        let (tid, tname) = threads.get(s.thread as usize).cloned().unwrap_or((0, None));
        let mut g = Group {
            thread: Some((s.thread, tid, tname)),
            frames: Vec::with_capacity(frames.len()),
        };
        let mut rows = Vec::with_capacity(frames.len());
        for (depth, f) in frames.iter().enumerate() {
            on_threads.insert(f.id);
            let name = name_of(f.path);
            let t: Vec<(Cow<'static, str>, TagValue)> = tags
                .iter()
                .find(|(id, _)| *id == f.id)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            rows.push(LiveSpan {
                thread: Some(s.thread),
                depth: depth as u32,
                id: f.id,
                parent: f.parent,
                trace: f.trace,
                name: name.clone(),
                start_ns: inner.anchor.wall_ns(f.start),
                entered: true,
                tags: super::tags_json(&t),
            });
            g.frames.push(Open {
                id: f.id,
                name,
                open_ns: clock::delta_ns(f.start, now_raw),
                tags: t,
            });
        }
        out.push((g, rows));
    }
    // Waiting spans not being polled right now, in chains of parents.
    let idle: FxHashMap<u64, IdleSpan> = live
        .idle_spans()
        .into_iter()
        .filter(|(id, _)| !on_threads.contains(id))
        .collect();
    let parents: FxHashSet<u64> = idle.values().map(|s| s.parent).collect();
    let mut leaves: Vec<u64> = idle
        .keys()
        .filter(|id| !parents.contains(id))
        .copied()
        .collect();
    leaves.sort_unstable();
    let mut written: FxHashSet<u64> = FxHashSet::default();
    for leaf in leaves {
        let mut chain = vec![leaf];
        let mut cur = leaf;
        while let Some(s) = idle.get(&cur) {
            if !idle.contains_key(&s.parent) || chain.len() > 10_000 {
                break;
            }
            cur = s.parent;
            chain.push(cur);
        }
        chain.reverse();
        let mut g = Group {
            thread: None,
            frames: Vec::with_capacity(chain.len()),
        };
        let mut rows = Vec::new();
        for (depth, id) in chain.iter().enumerate() {
            let s = &idle[id];
            let name = name_of(s.path);
            if written.insert(*id) {
                rows.push(LiveSpan {
                    thread: None,
                    depth: depth as u32,
                    id: *id,
                    parent: s.parent,
                    trace: s.trace,
                    name: name.clone(),
                    start_ns: inner.anchor.wall_ns(s.start),
                    entered: false,
                    tags: super::tags_json(&s.tags),
                });
            }
            g.frames.push(Open {
                id: *id,
                name,
                open_ns: clock::delta_ns(s.start, now_raw),
                tags: s.tags.clone(),
            });
        }
        out.push((g, rows));
    }
    out
}

/// The heartbeat of now.
pub(crate) fn beat(inner: &Inner, interval: Duration, started_ns: i64, cmdline: &str) -> Beat {
    let st = inner.stats();
    Beat {
        pid: std::process::id(),
        host: inner.host.clone(),
        cmdline: cmdline.to_owned(),
        started_ns,
        beat_ns: inner.anchor.wall_ns(clock::now_raw()),
        interval_ns: interval.as_nanos().min(i64::MAX as u128) as i64,
        cpu_ns: proc_stats::cpu_ns(),
        rss_bytes: proc_stats::rss_bytes(),
        threads: proc_stats::threads(),
        accepted: st.accepted,
        dropped: st.dropped_queue + st.dropped_write,
    }
}

/// Runs the monitor until `stop`.
pub(crate) fn run(inner: Arc<Inner>, stop: Arc<StopSignal>) {
    let Some(live) = inner.live.clone() else {
        return;
    };
    let interval = live.config.interval;
    let stall = live.config.stall.clone();
    let check = stall.as_ref().map(|s| s.period());
    let started_ns = inner.started_ns;
    let cmdline = proc_stats::cmdline();
    let mut tracker = StallTracker::default();
    let now = Instant::now();
    let mut next_beat = interval.map(|_| now);
    let mut next_check = check.map(|c| now + c);
    loop {
        let now = Instant::now();
        let beat_due = next_beat.is_some_and(|t| now >= t);
        let check_due = next_check.is_some_and(|t| now >= t);
        if beat_due || check_due {
            let groups = open_groups(&inner);
            if let (true, Some(cfg), Some(period)) = (check_due, &stall, check) {
                let gs: Vec<Group> = groups.iter().map(|(g, _)| g.clone()).collect();
                let wall = inner.anchor.wall_ns(clock::now_raw());
                let rows = tracker.check(cfg, &gs, wall, period.as_nanos() as u64);
                for r in &rows {
                    if cfg.stderr {
                        eprint!("{}", r.stall.to_text());
                    }
                    if let Some(cb) = &cfg.callback {
                        let cb = cb.clone();
                        let s = r.stall.clone();
                        // A panicking callback must not stop the watchdog.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&s)));
                    }
                }
                if !rows.is_empty() {
                    live.pend(|p| p.stalls.extend(rows));
                    inner.wake_writer();
                }
                next_check = Some(now + period);
            }
            if let (true, Some(iv)) = (beat_due, interval) {
                let b = beat(&inner, iv, started_ns, &cmdline);
                let snap_ns = b.beat_ns;
                let spans: Vec<LiveSpan> = groups.into_iter().flat_map(|(_, r)| r).collect();
                live.pend(|p| {
                    p.heartbeat = Some(b);
                    p.inflight = Some((snap_ns, spans));
                });
                inner.wake_writer();
                next_beat = Some(now + iv);
            }
        }
        let wake = [next_beat, next_check].into_iter().flatten().min();
        let Some(wake) = wake else { return };
        if stop.wait_until(wake) {
            break;
        }
    }
    // A last heartbeat, and no open spans: the process is closing.
    if let Some(iv) = interval {
        let b = beat(&inner, iv, started_ns, &cmdline);
        let snap_ns = b.beat_ns;
        live.pend(|p| {
            p.heartbeat = Some(b);
            p.inflight = Some((snap_ns, Vec::new()));
        });
    }
}
