//! Live state of a recording process: the open spans of every thread and
//! task, a heartbeat, and the stall watchdog.
//!
//! Recording threads publish their stacks of open spans ([`stack`]), and
//! `in_span` futures that wait (returned `Pending`) register in an idle
//! table. A monitor thread ([`monitor`]) reads both every heartbeat
//! interval and every stall check, hands the writer a snapshot of the open
//! spans and a heartbeat to store, and reports spans open past their stall
//! threshold ([`stall`]).

pub(crate) mod monitor;
pub(crate) mod proc_stats;
pub(crate) mod stack;
pub mod stall;
pub(crate) mod store;

use ferret_format::TagValue;
use rustc_hash::FxHashMap;
use stack::LiveStack;
use stall::StallConfig;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Live options chosen on the builder.
#[derive(Clone, Debug)]
pub(crate) struct LiveConfig {
    /// How often the heartbeat and the snapshot of open spans are written
    /// (`None`: never).
    pub interval: Option<Duration>,
    /// The stall watchdog (`None`: off).
    pub stall: Option<StallConfig>,
}

impl LiveConfig {
    /// Whether anything needs the open spans published.
    pub(crate) fn enabled(&self) -> bool {
        self.interval.is_some() || self.stall.is_some()
    }
}

/// A span that waits (an `in_span` future that returned `Pending`), not
/// on any thread's stack until it is polled again.
#[derive(Clone, Debug)]
pub(crate) struct IdleSpan {
    pub parent: u64,
    pub trace: u64,
    /// Raw clock ticks.
    pub start: u64,
    pub path: u32,
    /// Its tags when it last went idle (or was tagged while idle).
    pub tags: Vec<(Cow<'static, str>, TagValue)>,
}

const SHARDS: usize = 16;

/// Live state shared by the recording threads, the monitor and the writer.
pub(crate) struct Live {
    pub config: LiveConfig,
    /// Published stacks of the threads recording now.
    pub stacks: Mutex<Vec<Arc<LiveStack>>>,
    /// Waiting spans by id, sharded by id so that tasks going idle on
    /// several worker threads rarely meet on one lock.
    idle: Vec<Mutex<FxHashMap<u64, IdleSpan>>>,
    /// What the writer stores at its next commit.
    pub pending: Mutex<PendingLive>,
}

/// Rows waiting for the writer.
#[derive(Default)]
pub(crate) struct PendingLive {
    pub heartbeat: Option<monitor::Beat>,
    /// A new snapshot of open spans (replaces the process's rows).
    pub inflight: Option<(i64, Vec<monitor::LiveSpan>)>,
    pub stalls: Vec<stall::StallRow>,
}

impl PendingLive {
    pub(crate) fn is_empty(&self) -> bool {
        self.heartbeat.is_none() && self.inflight.is_none() && self.stalls.is_empty()
    }
}

impl Live {
    pub(crate) fn new(config: LiveConfig) -> Live {
        Live {
            config,
            stacks: Mutex::new(Vec::new()),
            idle: (0..SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
            pending: Mutex::new(PendingLive::default()),
        }
    }

    pub(crate) fn register_stack(&self, s: Arc<LiveStack>) {
        lock(&self.stacks).push(s);
    }

    pub(crate) fn unregister_stack(&self, s: &Arc<LiveStack>) {
        let mut v = lock(&self.stacks);
        if let Some(pos) = v.iter().position(|x| Arc::ptr_eq(x, s)) {
            v.swap_remove(pos);
        }
    }

    /// The shard of span `id`: by its block of ids (each thread takes ids
    /// 4096 at a time), so that a thread's waiting spans go to one shard
    /// and two threads rarely lock, and pull into their caches, the same
    /// one (by `id % SHARDS`, every thread went through every shard).
    fn shard(&self, id: u64) -> &Mutex<FxHashMap<u64, IdleSpan>> {
        &self.idle[((id >> 12) as usize) % SHARDS]
    }

    /// A span starts waiting.
    pub(crate) fn go_idle(&self, id: u64, span: IdleSpan) {
        lock(self.shard(id)).insert(id, span);
    }

    /// A waiting span ended.
    pub(crate) fn forget_idle(&self, id: u64) {
        lock(self.shard(id)).remove(&id);
    }

    /// Every waiting span.
    pub(crate) fn idle_spans(&self) -> Vec<(u64, IdleSpan)> {
        let mut out = Vec::new();
        for s in &self.idle {
            out.extend(lock(s).iter().map(|(k, v)| (*k, v.clone())));
        }
        out
    }

    /// Hands the writer rows to store.
    pub(crate) fn pend(&self, f: impl FnOnce(&mut PendingLive)) {
        f(&mut lock(&self.pending));
    }

    /// True if rows wait for the writer.
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// Takes the rows waiting for the writer.
    pub(crate) fn take_pending(&self) -> PendingLive {
        std::mem::take(&mut *lock(&self.pending))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tags as a JSON object (`None` when there are none).
pub(crate) fn tags_json(tags: &[(Cow<'static, str>, TagValue)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let mut s = String::from("{");
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_str(&mut s, k);
        s.push(':');
        match v {
            TagValue::Str(t) => json_str(&mut s, t),
            TagValue::I64(n) => s.push_str(&n.to_string()),
            TagValue::U64(n) => s.push_str(&n.to_string()),
            TagValue::F64(x) if x.is_finite() => s.push_str(&x.to_string()),
            TagValue::F64(x) => json_str(&mut s, &x.to_string()),
            TagValue::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            TagValue::Null => s.push_str("null"),
            TagValue::Json(t) => s.push_str(t),
        }
    }
    s.push('}');
    Some(s)
}

/// Appends `t` as a JSON string.
pub(crate) fn json_str(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_render_as_json() {
        let tags = vec![
            (Cow::Borrowed("table"), TagValue::Str("or\"ders\n".into())),
            (Cow::Borrowed("n"), TagValue::I64(-3)),
            (Cow::Borrowed("ok"), TagValue::Bool(true)),
            (Cow::Borrowed("x"), TagValue::F64(f64::NAN)),
        ];
        assert_eq!(
            tags_json(&tags).unwrap(),
            r#"{"table":"or\"ders\n","n":-3,"ok":true,"x":"NaN"}"#
        );
        assert_eq!(tags_json(&[]), None);
    }
}
