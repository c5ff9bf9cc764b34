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

use crate::clock;
use crate::intern::Name;
use crate::recorder::span::{pop_current, start_under, SpanContext, SpanHandle, Under};
use crate::types::{Status, TagValue};
use crate::Profiler;
use std::fmt;
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
///   `.instrument(fut)` future polled many times, is recorded once;
/// - **busy time**: the time the span was entered (on any thread), as the tag
///   `busy_ns` (see [`with_busy_time`](Self::with_busy_time));
/// - **status**: error when a field named `error` is recorded (its value
///   becomes the tag `error`) or when an event of level `ERROR` happens inside
///   the span (the event's `error` field, or else its message, becomes the
///   tag `error` if there is none yet; `#[instrument(err)]` works this way).
///
/// The layer records into whichever profiler is installed when a span opens;
/// [`FerretLayer::new`] installs the one it is given. Events other than
/// `ERROR` ones are not recorded.
#[derive(Clone, Debug)]
pub struct FerretLayer {
    target_tag: bool,
    busy_time: bool,
}

impl Default for FerretLayer {
    /// A layer recording into the installed profiler, without installing one.
    fn default() -> Self {
        FerretLayer {
            target_tag: true,
            busy_time: true,
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

    /// Whether to tag each span with the time it was entered as `busy_ns`
    /// (default: yes).
    pub fn with_busy_time(mut self, on: bool) -> Self {
        self.busy_time = on;
        self
    }
}

/// Per-span state, kept in the span's extensions.
struct SpanData {
    handle: SpanHandle,
    /// Enters not yet exited (a span may be entered on several threads).
    entered: u32,
    /// When `entered` went from 0 to 1.
    since: u64,
    busy_ns: u64,
    /// The tag `error` is set.
    has_error: bool,
}

impl SpanData {
    /// The id this span's frame has on a thread's stack, if it pushes one.
    fn frame_id(&self) -> Option<u64> {
        self.handle.frame_id()
    }
}

/// Turns span fields into tags.
struct Fields<'a> {
    data: &'a mut SpanData,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: TagValue) {
        if field.name() == "error" && value != TagValue::Bool(false) {
            self.data.handle.set_error(value);
            self.data.has_error = true;
        } else {
            self.data.handle.tag(field.name(), value);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, TagValue::Str(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, TagValue::Str(format!("{value:?}")));
    }
}

/// Finds an event's `error` and `message` fields.
#[derive(Default)]
struct Message {
    error: Option<String>,
    message: Option<String>,
}

impl Message {
    fn put(&mut self, field: &Field, value: impl FnOnce() -> String) {
        match field.name() {
            "error" => self.error = Some(value()),
            "message" => self.message = Some(value()),
            _ => {}
        }
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, || value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, || value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, || format!("{value:?}"));
    }
}

impl<S> Layer<S> for FerretLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let meta = attrs.metadata();
        let name = Name::Static(meta.name());
        let handle = if attrs.is_root() {
            start_under(name, Under::Root)
        } else if attrs.is_contextual() {
            // The innermost span current on this thread: the current tracing
            // span (pushed by `on_enter`) or a Ferret span opened inside it.
            start_under(name, Under::Current)
        } else {
            let parent: Option<SpanContext> = span.parent().and_then(|p| {
                p.extensions()
                    .get::<SpanData>()
                    .and_then(|d| d.handle.context())
            });
            match &parent {
                Some(p) => start_under(name, Under::Span(p)),
                None => start_under(name, Under::Root),
            }
        };
        let mut data = SpanData {
            handle,
            entered: 0,
            since: 0,
            busy_ns: 0,
            has_error: false,
        };
        if data.handle.is_recording() {
            if self.target_tag {
                data.handle.tag("target", meta.target());
            }
            attrs.record(&mut Fields { data: &mut data });
        }
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            if data.handle.is_recording() {
                values.record(&mut Fields { data });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        if !data.handle.is_recording() {
            return;
        }
        if data.has_error {
            data.handle.set_status(Status::Error);
        } else {
            let mut m = Message::default();
            event.record(&mut m);
            let text = m
                .error
                .or(m.message)
                .unwrap_or_else(|| "error event".to_owned());
            data.handle.set_error(text);
            data.has_error = true;
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        if data.frame_id().is_none() {
            return;
        }
        data.handle.push_current();
        if self.busy_time {
            if data.entered == 0 {
                data.since = clock::now_raw();
            }
            data.entered += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let Some(frame) = data.frame_id() else { return };
        pop_current(frame);
        if self.busy_time && data.entered > 0 {
            data.entered -= 1;
            if data.entered == 0 {
                data.busy_ns += clock::delta_ns(data.since, clock::now_raw());
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        if self.busy_time && data.handle.is_recording() {
            let busy = data.busy_ns;
            data.handle.tag("busy_ns", busy);
        }
        data.handle.end();
    }
}
