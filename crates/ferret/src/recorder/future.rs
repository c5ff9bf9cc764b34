//! Spans around futures: the span is current on whichever thread polls the
//! future, and is recorded once, with its whole wall duration, when the
//! future completes (or is dropped unfinished, tagged `cancelled`).
//!
//! Busy time: each poll of a recorded span reads the clock before and
//! after; their sum is tagged `busy_ns`, and that sum minus the time spent
//! in spans polled or guarded inside those polls is tagged `self_busy_ns`
//! (what `ferret analyze --clock busy` reads).

use super::span::{pop_current_at, start_handle, SpanContext, SpanHandle};
use crate::clock;
use crate::intern::Name;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future running inside a span; see [`InSpanExt::in_span`].
pub struct InSpan<F> {
    fut: F,
    handle: Option<SpanHandle>,
    /// Time spent in polls.
    busy_ns: u64,
    /// Time spent in spans nested in those polls.
    nested_ns: u64,
}

/// Adds [`in_span`](InSpanExt::in_span) to every future.
pub trait InSpanExt: Future + Sized {
    /// Wraps the future in a span named `name`, whose parent is the span
    /// current where `in_span` is called. That parent is kept when the
    /// future moves to another thread (e.g. `tokio::spawn(fut.in_span("job"))`).
    fn in_span(self, name: impl Into<Name>) -> InSpan<Self> {
        let handle = if super::context::ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
            start_handle(name.into(), None)
        } else {
            SpanHandle::noop()
        };
        InSpan {
            fut: self,
            handle: Some(handle),
            busy_ns: 0,
            nested_ns: 0,
        }
    }

    /// Wraps the future in a span under an explicit parent.
    fn in_span_with_parent(self, name: impl Into<Name>, parent: &SpanContext) -> InSpan<Self> {
        InSpan {
            fut: self,
            handle: Some(super::span::start_with_parent(name, parent)),
            busy_ns: 0,
            nested_ns: 0,
        }
    }
}

impl<F: Future> InSpanExt for F {}

impl<F> InSpan<F> {
    /// The span's handle (to add tags or set the status from outside).
    pub fn handle_mut(&mut self) -> Option<&mut SpanHandle> {
        self.handle.as_mut()
    }

    /// Records an `Err` output as status error, with the error's `Display`
    /// text as the tag `error`.
    ///
    /// ```no_run
    /// use ferret::InSpanExt;
    /// # async fn load() -> Result<u32, std::io::Error> { Ok(1) }
    /// # async fn run() -> Result<u32, std::io::Error> {
    /// let n = load().in_span("load").record_err().await?;
    /// # Ok(n) }
    /// ```
    pub fn record_err(self) -> RecordErr<F> {
        RecordErr { inner: self }
    }
}

impl<F: Future> InSpan<F> {
    /// Polls the future with the span current; on completion lets `inspect`
    /// see the output and the handle, then ends the span.
    fn poll_inspect(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        inspect: impl FnOnce(&F::Output, &mut SpanHandle),
    ) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned; `handle` is never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let res = match &this.handle {
            Some(h) if h.is_recorded() => {
                let t0 = clock::now_raw();
                let pushed = h.push_current_at(t0);
                // Pops the frame even if the poll panics.
                struct Pop<'a>(Option<u64>, &'a mut u64, &'a mut u64, u64);
                impl Drop for Pop<'_> {
                    fn drop(&mut self) {
                        let t1 = clock::now_raw();
                        if let Some(id) = self.0 {
                            *self.2 += pop_current_at(id, t1);
                        }
                        *self.1 += clock::delta_ns(self.3, t1);
                    }
                }
                let _pop = Pop(pushed, &mut this.busy_ns, &mut this.nested_ns, t0);
                fut.poll(cx)
            }
            Some(h) => {
                let _e = h.enter();
                fut.poll(cx)
            }
            None => fut.poll(cx),
        };
        match &res {
            Poll::Ready(out) => {
                if let Some(mut h) = this.handle.take() {
                    inspect(out, &mut h);
                    tag_busy(&mut h, this.busy_ns, this.nested_ns);
                    h.end();
                }
            }
            // Waiting: no thread has the span entered until the next poll.
            Poll::Pending => {
                if let Some(h) = &mut this.handle {
                    h.go_idle();
                }
            }
        }
        res
    }
}

/// Tags a recorded future span with its busy and self busy time.
fn tag_busy(h: &mut SpanHandle, busy_ns: u64, nested_ns: u64) {
    if h.is_recorded() {
        h.tag("busy_ns", busy_ns)
            .tag("self_busy_ns", busy_ns.saturating_sub(nested_ns));
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_inspect(cx, |_, _| {})
    }
}

/// A future in a span that records an `Err` output as an error; see
/// [`InSpan::record_err`].
pub struct RecordErr<F> {
    inner: InSpan<F>,
}

impl<F, T, E> Future for RecordErr<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        inner.poll_inspect(cx, |out, h| {
            if let Err(e) = out {
                h.set_error(e);
            }
        })
    }
}

impl<F> Drop for InSpan<F> {
    fn drop(&mut self) {
        if let Some(mut h) = self.handle.take() {
            if !std::thread::panicking() {
                h.tag("cancelled", true);
            }
            tag_busy(&mut h, self.busy_ns, self.nested_ns);
            h.end();
        }
    }
}
