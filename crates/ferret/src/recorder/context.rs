//! Per-thread recorder state: the stack of open spans (the current context),
//! the thread's span buffer, its id range and its path cache; and the global
//! "installed profiler" slot the hot path checks.

use super::buffer::{Batch, Extra, RawSpan, TailRef, ThreadBuf, WriteTail, TAILS_HANDOVER};
use super::live::stack::{LiveStack, Pushed, ENTERED, SKIPPED};
use super::shared::Inner;
use crate::clock;
use crate::intern::{Name, PathCache};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(feature = "tracing")]
use std::sync::Weak;
use std::sync::{Arc, Mutex};

/// True while a profiler is installed: the one check a disabled span pays.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped on every install/uninstall so threads re-read `GLOBAL`.
static GEN: AtomicU64 = AtomicU64::new(1);
static GLOBAL: Mutex<Option<Arc<Inner>>> = Mutex::new(None);

fn global() -> std::sync::MutexGuard<'static, Option<Arc<Inner>>> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every profiler installed so far that is still alive: where a span that
/// names its profiler by [`Inner::serial`] finds it.
#[cfg(feature = "tracing")]
static INSTALLED: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// The profiler with serial `serial`, if it was installed and is alive.
/// For spans that finish where their profiler is not the thread's (it was
/// replaced meanwhile): a lock and a scan, off the hot path.
#[cfg(feature = "tracing")]
pub(crate) fn installed(serial: u64) -> Option<Arc<Inner>> {
    let list = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    list.iter()
        .filter_map(Weak::upgrade)
        .find(|i| i.serial == serial)
}

pub(crate) fn install(inner: Arc<Inner>) -> Option<Arc<Inner>> {
    #[cfg(feature = "tracing")]
    {
        let mut list = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        if !list.iter().any(|w| w.as_ptr() == Arc::as_ptr(&inner)) {
            list.push(Arc::downgrade(&inner));
        }
    }
    let mut g = global();
    let old = g.replace(inner);
    GEN.fetch_add(1, Ordering::AcqRel);
    ACTIVE.store(true, Ordering::Release);
    old
}

/// Uninstalls the installed profiler, if any, and returns it.
#[cfg(unix)]
pub(crate) fn take_installed() -> Option<Arc<Inner>> {
    let mut g = global();
    let cur = g.take();
    if cur.is_some() {
        ACTIVE.store(false, Ordering::Release);
        GEN.fetch_add(1, Ordering::AcqRel);
    }
    cur
}

/// Uninstalls `inner` if it is the installed profiler.
pub(crate) fn uninstall(inner: &Arc<Inner>) -> bool {
    let mut g = global();
    if g.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, inner)) {
        *g = None;
        ACTIVE.store(false, Ordering::Release);
        GEN.fetch_add(1, Ordering::AcqRel);
        true
    } else {
        false
    }
}

/// An open span on this thread's stack.
pub(crate) struct Frame {
    pub id: u64,
    pub trace: u64,
    pub path: u32,
    /// Duration of finished direct children recorded on this thread.
    pub child_ns: u64,
    /// Accumulator for children that finish elsewhere (created on demand).
    pub shared: Option<Arc<AtomicU64>>,
    /// This frame belongs to a trace that sampling skipped (or that was
    /// shed under queue pressure; then `trace` is [`SHED`]): its
    /// descendants record nothing.
    pub skipped: bool,
    /// Pushed by [`SpanHandle::enter`](super::span::SpanHandle::enter): the
    /// handle, not this frame, records the span.
    pub entered: bool,
    /// Time spent in frames directly above this one: finished spans that
    /// were guarded on top of it, and entered intervals of spans entered on
    /// top of it (see [`Local::pop_entered`]). A span's *self busy* time is
    /// its busy time minus this.
    pub nested_ns: u64,
    /// Raw clock when an entered frame was pushed (0: unknown, or a guard
    /// frame, whose span measures its own duration).
    pub since: u64,
}

impl Frame {
    /// The frame of a span whose trace is skipped (`kind`: sampled out, or
    /// [`SHED`]); `entered` as in [`Frame::entered`].
    pub(crate) fn skipped(kind: u64, entered: bool) -> Frame {
        Frame {
            id: 0,
            trace: kind,
            path: 0,
            child_ns: 0,
            shared: None,
            skipped: true,
            entered,
            nested_ns: 0,
            since: 0,
        }
    }
}

/// The `trace` of a skipped frame or context whose trace was shed because
/// the writer's queue was filling up (0 means skipped by sampling). Real
/// trace ids are at least `1 << 40`.
pub(crate) const SHED: u64 = 1;

pub(crate) struct Local {
    gen: u64,
    pub inner: Option<Arc<Inner>>,
    buf: Option<Arc<ThreadBuf>>,
    pub thread_idx: u32,
    /// The attached profiler's `id_base`.
    id_base: u64,
    next_id: u64,
    id_end: u64,
    pub stack: Vec<Frame>,
    /// The mirror of `stack` that other threads read (when the profiler
    /// publishes open spans).
    pub live: Option<Arc<LiveStack>>,
    pub cache: PathCache,
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local::new()) };
}

/// Runs `f` with this thread's state, or returns `None` during thread teardown.
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|l| match l.try_borrow_mut() {
            Ok(mut l) => Some(f(&mut l)),
            Err(_) => None,
        })
        .ok()
        .flatten()
}

#[cfg(target_os = "linux")]
fn os_tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

#[cfg(not(target_os = "linux"))]
fn os_tid() -> u64 {
    0
}

/// What the beginning of a span decided.
pub(crate) enum Decision {
    /// No profiler installed: record nothing, push nothing.
    Off,
    /// The trace is skipped, by sampling (0) or shed under queue pressure
    /// ([`SHED`]): push a skipped frame with this `trace` so that the whole
    /// subtree is skipped too.
    Skip(u64),
    /// Record the span.
    Record(Begun),
}

/// Ids and path of a span to record.
pub(crate) struct Begun {
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    pub path: u32,
}

impl Local {
    const fn new() -> Local {
        Local {
            gen: 0,
            inner: None,
            buf: None,
            thread_idx: 0,
            id_base: 0,
            next_id: 0,
            id_end: 0,
            stack: Vec::new(),
            live: None,
            cache: PathCache::new(),
        }
    }

    /// Brings this thread up to date with the installed profiler; true if one is.
    #[inline]
    pub(crate) fn refresh(&mut self) -> bool {
        let g = GEN.load(Ordering::Acquire);
        if g != self.gen {
            self.reattach(g);
        }
        self.inner.is_some()
    }

    #[cold]
    fn reattach(&mut self, g: u64) {
        self.detach();
        self.gen = g;
        // Spans still open here (guards) belong to the profiler installed
        // before: forget their frames, so that nothing started from now on
        // becomes their child in the new run, and their ends (which find
        // no frame) record nothing into it; `detach` counted them as lost.
        // Frames of entered handles stay: each handle records into its own
        // profiler, and its `Entered` guard pops its frame.
        self.stack.retain(|f| f.entered);
        let inner = global().clone();
        if let Some(inner) = inner {
            let deadline = clock::now_raw().saturating_add(inner.flush_interval_raw);
            let buf = Arc::new(ThreadBuf::new(deadline));
            inner.register_buf(buf.clone());
            self.thread_idx =
                inner.register_thread(os_tid(), std::thread::current().name().map(str::to_owned));
            self.buf = Some(buf);
            if let Some(live) = &inner.live {
                let ls = Arc::new(LiveStack::new(self.thread_idx));
                // Frames kept from before belong to another profiler.
                for k in 0..self.stack.len() {
                    ls.push(
                        k,
                        Pushed {
                            id: 0,
                            parent: 0,
                            trace: 0,
                            start: 0,
                            path: 0,
                            flags: SKIPPED,
                        },
                    );
                }
                live.register_stack(ls.clone());
                self.live = Some(ls);
            }
            self.id_base = inner.id_base;
            self.inner = Some(inner);
            self.next_id = 0;
            self.id_end = 0;
        }
    }

    fn detach(&mut self) {
        if let (Some(inner), Some(ls)) = (&self.inner, self.live.take()) {
            if let Some(live) = &inner.live {
                live.unregister_stack(&ls);
            }
        }
        if let (Some(inner), Some(buf)) = (self.inner.take(), self.buf.take()) {
            let open = self
                .stack
                .iter()
                .filter(|f| !f.skipped && !f.entered)
                .count();
            if open > 0 {
                // They will never reach this profiler (the thread is ending,
                // or another profiler was installed).
                inner.count_dropped(open);
            }
            // Hand over the spans in a vector of their size, and give the
            // thread's buffer to the pool for the next thread: a thread that
            // lived for one span must not leave a whole batch allocation in
            // the queue (100,000 short threads took 287 MB that way).
            let (spans, whole) = buf.with(|v, _| (v.take_exact(), std::mem::take(v)));
            if !spans.is_empty() {
                inner.submit(spans);
            }
            inner.recycle(whole);
            inner.unregister_buf(&buf);
        }
    }

    /// The attached profiler's [`Inner::serial`] (0: none).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn serial(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.serial)
    }

    /// A new span id (a profiler must be attached).
    #[inline]
    fn alloc_id(&mut self) -> u64 {
        if self.next_id == self.id_end {
            self.refill_ids();
        }
        let id = self.id_base | self.next_id;
        self.next_id += 1;
        id
    }

    #[cold]
    fn refill_ids(&mut self) {
        if let Some(inner) = &self.inner {
            let b = inner.next_id.fetch_add(4096, Ordering::Relaxed);
            self.next_id = b;
            self.id_end = b + 4096;
        }
    }

    /// Decides whether a new span is recorded and, if so, allocates its id
    /// and path under `parent` (or under the top of the stack when `parent`
    /// is `None`).
    #[inline]
    pub(crate) fn begin(&mut self, name: &Name, parent: Option<(u64, u64, u32)>) -> Decision {
        if !self.refresh() {
            return Decision::Off;
        }
        let (parent, trace, ppath) = match parent {
            Some(p) => p,
            None => match self.stack.last() {
                Some(f) if f.skipped => {
                    let kind = f.trace;
                    self.count_skip(kind);
                    return Decision::Skip(kind);
                }
                Some(f) => (f.id, f.trace, f.path),
                None => (0, 0, 0),
            },
        };
        let Some(inner) = self.inner.as_ref() else {
            return Decision::Off;
        };
        if parent == 0 && inner.shedding.load(Ordering::Relaxed) {
            self.count_skip(SHED);
            return Decision::Skip(SHED);
        }
        if let Some(s) = &inner.sampler {
            if !s.admit(parent == 0) {
                self.count_skip(0);
                return Decision::Skip(0);
            }
        }
        let path = self.cache.path(ppath, name);
        let id = self.alloc_id();
        let trace = if parent == 0 { id } else { trace };
        Decision::Record(Begun {
            id,
            parent,
            trace,
            path,
        })
    }

    /// Counts a skipped span: shed under queue pressure if `kind` is
    /// [`SHED`], else skipped by sampling.
    #[inline]
    pub(crate) fn count_skip(&self, kind: u64) {
        if let Some(b) = &self.buf {
            if kind == SHED {
                b.count_shed();
            } else {
                b.count_skip();
            }
        }
    }

    /// Pushes a frame (and publishes it): `parent` and `start` (raw
    /// ticks) are for readers of the open spans.
    #[inline(always)]
    pub(crate) fn push_frame(&mut self, f: Frame, parent: u64, start: u64) {
        if let Some(ls) = &self.live {
            ls.push(
                self.stack.len(),
                Pushed {
                    id: f.id,
                    parent,
                    trace: f.trace,
                    start,
                    path: f.path,
                    flags: if f.skipped { SKIPPED } else { 0 }
                        | if f.entered { ENTERED } else { 0 },
                },
            );
        }
        self.stack.push(f);
    }

    /// Publishes the tags of the open span `id` (a guard's `tag()`).
    pub(crate) fn publish_tags(&self, id: u64, extra: &Extra) {
        if let Some(ls) = &self.live {
            ls.publish_tags(id, &extra.tags);
        }
    }

    /// Forgets the published tags of span `id`, which ended.
    pub(crate) fn forget_tags(&self, id: u64) {
        if let Some(ls) = &self.live {
            ls.forget_tags(id);
        }
    }

    /// Pops the frame of span `id` (normally the top) and returns it.
    #[inline]
    pub(crate) fn pop(&mut self, id: u64) -> Option<Frame> {
        match self.stack.last() {
            Some(f) if f.id == id => {
                let f = self.stack.pop();
                if let Some(ls) = &self.live {
                    ls.truncate(self.stack.len());
                }
                f
            }
            _ => {
                let pos = self.stack.iter().rposition(|f| f.id == id)?;
                Some(self.remove_at(pos))
            }
        }
    }

    /// Takes out the frame at `pos`, below the top: an out-of-order end (a
    /// guard dropped before its child's) keeps the rest of the stack intact.
    fn remove_at(&mut self, pos: usize) -> Frame {
        if let Some(ls) = &self.live {
            ls.remove(pos, self.stack.len());
        }
        self.stack.remove(pos)
    }

    /// Pops the entered frame of span `id` at raw time `now` and credits
    /// the time it was on the stack (when known) to the frame below as
    /// nested time.
    ///
    /// Out of order (a frame entered on top of it is still there: guards
    /// dropped in another order than taken), the frame directly above
    /// has been nested in it since that frame's push: that time goes to
    /// the popped frame's nested time, and only the time before it to the
    /// frame below, which the frame above is now directly on (its whole
    /// time goes there when it pops).
    #[inline]
    pub(crate) fn pop_entered(&mut self, id: u64, now: u64) -> Option<Frame> {
        if !matches!(self.stack.last(), Some(f) if f.id == id) {
            return self.pop_entered_out_of_order(id, now);
        }
        let f = self.pop(id)?;
        if f.since != 0 {
            if let Some(top) = self.stack.last_mut() {
                top.nested_ns += clock::delta_ns(f.since, now);
            }
        }
        Some(f)
    }

    #[cold]
    fn pop_entered_out_of_order(&mut self, id: u64, now: u64) -> Option<Frame> {
        let pos = self.stack.iter().rposition(|f| f.id == id)?;
        let above_since = self.stack.get(pos + 1).map_or(0, |f| f.since);
        let mut f = self.remove_at(pos);
        if f.since != 0 {
            let before_above = if above_since != 0 {
                f.nested_ns += clock::delta_ns(above_since, now);
                clock::delta_ns(f.since, above_since)
            } else {
                clock::delta_ns(f.since, now)
            };
            if let Some(below) = pos.checked_sub(1).and_then(|b| self.stack.get_mut(b)) {
                below.nested_ns += before_above;
            }
        }
        Some(f)
    }

    /// Ends the span `id` guarded on this thread: pops its frame, credits
    /// its duration to its parent and records it.
    #[inline]
    pub(crate) fn end_span(
        &mut self,
        id: u64,
        parent: u64,
        start: u64,
        end: u64,
        mut extra: Option<Box<Extra>>,
    ) {
        // The common case: the span's frame is on top and has no shared
        // accumulator; read it in place rather than moving it out.
        let (trace, path, child) = match self.stack.last() {
            Some(f) if f.id == id && f.shared.is_none() => {
                let r = (f.trace, f.path, f.child_ns);
                self.stack.truncate(self.stack.len() - 1);
                if let Some(ls) = &self.live {
                    ls.truncate(self.stack.len());
                }
                r
            }
            _ => {
                let Some(frame) = self.pop(id) else { return };
                let child = frame.child_ns
                    + frame
                        .shared
                        .as_ref()
                        .map_or(0, |a| a.load(Ordering::Relaxed));
                (frame.trace, frame.path, child)
            }
        };
        let dur = clock::delta_ns(start, end);
        if let Some(top) = self.stack.last_mut() {
            if top.id == parent {
                top.child_ns += dur;
            }
            top.nested_ns += dur;
        }
        let thread = self.thread_idx;
        self.record(
            RawSpan {
                id,
                parent,
                trace,
                start,
                dur_ns: dur,
                child_ns: child,
                path,
                thread,
                tail: TailRef::default(),
            },
            &mut extra,
            end,
            None,
        );
    }

    /// Hands a finished span to this thread's buffer (or straight to `inner`
    /// when the span belongs to another profiler than this thread's).
    #[inline]
    pub(crate) fn record(
        &mut self,
        span: RawSpan,
        tail: &mut impl WriteTail,
        end_raw: u64,
        owner: Option<&Arc<Inner>>,
    ) {
        let (inner, buf) = match (&self.inner, &self.buf) {
            (Some(i), Some(b)) if owner.is_none_or(|o| Arc::ptr_eq(o, i)) => (i, b),
            _ => {
                if let Some(o) = owner {
                    o.submit(Batch::one(span, tail));
                }
                return;
            }
        };
        let batch = inner.batch_size;
        let full = buf.with(|v, deadline| {
            if v.spans.capacity() == 0 {
                first_buffer(inner, v);
            }
            v.push(span, tail);
            v.len() >= batch || v.tails.len() >= TAILS_HANDOVER || end_raw >= *deadline
        });
        if full {
            hand_over(inner, buf, end_raw);
        }
    }

    /// The top frame's context, creating its shared accumulator if needed.
    pub(crate) fn capture(&mut self) -> Option<SpanContext> {
        let f = self.stack.last_mut()?;
        if f.skipped {
            return Some(SpanContext::skipped(f.trace));
        }
        let shared = f
            .shared
            .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone();
        Some(SpanContext {
            id: f.id,
            trace: f.trace,
            path: f.path,
            shared: Some(shared),
        })
    }
}

/// Gives a thread's empty buffer room for a batch, from the pool of
/// recycled batches if one is there (threads that come and go reuse the
/// buffers of threads that ended).
#[cold]
#[inline(never)]
fn first_buffer(inner: &Inner, v: &mut Batch) {
    *v = inner.fresh_batch();
    if v.spans.capacity() < inner.batch_size {
        v.spans.reserve_exact(inner.batch_size);
    }
}

/// Hands a full (or due) buffer to the writer; kept out of line so that the
/// hot path stays small.
///
/// The thread keeps its buffer, which stays in its cache: the spans are
/// moved into a batch from the writer's pool with non-temporal stores, so
/// the recording thread never has to pull the pool's lines (last read on
/// the writer's core) back into its cache before writing them. When the
/// queue is full the spans are dropped (and counted) without a copy.
#[cold]
#[inline(never)]
fn hand_over(inner: &Inner, buf: &ThreadBuf, end_raw: u64) {
    let batch = buf.with(|v, deadline| {
        *deadline = end_raw.saturating_add(inner.flush_interval_raw);
        if v.is_empty() {
            return None;
        }
        inner.note_queue_pressure();
        if inner.queue_full() {
            inner.count_dropped(v.len());
            v.clear();
            return None;
        }
        let mut batch = inner.fresh_batch();
        move_streaming(v, &mut batch);
        Some(batch)
    });
    if let Some(b) = batch {
        if let Some(rejected) = inner.submit_or_return(b) {
            inner.recycle(rejected);
        }
    }
}

/// Moves every span of `from` to `to`, an empty batch, writing `to`'s
/// spans with non-temporal stores (then a store fence, so that the spans
/// are visible to whichever thread receives `to` through a channel). The
/// tails' bytes are copied as they are: `to` is empty, so the spans'
/// offsets into them stay right.
fn move_streaming(from: &mut Batch, to: &mut Batch) {
    if !to.is_empty() || !to.tails.is_empty() {
        to.append(from);
        return;
    }
    to.tails.extend_from_slice(&from.tails);
    from.tails.clear();
    let (from, to) = (&mut from.spans, &mut to.spans);
    let n = from.len();
    to.reserve(n);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `to` has room for `n` more spans; each span is copied word by
    // word (RawSpan is 8 words of plain data) and then owned by `to`
    // alone: `from` is emptied without dropping anything.
    unsafe {
        use std::arch::x86_64::{_mm_sfence, _mm_stream_si64};
        const WORDS: usize = std::mem::size_of::<RawSpan>() / 8;
        const _: () = assert!(std::mem::size_of::<RawSpan>().is_multiple_of(8));
        const _: () = assert!(std::mem::align_of::<RawSpan>() >= 8);
        let src = from.as_ptr() as *const i64;
        let dst = to.as_mut_ptr().add(to.len()) as *mut i64;
        for w in 0..n * WORDS {
            _mm_stream_si64(dst.add(w), *src.add(w));
        }
        _mm_sfence();
        to.set_len(to.len() + n);
        from.set_len(0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    to.append(from);
}

impl Drop for Local {
    fn drop(&mut self) {
        self.detach();
    }
}

/// A span's identity, to be passed to another thread or task so that spans
/// started there become its children.
#[derive(Clone, Debug)]
pub struct SpanContext {
    pub(crate) id: u64,
    pub(crate) trace: u64,
    pub(crate) path: u32,
    /// Where children finishing elsewhere add their duration. `None` for a
    /// skipped trace.
    pub(crate) shared: Option<Arc<AtomicU64>>,
}

impl SpanContext {
    /// The context of a skipped trace: `kind` is 0 (sampling) or
    /// [`SHED`].
    pub(crate) fn skipped(kind: u64) -> SpanContext {
        SpanContext {
            id: 0,
            trace: kind,
            path: 0,
            shared: None,
        }
    }

    /// The span id (0 for a trace skipped by sampling).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The trace (root span) id.
    pub fn trace_id(&self) -> u64 {
        self.trace
    }

    pub(crate) fn is_skipped(&self) -> bool {
        self.shared.is_none()
    }
}
