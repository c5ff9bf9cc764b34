//! A recorded tracing span while it is open: ids, start, children's time
//! and tags, kept inline in the span's boxed state in the layer's table
//! rather than in a [`SpanHandle`](crate::SpanHandle) of its own (a box
//! and a shared counter per span).

use super::tags::{Tags, Val};
use crate::clock;
use crate::intern::Name;
use crate::recorder::buffer::{Batch, RawSpan, TailRef, WriteTail};
use crate::recorder::context::{installed, with_local, Decision, Frame};
#[cfg(doc)]
use crate::recorder::shared::Inner;
use crate::recorder::span::{SpanContext, Under};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the layer keeps for a tracing span.
// Inline on purpose: the state is boxed already, and boxing `Open` too
// would add an allocation and a cache miss.
#[allow(clippy::large_enum_variant)]
pub(super) enum Rec {
    /// Not recorded (no profiler installed).
    Off,
    /// Its trace was skipped by sampling (0) or shed under queue pressure
    /// (`SHED`): it pushes skipped frames so that its descendants are
    /// skipped too.
    Skipped(u64),
    /// Recorded. Kept inline: the span's state is one box already, and a
    /// second box would be a second cache miss on every poll of an
    /// instrumented future.
    Open(Open),
}

/// A recorded span, open. The fields every enter and exit reads come first.
#[repr(C)]
pub(super) struct Open {
    pub id: u64,
    trace: u64,
    path: u32,
    thread: u32,
    /// Where children finishing elsewhere add their time; created the
    /// first time a child needs it.
    shared: Option<Arc<AtomicU64>>,
    /// Time of finished children credited when this span's frames popped.
    child_ns: u64,
    parent: u64,
    start: u64,
    /// Its profiler's [`Inner::serial`]: a number, not a reference, so that
    /// spans beginning and ending on several threads do not all count
    /// references on one shared line.
    profiler: u64,
    /// Further counters, when frames on several threads each made one.
    more_shared: Vec<Arc<AtomicU64>>,
    /// The parent's counter, when the parent is another span.
    parent_shared: Option<Arc<AtomicU64>>,
    /// Its self busy time so far: for each of its frames that popped,
    /// the time entered minus the time of frames entered or guarded on
    /// top of it. `None` until a frame pops.
    self_ns: Option<u64>,
    /// The `busy_ns` tag to write, if busy time is recorded.
    pub busy_ns: Option<u64>,
    /// The `self_busy_ns` tag to write, if busy time is recorded.
    pub self_busy_ns: Option<u64>,
    /// Ended after its parent: tagged `detached`.
    pub detached: bool,
    pub tags: Tags,
}

impl Rec {
    /// Begins a span named `name` under `under`, in place: `self` is
    /// written once (the state is large, and a returned value would be
    /// copied on its way).
    pub(super) fn begin(&mut self, name: &'static str, under: Under<'_>) {
        if let Under::Span(p) = under {
            if p.is_skipped() {
                let kind = p.trace;
                with_local(|l| {
                    if l.refresh() {
                        l.count_skip(kind);
                    }
                });
                *self = Rec::Skipped(kind);
                return;
            }
        }
        with_local(|l| {
            let (explicit, parent_shared) = match under {
                Under::Span(p) => (Some((p.id, p.trace, p.path)), p.shared.clone()),
                Under::Root => (Some((0, 0, 0)), None),
                Under::Current => {
                    if !l.refresh() {
                        return;
                    }
                    (None, l.capture().and_then(|c| c.shared))
                }
            };
            match l.begin(&Name::Static(name), explicit) {
                Decision::Off => {}
                Decision::Skip(kind) => *self = Rec::Skipped(kind),
                Decision::Record(b) => {
                    *self = Rec::Open(Open {
                        profiler: l.serial(),
                        id: b.id,
                        parent: b.parent,
                        trace: b.trace,
                        path: b.path,
                        thread: l.thread_idx,
                        start: clock::now_raw(),
                        child_ns: 0,
                        shared: None,
                        more_shared: Vec::new(),
                        parent_shared: if b.parent == 0 { None } else { parent_shared },
                        self_ns: None,
                        busy_ns: None,
                        self_busy_ns: None,
                        detached: false,
                        tags: Tags::default(),
                    })
                }
            }
        });
    }

    /// This span's context, for children with an explicit parent.
    pub(super) fn context(&mut self) -> Option<SpanContext> {
        match self {
            Rec::Off => None,
            Rec::Skipped(kind) => Some(SpanContext {
                id: 0,
                trace: *kind,
                path: 0,
                shared: None,
            }),
            Rec::Open(o) => Some(SpanContext {
                id: o.id,
                trace: o.trace,
                path: o.path,
                shared: Some(
                    o.shared
                        .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
                        .clone(),
                ),
            }),
        }
    }

    /// Makes the span current on this thread from raw time `now`; false if
    /// it pushes nothing.
    #[inline]
    pub(super) fn push(&self, now: u64) -> bool {
        // The frame is built where it is pushed: built first and moved
        // into the closure, it was copied three times on the way.
        match self {
            Rec::Off => false,
            Rec::Skipped(kind) => {
                let kind = *kind;
                with_local(|l| l.push_frame(Frame::skipped(kind, true), 0, 0)).is_some()
            }
            Rec::Open(o) => with_local(|l| {
                l.push_frame(
                    Frame {
                        id: o.id,
                        trace: o.trace,
                        path: o.path,
                        child_ns: 0,
                        shared: o.shared.clone(),
                        skipped: false,
                        entered: true,
                        nested_ns: 0,
                        since: now,
                    },
                    o.parent,
                    o.start,
                )
            })
            .is_some(),
        }
    }

    /// Undoes [`push`](Self::push) at raw time `now`, keeping what children
    /// credited to the frame, and credits the time entered to the frame
    /// below as nested time.
    #[inline]
    pub(super) fn pop(&mut self, now: u64) {
        let id = match self {
            Rec::Off => return,
            Rec::Skipped(_) => 0,
            Rec::Open(o) => o.id,
        };
        let Some(Some(f)) = with_local(|l| l.pop_entered(id, now)) else {
            return;
        };
        if let Rec::Open(o) = self {
            o.child_ns += f.child_ns;
            // Per frame, so that a span entered again inside itself (on
            // this thread, directly or under another span) counts the
            // time it was innermost once, not zero times.
            let own = clock::delta_ns(f.since, now).saturating_sub(f.nested_ns);
            o.self_ns = Some(o.self_ns.unwrap_or(0) + own);
            if let Some(s) = f.shared {
                match &o.shared {
                    None => o.shared = Some(s),
                    Some(mine) if Arc::ptr_eq(mine, &s) => {}
                    Some(_) => o.more_shared.push(s),
                }
            }
        }
    }
}

/// A layer span's tail: its tags, and the ones the layer adds at close.
struct LayerTail<'a> {
    tags: &'a Tags,
    busy_ns: Option<u64>,
    self_busy_ns: Option<u64>,
    detached: bool,
}

impl WriteTail for LayerTail<'_> {
    #[inline]
    fn write_tail(&mut self, out: &mut Vec<u8>) {
        self.tags
            .write_tail(self.busy_ns, self.self_busy_ns, self.detached, out);
    }
}

/// The `self_busy_ns` tag to write: left out when readers can tell it
/// without it (no children's time at all and self busy = busy, as for
/// every leaf span), which saves a tag on most spans.
fn self_busy_tag(busy: Option<u64>, self_busy: Option<u64>, child_ns: u64) -> Option<u64> {
    self_busy.filter(|&sb| child_ns > 0 || Some(sb) != busy)
}

impl Open {
    /// The parent span's id (0 for a root).
    pub(super) fn parent_id(&self) -> u64 {
        self.parent
    }

    /// Credits a child's duration directly (the child is finished here).
    pub(super) fn credit(&mut self, ns: u64) {
        self.child_ns += ns;
    }

    /// Its self busy time given its busy time `busy`: the time it was the
    /// innermost span entered or guarded on a thread, at most `busy`
    /// (frames on several threads at once overlap); `busy` if no frame of
    /// it was ever pushed.
    pub(super) fn self_busy(&self, busy: u64) -> u64 {
        self.self_ns.map_or(busy, |s| s.min(busy))
    }

    /// The span's duration if it ended at `end`.
    pub(super) fn duration_at(&self, end: u64) -> u64 {
        clock::delta_ns(self.start, end)
    }

    /// Ends the span at raw time `end` and hands it to the recorder.
    /// `credit_parent`: add its duration to the parent's children time
    /// (false for a child that outlived its parent, or one credited
    /// directly with [`credit`](Self::credit)).
    pub(super) fn finish(&mut self, end: u64, credit_parent: bool) {
        if std::thread::panicking() {
            self.tags.set_error_status();
            if !self.tags.has("error") {
                self.tags.set("error", Val::Static("panicked"));
            }
        }
        let dur = clock::delta_ns(self.start, end);
        if credit_parent {
            if let Some(p) = &self.parent_shared {
                p.fetch_add(dur, Ordering::Relaxed);
            }
        }
        let load = |a: &Arc<AtomicU64>| a.load(Ordering::Relaxed);
        let child = self.child_ns
            + self.shared.as_ref().map_or(0, load)
            + self.more_shared.iter().map(load).sum::<u64>();
        let span = RawSpan {
            id: self.id,
            parent: self.parent,
            trace: self.trace,
            start: self.start,
            dur_ns: dur,
            child_ns: child,
            path: self.path,
            thread: self.thread,
            tail: TailRef::default(),
        };
        let mut tail = LayerTail {
            tags: &self.tags,
            busy_ns: self.busy_ns,
            self_busy_ns: self_busy_tag(self.busy_ns, self.self_busy_ns, child),
            detached: self.detached,
        };
        let profiler = self.profiler;
        let mut span = Some(span);
        // Not `refresh`ed: attaching a thread that only ever closes spans
        // (a tokio worker finishing a spawned task) costs microseconds,
        // and a parent closed by its last child must follow within
        // NESTED_CLOSE_NS to be recognised (see `on_close`).
        with_local(|l| {
            if l.serial() == profiler {
                l.record(span.take().expect("once"), &mut tail, end, None);
            }
        });
        // Its profiler is not this thread's: another was installed since
        // the span began, the thread has recorded nothing yet, or it is
        // ending.
        if let Some(span) = span {
            if let Some(inner) = installed(profiler) {
                inner.submit(Batch::one(span, &mut tail));
            }
        }
    }
}
