//! A [`tracing`] layer that records tracing spans into the installed profiler.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let profiler = ferret::Profiler::open("ferret.db").unwrap();
//! tracing_subscriber::registry()
//!     .with(ferret::FerretLayer::new(&profiler))
//!     .init();
//! tracing::info_span!("request", user = 7).in_scope(|| {
//!     tracing::info_span!("query").in_scope(|| { /* work */ });
//! });
//! profiler.close().unwrap();
//! ```

mod open;
mod table;
mod tags;

use crate::clock;
use crate::recorder::span::{SpanContext, Under};
use crate::Profiler;
use open::{Open, Rec};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use table::Table;
use tags::Val;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A [`tracing_subscriber::Layer`] that records every `tracing` span as a
/// Ferret span, into the globally installed [`Profiler`].
///
/// What is recorded for each tracing span:
///
/// - **name**: the span's name (`info_span!("name")`, or the function name
///   under `#[instrument]`);
/// - **tags**: the tag `target` (the span's target, usually its module path;
///   see [`with_target_tag`](Self::with_target_tag)), and one tag per field,
///   including fields recorded later with `Span::record`. Integers, floats,
///   booleans and strings keep their type; other values are stored as their
///   `Debug` text;
/// - **parent**: an explicit `parent:` is followed; `parent: None` makes a
///   root; otherwise the parent is the span current on this thread, which is
///   the current tracing span (this layer makes a tracing span current for
///   Ferret while it is entered) or a Ferret span opened inside it. So
///   `ferret::span` guards, `#[ferret::measure]` functions and tracing spans
///   nest under one another in both directions;
/// - **duration**: from the span's creation to its close (when its last
///   handle drops). A span entered many times, such as the span of an
///   `.instrument(fut)` future polled many times, is recorded once. A span
///   that nothing but its children keeps open (a handler that spawned
///   `tokio::spawn(work.instrument(span))` and returned) ends at its last
///   exit, not when the last child closes; see "Detached children" below;
/// - **busy time**: the time the span was entered (on any thread), as the tag
///   `busy_ns`, and its *self* busy time (busy time minus the time spent in
///   other spans entered or guarded inside it on the same thread; a span
///   entered again inside itself counts that time as its own) as
///   `self_busy_ns` (see [`with_busy_time`](Self::with_busy_time));
/// - **status**: error when a field named `error` is recorded (its value
///   becomes the tag `error`) or when an event of level `ERROR` happens inside
///   the span (the event's `error` field, or else its message, becomes the
///   tag `error` if there is none yet; `#[instrument(err)]` works this way).
///
/// # Detached children
///
/// In `tracing`, an open child keeps its parent open: a background task
/// spawned inside a request handler would stretch the handler's span until
/// the task ends. The layer records instead what the code did:
///
/// - a span whose close comes only because its last child closed ends at
///   its last exit (the end of the last poll, for an instrumented future);
/// - a child that closes while its parent is not entered anywhere waits in
///   the parent until the parent is entered again (then it ended inside the
///   parent's life) or closes; children that ended after their parent's end
///   are recorded with their own start and duration, still under their
///   parent (same parent id and trace), with the tag `detached = true`, and
///   their time is not counted in the parent's children time (so the
///   parent's self time is not negative either);
/// - at most 16 children wait in a parent: when a 17th closes while the
///   parent still idles, the parent is taken to be held open by a handle
///   (a worker loop's span, a root given as explicit parent), and the
///   waiting children are recorded as ended inside it. Memory stays flat
///   however many children such a span has, and they reach the file
///   while it is still open. Only a span that nothing but its children
///   keeps open *and* that has more than 16 children still running when
///   it returns has some of them recorded without `detached`.
///
/// # Tracing inside field values
///
/// The layer keeps open spans in a table of its own, and holds a span's
/// entry while it formats a value recorded later with `Span::record` or
/// an `ERROR` event's fields, which runs the value's `Debug` impl. Spans
/// and events that such an impl itself creates are not recorded (the
/// alternative would be a deadlock). Field values given when a span is
/// created are formatted before the span is in the table, so tracing
/// inside them is recorded as usual.
///
/// The layer records into whichever profiler is installed when a span opens;
/// [`FerretLayer::new`] installs the one it is given. Events other than
/// `ERROR` ones are not recorded.
#[derive(Clone)]
pub struct FerretLayer {
    target_tag: bool,
    busy_time: bool,
    /// The open spans' state; a fresh one for each subscriber the layer is
    /// added to (span ids are only unique within one).
    open: Arc<Table<Box<SpanData>>>,
}

impl fmt::Debug for FerretLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FerretLayer")
            .field("target_tag", &self.target_tag)
            .field("busy_time", &self.busy_time)
            .finish_non_exhaustive()
    }
}

impl Default for FerretLayer {
    /// A layer recording into the installed profiler, without installing one.
    fn default() -> Self {
        FerretLayer {
            target_tag: true,
            busy_time: true,
            open: Arc::new(Table::new()),
        }
    }
}

impl FerretLayer {
    /// Installs `profiler` (see [`Profiler::install`]) and returns a layer
    /// recording into it. Keep the profiler and close it when done: spans
    /// still open then are not recorded.
    pub fn new(profiler: &Profiler) -> Self {
        profiler.install();
        FerretLayer::default()
    }

    /// Whether to tag each span with its target as `target` (default: yes).
    pub fn with_target_tag(mut self, on: bool) -> Self {
        self.target_tag = on;
        self
    }

    /// Whether to tag each span with the time it was entered as `busy_ns`,
    /// and its self busy time as `self_busy_ns` (default: yes).
    pub fn with_busy_time(mut self, on: bool) -> Self {
        self.busy_time = on;
        self
    }
}

/// Per-span state, kept in the layer's [`Table`] (the span's ids first).
#[repr(C)]
struct SpanData {
    rec: Rec,
    /// The tracing parent's span id (0 = none).
    parent: u64,
    /// Enters not yet exited (a span may be entered on several threads).
    entered: u32,
    /// When `entered` went from 0 to 1.
    since: u64,
    busy_ns: u64,
    /// When `entered` last went back to 0 (raw ticks; 0 = never).
    last_exit: u64,
    /// Children that closed while this span was not entered anywhere,
    /// recorded when it is entered again or closes: only then is it known
    /// whether they outlived it (see "Detached children" on [`FerretLayer`]).
    waiting: Vec<Waiting>,
}

/// A child span closed while its parent was idle.
struct Waiting {
    /// The child's whole state (kept in its box: no copy).
    span: Box<SpanData>,
    end: u64,
}

impl SpanData {
    fn open(&mut self) -> Option<&mut Open> {
        match &mut self.rec {
            Rec::Open(o) => Some(o),
            _ => None,
        }
    }

    /// Records the waiting children as children that ended within this
    /// span's life (`cutoff` = None), or, with a cutoff, marks those that
    /// ended after it as detached.
    fn release_waiting(&mut self, cutoff: Option<u64>) {
        for mut w in std::mem::take(&mut self.waiting) {
            let Some(child) = w.span.open() else { continue };
            let detached = cutoff.is_some_and(|c| w.end > c);
            if detached {
                child.detached = true;
            } else if let Some(me) = self.open() {
                me.credit(child.duration_at(w.end));
            }
            child.finish(w.end, false);
            w.span.recycle();
        }
    }

    /// A box for a new span's state under tracing parent `parent`: a
    /// spare one from this thread if there is one (its state is large: a
    /// fresh box costs an allocation and a copy).
    fn boxed(parent: u64) -> Box<SpanData> {
        let spare = SPARE
            .try_with(|s| s.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        match spare {
            Some(mut b) => {
                b.parent = parent;
                b
            }
            None => Box::new(SpanData {
                rec: Rec::Off,
                parent,
                entered: 0,
                since: 0,
                busy_ns: 0,
                last_exit: 0,
                waiting: Vec::new(),
            }),
        }
    }

    /// Clears a finished span's state and keeps its box for this thread's
    /// next span (up to [`SPARE_MAX`] boxes).
    fn recycle(mut self: Box<Self>) {
        self.rec = Rec::Off;
        self.entered = 0;
        self.since = 0;
        self.busy_ns = 0;
        self.last_exit = 0;
        self.waiting.clear();
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                if s.len() < SPARE_MAX {
                    s.push(self);
                }
            }
        });
    }
}

/// Children at most that wait in an idle parent (see "Detached children"
/// on [`FerretLayer`]): about 500 bytes each. A span that idles while more
/// of its children close than this is taken to be held open by a handle,
/// so its waiting children ended inside it and are recorded at once.
/// Without a bound, a long-lived span that is never entered (a worker
/// loop's, a root given as explicit parent) would keep every child it ever
/// had in memory, unrecorded, until it closed.
const WAITING_MAX: usize = 16;

/// Spare state boxes a thread keeps at most (about 500 bytes each).
const SPARE_MAX: usize = 32;

thread_local! {
    /// This thread's spare state boxes (see [`SpanData::recycle`]). Boxes,
    /// not the states themselves: they move in and out of the table
    /// without a copy.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<SpanData>>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// The tracing parent of the span whose close this layer saw last on
    /// this thread, and when, until another callback comes: the registry
    /// closes a parent that only its children kept alive right after the
    /// last of them (within the same `try_close` call), so a close of
    /// exactly that parent next, and at once, is such a close.
    static CLOSED_CHILD_OF: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// How soon after its child's close ends a parent's close counts as
/// caused by it. The registry's nested close takes a microsecond or two;
/// the margin is for a thread descheduled in between (a virtual machine's
/// stolen time). A parent whose own handle is dropped within this window
/// after its last child closed, with no other callback of this layer on
/// the thread in between, is taken as kept open by that child.
const NESTED_CLOSE_NS: u64 = 1_000_000;

fn forget_closed_child() {
    let _ = CLOSED_CHILD_OF.try_with(|c| c.set((0, 0)));
}

/// Turns span fields into tags.
struct Fields<'a> {
    open: &'a mut Open,
}

impl Fields<'_> {
    fn is_error(field: &Field) -> bool {
        field.name() == "error"
    }

    fn put(&mut self, field: &Field, value: Val) {
        if Self::is_error(field) {
            if value == Val::Bool(false) {
                self.open.tags.set(field.name(), value);
                return;
            }
            self.open.tags.set_error_status();
        }
        self.open.tags.set(field.name(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Val::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Val::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Val::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::is_error(field) {
            self.open.tags.set_error_status();
        }
        self.open.tags.set_text(field.name(), |s| {
            let _ = s.write_str(value);
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if Self::is_error(field) {
            self.open.tags.set_error_status();
        }
        self.open.tags.set_text(field.name(), |s| {
            let _ = write!(s, "{value}");
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Self::is_error(field) {
            self.open.tags.set_error_status();
        }
        self.open.tags.set_debug(field.name(), value);
    }
}

/// Copies an `ERROR` event's `error` field, or else its message, into the
/// span's tag `error`.
struct ErrorText<'a> {
    open: &'a mut Open,
    /// 2 = took `error`, 1 = took `message`.
    took: u8,
}

impl ErrorText<'_> {
    fn take(&mut self, field: &Field, write: impl FnOnce(&mut dyn std::fmt::Write)) {
        let rank = match field.name() {
            "error" => 2,
            "message" => 1,
            _ => return,
        };
        if rank > self.took {
            self.took = rank;
            self.open.tags.set_text("error", write);
        }
    }
}

impl Visit for ErrorText<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.take(field, |s| {
            let _ = s.write_str(value);
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.take(field, |s| {
            let _ = write!(s, "{value}");
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.take(field, |s| {
            let _ = write!(s, "{value:?}");
        });
    }
}

impl FerretLayer {
    /// The context of span `id` (an explicit parent) for its children.
    fn context_of(&self, id: &Id) -> Option<SpanContext> {
        self.open.with(id.into_u64(), |d| d.rec.context()).flatten()
    }
}

impl<S> Layer<S> for FerretLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        // Span ids are unique within one subscriber only.
        self.open = Arc::new(Table::new());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        forget_closed_child();
        let meta = attrs.metadata();
        let name = meta.name();
        // The tracing parent as the registry takes it, without looking
        // spans up in it (each lookup counts a reference up and down):
        // the explicit parent, or the current span for a contextual one.
        let mut data;
        if attrs.is_root() {
            // The state is built in its box: it is large, and every move
            // copies it.
            data = SpanData::boxed(0);
            data.rec.begin(name, Under::Root)
        } else if let Some(p) = attrs.parent() {
            let mut parent = p.clone();
            let mut context = self.context_of(&parent);
            if context.is_none() {
                // Not recorded here (a per-layer filter disabled it, or it
                // began before the profiler): the nearest ancestor that is.
                if let Some(a) = ctx.span(id).and_then(|s| s.parent()) {
                    parent = a.id();
                    context = self.context_of(&parent);
                }
            }
            data = SpanData::boxed(parent.into_u64());
            match context {
                Some(p) => data.rec.begin(name, Under::Span(&p)),
                None => data.rec.begin(name, Under::Root),
            }
        } else {
            data = SpanData::boxed(ctx.current_span().id().map_or(0, Id::into_u64));
            // The innermost span current on this thread: the current tracing
            // span (pushed by `on_enter`) or a Ferret span opened inside it.
            data.rec.begin(name, Under::Current)
        }
        match &mut data.rec {
            Rec::Off => return data.recycle(),
            Rec::Skipped(_) => {}
            Rec::Open(open) => {
                if self.target_tag {
                    open.tags.set_target(meta.target());
                }
                // Before the span is in the table: no shard is held while
                // the fields' `Debug` impls run.
                attrs.record(&mut Fields { open });
            }
        }
        self.open.insert(id.into_u64(), data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        forget_closed_child();
        self.open.with(id.into_u64(), |data| {
            if let Some(open) = data.open() {
                values.record(&mut Fields { open });
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        self.open.with(span.id().into_u64(), |data| {
            let Some(open) = data.open() else { return };
            open.tags.set_error_status();
            if !open.tags.has("error") {
                let mut t = ErrorText { open, took: 0 };
                event.record(&mut t);
                if t.took == 0 {
                    t.open.tags.set("error", Val::Static("error event"));
                }
            }
        });
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        forget_closed_child();
        self.open.with(id.into_u64(), |data| {
            let now = clock::now_raw();
            if !data.rec.push(now) {
                return;
            }
            if data.entered == 0 {
                // Running again: children that closed meanwhile ended inside it.
                if !data.waiting.is_empty() {
                    data.release_waiting(None);
                }
                data.since = now;
            }
            data.entered += 1;
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        forget_closed_child();
        self.open.with(id.into_u64(), |data| {
            let now = clock::now_raw();
            data.rec.pop(now);
            if data.entered > 0 {
                data.entered -= 1;
                if data.entered == 0 {
                    data.busy_ns += clock::delta_ns(data.since, now);
                    data.last_exit = now;
                }
            }
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let (closed_child_of, child_closed_at) = CLOSED_CHILD_OF
            .try_with(|c| c.replace((0, 0)))
            .unwrap_or((0, 0));
        let Some(mut data) = self.open.remove(id.into_u64()) else {
            return;
        };
        let now = clock::now_raw();
        // Set before returning, whatever happens: the parent's close, if
        // this close ends it, comes next. Timed when this close is done,
        // not when it began: recording the span (the first on a thread
        // hands its batch over) is not part of the wait for the parent.
        struct Mark(u64);
        impl Drop for Mark {
            fn drop(&mut self) {
                let v = (self.0, clock::now_raw());
                let _ = CLOSED_CHILD_OF.try_with(|c| c.set(v));
            }
        }
        let _mark = Mark(data.parent);
        // Kept alive only by children after its last exit: it ends there.
        let kept_by_children = closed_child_of == id.into_u64()
            && clock::delta_ns(child_closed_at, now) < NESTED_CLOSE_NS
            && data.entered == 0
            && data.last_exit != 0;
        let end = if kept_by_children {
            data.last_exit
        } else {
            now
        };
        if !data.waiting.is_empty() {
            data.release_waiting(kept_by_children.then_some(end));
        }
        let busy = data.busy_ns;
        let parent = data.parent;
        let busy_time = self.busy_time;
        let Some(open) = data.open() else {
            return data.recycle();
        };
        if busy_time {
            open.busy_ns = Some(busy);
            open.self_busy_ns = Some(open.self_busy(busy));
        }
        let ferret_parent = open.parent_id();
        // A child closing while its parent is idle waits in the parent.
        let mut data = Some(data);
        if parent != 0 {
            self.open.with(parent, |pd| {
                let same_parent = matches!(&pd.rec, Rec::Open(po) if po.id == ferret_parent);
                if same_parent && pd.entered == 0 {
                    if pd.waiting.len() >= WAITING_MAX {
                        // Many children closing while it idles: a span
                        // whose handle is held (a worker loop's, a
                        // root's), which they ended inside.
                        pd.release_waiting(None);
                    }
                    pd.waiting.push(Waiting {
                        span: data.take().expect("not taken yet"),
                        end,
                    });
                }
            });
        }
        if let Some(mut data) = data {
            if let Some(open) = data.open() {
                open.finish(end, true);
            }
            data.recycle();
        }
    }
}
