//! The span API: RAII guards, closures, manual handles and contexts.

use super::buffer::{append_tail, Batch, Extra, RawSpan, TailRef, WriteTail};
use super::context::{with_local, Decision, Frame, ACTIVE};
use super::shared::Inner;
use crate::clock;
use crate::intern::Name;
use ferret_format::{Status, TagValue};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A finished span's tail: its tags and status, plus the busy tags
/// (`self_busy_ns` only when readers cannot tell it from the rest: some
/// children's time, or self busy below busy).
struct SpanTail {
    extra: Option<Box<Extra>>,
    busy: Option<(u64, u64)>,
    child_ns: u64,
}

impl WriteTail for SpanTail {
    fn write_tail(&mut self, out: &mut Vec<u8>) {
        let Some((b, sb)) = self.busy else {
            return self.extra.write_tail(out);
        };
        let with_self = self.child_ns > 0 || sb != b;
        match &mut self.extra {
            Some(e) => {
                e.tags.push((Cow::Borrowed("busy_ns"), TagValue::U64(b)));
                if with_self {
                    e.tags
                        .push((Cow::Borrowed("self_busy_ns"), TagValue::U64(sb)));
                }
                e.write_tail(out);
            }
            None => {
                // No tag vector: the tags are encoded from the stack.
                let all = [
                    ("busy_ns", TagValue::U64(b)),
                    ("self_busy_ns", TagValue::U64(sb)),
                ];
                append_tail(&Status::Ok, &all[..if with_self { 2 } else { 1 }], out);
            }
        }
    }
}

fn set_tag(
    extra: &mut Option<Box<Extra>>,
    key: impl Into<Cow<'static, str>>,
    value: impl Into<TagValue>,
) {
    let key = key.into();
    let value = value.into();
    let e = extra.get_or_insert_with(Default::default);
    if let Some(slot) = e.tags.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        e.tags.push((key, value));
    }
}

fn set_status(extra: &mut Option<Box<Extra>>, status: Status) {
    extra.get_or_insert_with(Default::default).status = status;
}

fn set_error(extra: &mut Option<Box<Extra>>, message: impl std::fmt::Display) {
    set_status(extra, Status::Error);
    set_tag(extra, "error", message.to_string());
}

/// Marks a span that a panic is unwinding through as an error.
#[inline]
fn mark_panic(extra: &mut Option<Box<Extra>>) {
    if std::thread::panicking() {
        mark_panic_slow(extra);
    }
}

#[cold]
fn mark_panic_slow(extra: &mut Option<Box<Extra>>) {
    {
        let had_error = extra
            .as_ref()
            .is_some_and(|e| e.tags.iter().any(|(k, _)| k == "error"));
        set_status(extra, Status::Error);
        if !had_error {
            set_tag(extra, "error", "panicked");
        }
    }
}

struct GuardState {
    id: u64,
    parent: u64,
    start: u64,
    extra: Option<Box<Extra>>,
}

/// An open span on the current thread, ended when dropped.
///
/// Spans started while it is alive on this thread become its children.
/// If a panic unwinds through it, it is recorded with status error.
#[must_use = "the span ends when the guard is dropped"]
pub struct SpanGuard {
    state: Option<GuardState>,
    /// Set for a guard of a skipped (sampled-out) trace: pops its frame.
    skipped: bool,
    _not_send: PhantomData<*const ()>,
}

/// Starts a span on the current thread; it ends when the guard drops.
///
/// ```no_run
/// let _g = ferret::span("parse");
/// // ... work ...
/// ```
#[inline]
pub fn span(name: impl Into<Name>) -> SpanGuard {
    if !ACTIVE.load(Ordering::Relaxed) {
        return SpanGuard::noop();
    }
    start_guard(name.into())
}

#[inline]
fn start_guard(name: Name) -> SpanGuard {
    with_local(|l| match l.begin(&name, None) {
        Decision::Off => SpanGuard::noop(),
        Decision::Skip(kind) => {
            l.push_frame(Frame::skipped(kind, false), 0, 0);
            SpanGuard {
                state: None,
                skipped: true,
                _not_send: PhantomData,
            }
        }
        Decision::Record(b) => {
            let start = clock::now_raw();
            l.push_frame(
                Frame {
                    id: b.id,
                    trace: b.trace,
                    path: b.path,
                    child_ns: 0,
                    shared: None,
                    skipped: false,
                    entered: false,
                    nested_ns: 0,
                    since: 0,
                },
                b.parent,
                start,
            );
            SpanGuard {
                state: Some(GuardState {
                    id: b.id,
                    parent: b.parent,
                    start,
                    extra: None,
                }),
                skipped: false,
                _not_send: PhantomData,
            }
        }
    })
    .unwrap_or_else(SpanGuard::noop)
}

/// Runs `f` inside a span named `name` and returns its result.
///
/// ```no_run
/// let n = ferret::measure("sum", || (0..100u64).sum::<u64>());
/// ```
#[inline]
pub fn measure<R>(name: impl Into<Name>, f: impl FnOnce() -> R) -> R {
    let _g = span(name);
    f()
}

/// The annotation methods shared by [`SpanGuard`] and [`SpanHandle`]: both
/// keep an `Option` state (None when not recorded) with an `id` and `extra`.
macro_rules! annotation_methods {
    ($ty:ident) => {
        impl $ty {
            /// True if this span will be recorded (a profiler is installed
            /// and sampling kept its trace).
            pub fn is_recording(&self) -> bool {
                self.state.is_some()
            }

            /// The span's id, if it is recorded.
            pub fn id(&self) -> Option<u64> {
                self.state.as_ref().map(|s| s.id)
            }

            /// Adds or replaces a tag.
            pub fn tag(
                &mut self,
                key: impl Into<Cow<'static, str>>,
                value: impl Into<TagValue>,
            ) -> &mut Self {
                if let Some(s) = &mut self.state {
                    set_tag(&mut s.extra, key, value);
                }
                self.after_tag();
                self
            }

            /// Adds a tag, builder style: `ferret::span("q").with_tag("table", "users")`.
            pub fn with_tag(
                mut self,
                key: impl Into<Cow<'static, str>>,
                value: impl Into<TagValue>,
            ) -> Self {
                self.tag(key, value);
                self
            }

            /// Sets the status (ok, error, or custom text).
            pub fn set_status(&mut self, status: Status) -> &mut Self {
                if let Some(s) = &mut self.state {
                    set_status(&mut s.extra, status);
                }
                self
            }

            /// Sets status error with a message (stored as the tag `error`).
            pub fn set_error(&mut self, message: impl std::fmt::Display) -> &mut Self {
                if let Some(s) = &mut self.state {
                    set_error(&mut s.extra, message);
                }
                self.after_tag();
                self
            }
        }
    };
}

annotation_methods!(SpanGuard);
annotation_methods!(SpanHandle);

impl SpanGuard {
    /// Publishes the tags for readers of open spans (the stall watchdog,
    /// the snapshot): off the span hot path, only when tags are set.
    fn after_tag(&mut self) {
        if let Some(GuardState {
            id, extra: Some(e), ..
        }) = &mut self.state
        {
            let id = *id;
            with_local(|l| {
                if l.live.is_some() {
                    l.publish_tags(id, e);
                    e.published = true;
                }
            });
        }
    }

    /// A guard that records nothing.
    pub fn noop() -> SpanGuard {
        SpanGuard {
            state: None,
            skipped: false,
            _not_send: PhantomData,
        }
    }
}

impl Drop for SpanGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(s) = &mut self.state {
            let end = clock::now_raw();
            // Field by field, not a copy of the whole state: `span()` has
            // just stored these one word at a time, and a wider load
            // spanning two of those stores cannot be forwarded from them
            // (it waits for the stores to commit).
            let mut extra = s.extra.take();
            mark_panic(&mut extra);
            let (id, parent, start) = (s.id, s.parent, s.start);
            with_local(|l| {
                if extra.as_ref().is_some_and(|e| e.published) {
                    l.forget_tags(id);
                }
                l.end_span(id, parent, start, end, extra)
            });
            // Known empty now: spares the drop glue an out-of-line call to
            // drop `extra` again.
            std::mem::forget(self.state.take());
        } else if self.skipped {
            with_local(|l| l.pop(0));
        }
    }
}

pub use super::context::SpanContext;

/// The innermost open span on this thread, if any.
pub fn current() -> Option<SpanContext> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    with_local(|l| l.capture()).flatten()
}

struct HandleState {
    inner: Arc<Inner>,
    id: u64,
    parent: u64,
    trace: u64,
    path: u32,
    thread: u32,
    start: u64,
    /// Children finishing anywhere add their duration here.
    shared: Arc<AtomicU64>,
    parent_shared: Option<Arc<AtomicU64>>,
    extra: Option<Box<Extra>>,
    /// Registered as waiting (see [`SpanHandle::go_idle`]).
    idle: bool,
    /// (busy, self busy) ns, written as the tags `busy_ns` and
    /// `self_busy_ns` at the end (`in_span` futures): kept apart from
    /// `extra` so that a future without other tags makes no tag vector.
    busy: Option<(u64, u64)>,
}

/// A manually ended span. It can move to another thread; end it with
/// [`SpanHandle::end`] (dropping it ends it too). It does not become the
/// current span by itself: use [`SpanHandle::enter`] or
/// [`SpanHandle::context`] to parent other spans under it.
#[must_use = "the span ends when the handle is ended or dropped"]
pub struct SpanHandle {
    state: Option<Box<HandleState>>,
    skipped: bool,
    /// Why a skipped handle's trace is skipped: 0 (sampling) or
    /// [`SHED`](super::context::SHED).
    skip_kind: u64,
}

/// Starts a manual span whose parent is the current span of this thread.
pub fn start(name: impl Into<Name>) -> SpanHandle {
    if !ACTIVE.load(Ordering::Relaxed) {
        return SpanHandle::noop();
    }
    start_handle(name.into(), None)
}

/// Starts a manual span under an explicit parent (possibly from another thread).
pub fn start_with_parent(name: impl Into<Name>, parent: &SpanContext) -> SpanHandle {
    if !ACTIVE.load(Ordering::Relaxed) {
        return SpanHandle::noop();
    }
    start_handle(name.into(), Some(parent))
}

/// Starts a manual span as the root of a new trace, whatever span is
/// current on this thread.
///
/// ```no_run
/// let _outer = ferret::span("request");
/// let job = ferret::start_root("background-job"); // not a child of "request"
/// job.end();
/// ```
pub fn start_root(name: impl Into<Name>) -> SpanHandle {
    if !ACTIVE.load(Ordering::Relaxed) {
        return SpanHandle::noop();
    }
    start_under(name.into(), Under::Root)
}

/// Where a new manual span goes.
pub(crate) enum Under<'a> {
    /// Under the current span of this thread (a root if there is none).
    Current,
    /// At the root of a new trace.
    Root,
    /// Under this span.
    Span(&'a SpanContext),
}

pub(crate) fn start_handle(name: Name, parent: Option<&SpanContext>) -> SpanHandle {
    start_under(name, parent.map_or(Under::Current, Under::Span))
}

pub(crate) fn start_under(name: Name, parent: Under<'_>) -> SpanHandle {
    if let Under::Span(p) = parent {
        if p.is_skipped() {
            let kind = p.trace;
            with_local(|l| {
                if l.refresh() {
                    l.count_skip(kind);
                }
            });
            return SpanHandle {
                state: None,
                skipped: true,
                skip_kind: kind,
            };
        }
    }
    with_local(|l| {
        let (explicit, parent_shared) = match parent {
            Under::Span(p) => (Some((p.id, p.trace, p.path)), p.shared.clone()),
            Under::Root => (Some((0, 0, 0)), None),
            Under::Current => (None, l.capture().and_then(|c| c.shared)),
        };
        match l.begin(&name, explicit) {
            Decision::Off => SpanHandle::noop(),
            Decision::Skip(kind) => SpanHandle {
                state: None,
                skipped: true,
                skip_kind: kind,
            },
            Decision::Record(b) => SpanHandle {
                state: Some(Box::new(HandleState {
                    inner: l.inner.clone().expect("begin checked"),
                    id: b.id,
                    parent: b.parent,
                    trace: b.trace,
                    path: b.path,
                    thread: l.thread_idx,
                    start: clock::now_raw(),
                    shared: Arc::new(AtomicU64::new(0)),
                    parent_shared: if b.parent == 0 { None } else { parent_shared },
                    extra: None,
                    idle: false,
                    busy: None,
                })),
                skipped: false,
                skip_kind: 0,
            },
        }
    })
    .unwrap_or_else(SpanHandle::noop)
}

impl SpanHandle {
    /// Keeps the waiting span's published tags up to date.
    fn after_tag(&mut self) {
        if self.state.as_ref().is_some_and(|s| s.idle) {
            self.publish_idle();
        }
    }

    /// Registers the span as waiting (an `in_span` future returned
    /// `Pending`), so that readers of open spans see it while no thread
    /// has it entered. Once per span: it stays registered until it ends.
    #[inline]
    pub(crate) fn go_idle(&mut self) {
        if self
            .state
            .as_ref()
            .is_some_and(|s| !s.idle && s.inner.live.is_some())
        {
            self.publish_idle();
        }
    }

    #[cold]
    fn publish_idle(&mut self) {
        let Some(s) = &mut self.state else { return };
        let Some(live) = &s.inner.live else { return };
        live.go_idle(
            s.id,
            super::live::IdleSpan {
                parent: s.parent,
                trace: s.trace,
                start: s.start,
                path: s.path,
                tags: s.extra.as_ref().map(|e| e.tags.clone()).unwrap_or_default(),
            },
        );
        s.idle = true;
    }

    /// A handle that records nothing.
    pub fn noop() -> SpanHandle {
        SpanHandle {
            state: None,
            skipped: false,
            skip_kind: 0,
        }
    }

    /// This span's context, to parent spans on other threads or tasks.
    pub fn context(&self) -> Option<SpanContext> {
        if self.skipped {
            return Some(SpanContext::skipped(self.skip_kind));
        }
        self.state.as_ref().map(|s| SpanContext {
            id: s.id,
            trace: s.trace,
            path: s.path,
            shared: Some(s.shared.clone()),
        })
    }

    /// Makes this span the current span of this thread until the returned
    /// guard drops: spans started meanwhile become its children.
    pub fn enter(&self) -> Entered<'_> {
        Entered {
            pushed: self.push_current(),
            _handle: PhantomData,
        }
    }

    /// Pushes this span on this thread's stack of current spans; returns the
    /// id to give [`pop_current`] (`None` if nothing was pushed).
    pub(crate) fn push_current(&self) -> Option<u64> {
        self.push_current_at(0)
    }

    /// Sets the busy and self busy time written at the end as the tags
    /// `busy_ns` and `self_busy_ns`.
    pub(crate) fn set_busy(&mut self, busy_ns: u64, self_busy_ns: u64) {
        if let Some(s) = &mut self.state {
            s.busy = Some((busy_ns, self_busy_ns));
        }
    }

    /// True when this handle records a span (not a no-op or skipped one).
    pub(crate) fn is_recorded(&self) -> bool {
        self.state.is_some()
    }

    /// [`push_current`](Self::push_current) from raw time `since` (0 for
    /// unknown): [`pop_current_at`] then credits the time entered to the
    /// frame below as nested time.
    pub(crate) fn push_current_at(&self, since: u64) -> Option<u64> {
        if let Some(s) = &self.state {
            with_local(|l| {
                l.push_frame(
                    Frame {
                        id: s.id,
                        trace: s.trace,
                        path: s.path,
                        child_ns: 0,
                        shared: Some(s.shared.clone()),
                        skipped: false,
                        entered: true,
                        nested_ns: 0,
                        since,
                    },
                    s.parent,
                    s.start,
                );
                Some(s.id)
            })
            .flatten()
        } else if self.skipped {
            with_local(|l| {
                l.push_frame(Frame::skipped(self.skip_kind, true), 0, 0);
                Some(0)
            })
            .flatten()
        } else {
            None
        }
    }

    /// Ends the span now.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let Some(mut s) = self.state.take() else {
            return;
        };
        let end = clock::now_raw();
        if s.idle {
            if let Some(live) = &s.inner.live {
                live.forget_idle(s.id);
            }
        }
        mark_panic(&mut s.extra);
        let dur = clock::delta_ns(s.start, end);
        if let Some(p) = &s.parent_shared {
            p.fetch_add(dur, Ordering::Relaxed);
        }
        let child_ns = s.shared.load(Ordering::Relaxed);
        let span = RawSpan {
            id: s.id,
            parent: s.parent,
            trace: s.trace,
            start: s.start,
            dur_ns: dur,
            child_ns,
            path: s.path,
            thread: s.thread,
            tail: TailRef::default(),
        };
        let mut tail = SpanTail {
            extra: s.extra.take(),
            busy: s.busy,
            child_ns,
        };
        let inner = &s.inner;
        let mut span = Some(span);
        with_local(|l| l.record(span.take().expect("once"), &mut tail, end, Some(inner)));
        if let Some(span) = span {
            inner.submit(Batch::one(span, &mut tail));
        }
    }
}

impl Drop for SpanHandle {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Keeps a [`SpanHandle`] current on this thread; see [`SpanHandle::enter`].
pub struct Entered<'a> {
    pushed: Option<u64>,
    _handle: PhantomData<(&'a SpanHandle, *const ())>,
}

/// Undoes [`SpanHandle::push_current`]: pops the frame of span `id` from this
/// thread's stack and credits its children's time to the span.
pub(crate) fn pop_current(id: u64) {
    pop_current_at(id, 0);
}

/// [`pop_current`] at raw time `now`: also credits the time the frame was
/// entered (if pushed with [`SpanHandle::push_current_at`]) to the frame
/// below, and returns the time nested frames spent on top of it.
pub(crate) fn pop_current_at(id: u64, now: u64) -> u64 {
    with_local(|l| {
        let f = if now == 0 {
            l.pop(id)
        } else {
            l.pop_entered(id, now)
        }?;
        // Most polls finish no child on this thread: skip the atomic add,
        // whose cache line other threads' children also write.
        if let Some(sh) = f.shared.as_ref().filter(|_| f.child_ns > 0) {
            sh.fetch_add(f.child_ns, Ordering::Relaxed);
        }
        Some(f.nested_ns)
    })
    .flatten()
    .unwrap_or(0)
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.pushed {
            pop_current(id);
        }
    }
}
