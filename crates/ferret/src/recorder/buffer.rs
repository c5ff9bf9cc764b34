//! Finished spans on their way to the writer: the raw record, the per-thread
//! buffer (a tiny spin lock so that `flush()` on one thread can drain the
//! buffers of all others), and the batch handed over the bounded queue.

use crate::types::{Status, TagValue};
use std::borrow::Cow;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rarely present parts of a span: a status other than ok, and tags.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extra {
    pub status: Status,
    /// Keys are usually literals: `Cow` avoids an allocation per tag.
    pub tags: Vec<(Cow<'static, str>, TagValue)>,
}

/// One finished span as the hot path records it: ids, raw clock ticks, a
/// local path id. The writer turns it into the stored form.
#[derive(Debug)]
pub(crate) struct RawSpan {
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    /// Raw monotonic ticks at start.
    pub start: u64,
    pub dur_ns: u64,
    /// Total duration of direct children (for self time).
    pub child_ns: u64,
    /// Local (process) call-path id.
    pub path: u32,
    /// Local thread index.
    pub thread: u32,
    pub extra: Option<Box<Extra>>,
}

/// A thread's buffer of finished spans.
pub(crate) struct ThreadBuf {
    locked: AtomicBool,
    spans: UnsafeCell<Vec<RawSpan>>,
    /// Raw ticks after which the buffer is handed over even if not full.
    deadline: UnsafeCell<u64>,
    /// Spans this thread skipped by sampling (written by the owning thread only).
    skipped: AtomicU64,
}

// SAFETY: every access to the cells goes through `with`, which holds the lock.
unsafe impl Sync for ThreadBuf {}
unsafe impl Send for ThreadBuf {}

impl ThreadBuf {
    pub(crate) fn new(deadline: u64) -> ThreadBuf {
        ThreadBuf {
            locked: AtomicBool::new(false),
            spans: UnsafeCell::new(Vec::new()),
            deadline: UnsafeCell::new(deadline),
            skipped: AtomicU64::new(0),
        }
    }

    /// Runs `f` with the buffer locked.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Vec<RawSpan>, &mut u64) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _u = Unlock(&self.locked);
        // SAFETY: the lock is held until `_u` drops.
        unsafe { f(&mut *self.spans.get(), &mut *self.deadline.get()) }
    }

    /// Counts one span skipped by sampling. Only the owning thread calls
    /// this, so a plain load and store suffice (no locked instruction).
    #[inline]
    pub(crate) fn count_skip(&self) {
        let n = self.skipped.load(Ordering::Relaxed);
        self.skipped.store(n + 1, Ordering::Relaxed);
    }

    /// Spans this thread skipped so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Takes everything buffered.
    pub(crate) fn take(&self) -> Vec<RawSpan> {
        self.with(|v, _| std::mem::take(v))
    }
}
