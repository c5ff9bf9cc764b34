//! The state shared by a profiler's handle, every thread recording into it
//! and its writer thread: the queue to the writer, the registered thread
//! buffers, the counters.

use super::buffer::{Batch, ThreadBuf, TAILS_HANDOVER};
use super::sampler;
use crate::clock::{self, Anchor};
use crate::error::{Error, Result};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What goes to the writer thread.
pub(crate) enum Msg {
    /// Spans to persist.
    Batch(Batch),
    /// Commit what you have, then answer.
    Flush(Sender<()>),
    /// Commit what you have, answer, and stop.
    Stop(Sender<()>),
}

/// Emptied batches kept for reuse.
pub(crate) const RECYCLED_BATCHES: usize = 64;

#[derive(Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub dropped_queue: AtomicU64,
    pub dropped_write: AtomicU64,
    /// Spans committed to the file.
    pub persisted: AtomicU64,
}

/// State shared by the profiler handle, every thread recording into it and
/// the writer thread.
pub(crate) struct Inner {
    pub path: PathBuf,
    pub run_key: String,
    pub run_db_id: i64,
    pub proc_db_id: i64,
    /// A number no other profiler of this process has: spans that keep no
    /// reference to their profiler (FerretLayer's) name it by this, see
    /// [`context::installed`](super::context::installed).
    #[cfg(feature = "tracing")]
    pub serial: u64,
    /// High bits of every span id of this process: `process row id << 40`.
    pub id_base: u64,
    pub next_id: AtomicU64,
    pub batch_size: usize,
    pub flush_interval_ns: u64,
    /// The flush interval in raw clock ticks.
    pub flush_interval_raw: u64,
    pub anchor: Anchor,
    pub counters: Counters,
    pub sampler: Option<sampler::Sampler>,
    pub reported: AtomicBool,
    /// Set while the writer's queue is filling up: new traces are skipped
    /// whole (and counted as shed) until it drains. Read by root spans only.
    pub shedding: AtomicBool,
    /// Batches the queue holds.
    pub queue_batches: usize,
    /// Whether queue pressure sheds new traces (else only full-queue drops).
    pub(crate) shed_traces: bool,
    /// Raw clock ticks after which the writer stops waiting for the file
    /// (set by `close`; 0 = no deadline).
    pub give_up_raw: AtomicU64,
    /// How long closing waits for the file.
    pub close_timeout: Duration,
    pub(crate) tx: Sender<Msg>,
    /// Wakes the writer before its next tick: one token at most is pending.
    /// Sent after a flush or stop request and when the queue holds
    /// `wake_batches` batches; otherwise batches wait in the queue for the
    /// tick, and handing one over never costs a wake-up of the writer.
    pub(crate) wake: (Sender<()>, Receiver<()>),
    /// Queued batches at which a hand-over wakes the writer.
    pub(crate) wake_batches: usize,
    /// Emptied batches the writer hands back, so that recording threads do
    /// not allocate (and fault in) a fresh batch each time.
    pub recycled: (Sender<Batch>, Receiver<Batch>),
    pub(crate) bufs: Mutex<Vec<Arc<ThreadBuf>>>,
    /// Spans skipped by threads whose buffers were retired.
    pub(crate) retired_skips: AtomicU64,
    /// Spans shed by threads whose buffers were retired.
    pub(crate) retired_shed: AtomicU64,
    /// (OS thread id, thread name) per thread index.
    pub threads: Mutex<Vec<(u64, Option<String>)>>,
    pub(crate) next_thread: AtomicU32,
    /// Open spans, heartbeat and stall watchdog (`None` when all are off).
    pub(crate) live: Option<Arc<super::live::Live>>,
    /// This machine's name.
    pub host: String,
    /// When this process opened the profiler (wall clock ns).
    pub started_ns: i64,
}

impl Inner {
    /// Hands a batch to the writer without blocking; counts it as dropped if
    /// the queue is full.
    /// True when the writer's queue has no room for another batch.
    pub(crate) fn queue_full(&self) -> bool {
        self.tx.is_full()
    }

    /// Starts shedding new traces when the queue is half full (called
    /// when a thread hands over a batch). The writer stops it once the
    /// queue is down to a quarter.
    #[inline]
    pub(crate) fn note_queue_pressure(&self) {
        if self.shed_traces
            && !self.shedding.load(Ordering::Relaxed)
            && self.tx.len() * 2 >= self.queue_batches
        {
            self.shedding.store(true, Ordering::Relaxed);
        }
    }

    /// Ends shedding when the queue has drained to a quarter (writer side).
    pub(crate) fn relieve_queue_pressure(&self) {
        if self.shedding.load(Ordering::Relaxed) && self.tx.len() * 4 <= self.queue_batches {
            self.shedding.store(false, Ordering::Relaxed);
        }
    }

    /// Takes the spans buffered by every recording thread (writer side: a
    /// thread that went idle, or records slowly, must not hold its spans
    /// back past the flush interval).
    pub(crate) fn drain_threads(&self) -> Vec<Batch> {
        let bufs: Vec<Arc<ThreadBuf>> = self.bufs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = ThreadBuf::drain_all(&bufs);
        out.retain(|v| !v.is_empty());
        out
    }

    /// True once `close` has given up on the file.
    pub(crate) fn given_up(&self) -> bool {
        let d = self.give_up_raw.load(Ordering::Relaxed);
        d != 0 && clock::now_raw() >= d
    }

    /// Counts spans dropped because the queue was full.
    pub(crate) fn count_dropped(&self, n: usize) {
        self.counters
            .dropped_queue
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn submit(&self, spans: Batch) {
        self.submit_or_return(spans);
    }

    /// Like [`submit`](Self::submit), but a dropped batch comes back,
    /// emptied, for reuse: under overload, that spares an allocation (and
    /// its page faults) and a free per batch.
    pub(crate) fn submit_or_return(&self, spans: Batch) -> Option<Batch> {
        let n = spans.len() as u64;
        match self.tx.try_send(Msg::Batch(spans)) {
            Ok(()) => {
                self.counters.accepted.fetch_add(n, Ordering::Relaxed);
                if self.tx.len() >= self.wake_batches {
                    self.wake_writer();
                }
                None
            }
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                self.counters.dropped_queue.fetch_add(n, Ordering::Relaxed);
                match m {
                    Msg::Batch(mut v) => {
                        v.clear();
                        Some(v)
                    }
                    _ => None,
                }
            }
        }
    }

    /// An empty batch with room for `batch_size` spans, recycled if possible.
    pub(crate) fn fresh_batch(&self) -> Batch {
        self.recycled
            .1
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(self.batch_size))
    }

    /// Returns a persisted batch for reuse (dropped if the pool is full),
    /// emptied (spans and tails are plain bytes: nothing to free per
    /// span). A tail buffer that some huge tags grew keeps only
    /// [`TAILS_HANDOVER`] bytes of room.
    pub(crate) fn recycle(&self, mut v: Batch) {
        if v.spans.capacity() == self.batch_size {
            v.clear();
            if v.tails.capacity() > 2 * TAILS_HANDOVER {
                v.tails.shrink_to(TAILS_HANDOVER);
            }
            let _ = self.recycled.0.try_send(v);
        }
    }

    /// Wakes the writer now rather than at its next tick (a no-op, without
    /// a system call, when a wake-up is already pending).
    #[inline]
    pub(crate) fn wake_writer(&self) {
        let _ = self.wake.0.try_send(());
    }

    /// Hands a batch to the writer, waiting for room until `deadline`
    /// (used by `flush`).
    pub(crate) fn submit_waiting(&self, spans: Batch, deadline: Instant) {
        let n = spans.len() as u64;
        if self.tx.is_full() {
            self.wake_writer();
        }
        match self.tx.send_deadline(Msg::Batch(spans), deadline) {
            Ok(()) => self.counters.accepted.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.counters.dropped_queue.fetch_add(n, Ordering::Relaxed),
        };
    }

    pub(crate) fn register_buf(&self, buf: Arc<ThreadBuf>) {
        self.bufs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }

    pub(crate) fn unregister_buf(&self, buf: &Arc<ThreadBuf>) {
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = bufs.iter().position(|b| Arc::ptr_eq(b, buf)) {
            let b = bufs.swap_remove(pos);
            self.retired_skips.fetch_add(b.skipped(), Ordering::Relaxed);
            self.retired_shed.fetch_add(b.shed(), Ordering::Relaxed);
        }
    }

    pub(crate) fn register_thread(&self, tid: u64, name: Option<String>) -> u32 {
        let mut t = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let idx = self.next_thread.fetch_add(1, Ordering::Relaxed);
        t.push((tid, name));
        idx
    }

    pub(crate) fn sampled_out(&self) -> u64 {
        let bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        self.retired_skips.load(Ordering::Relaxed) + bufs.iter().map(|b| b.skipped()).sum::<u64>()
    }

    pub(crate) fn shed(&self) -> u64 {
        let bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        self.retired_shed.load(Ordering::Relaxed) + bufs.iter().map(|b| b.shed()).sum::<u64>()
    }

    /// Hands every thread's buffered spans to the writer and waits until the
    /// writer has committed them, or until `deadline`.
    pub(crate) fn flush_until(&self, deadline: Instant) -> Result<()> {
        for spans in self.drain_threads() {
            self.submit_waiting(spans, deadline);
        }
        let (ack_tx, ack_rx) = bounded(1);
        self.wake_writer();
        self.tx
            .send_deadline(Msg::Flush(ack_tx), deadline)
            .map_err(|_| Error::WriterFailed("it did not take the flush in time".into()))?;
        self.wake_writer();
        ack_rx
            .recv_deadline(deadline)
            .map_err(|_| Error::WriterFailed("it did not finish in time".into()))
    }

    /// Hands every thread's spans to the writer and stops it (it commits
    /// them and marks the process as cleanly ended), waiting at most the
    /// close timeout (plus a short grace). True if the writer stopped.
    pub(crate) fn stop(&self) -> bool {
        let deadline = Instant::now() + self.close_timeout;
        // From the deadline on, the writer's busy handler stops waiting
        // for locks, and the writer counts what it still holds as lost.
        let left = self.close_timeout.as_nanos().min(u64::MAX as u128) as u64;
        self.give_up_raw.store(
            clock::now_raw()
                .saturating_add(clock::ns_to_raw(left))
                .max(1),
            Ordering::Relaxed,
        );
        for spans in self.drain_threads() {
            self.submit_waiting(spans, deadline);
        }
        // Grace after the deadline for the writer to notice it and count.
        let grace = deadline + Duration::from_millis(500);
        let (ack_tx, ack_rx) = bounded(1);
        self.wake_writer();
        let sent = self.tx.send_deadline(Msg::Stop(ack_tx), grace).is_ok();
        self.wake_writer();
        sent && ack_rx.recv_deadline(grace).is_ok()
    }

    pub(crate) fn stats(&self) -> RecorderStats {
        RecorderStats {
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            persisted: self.counters.persisted.load(Ordering::Relaxed),
            dropped_queue: self.counters.dropped_queue.load(Ordering::Relaxed),
            dropped_write: self.counters.dropped_write.load(Ordering::Relaxed),
            sampled_out: self.sampled_out(),
            shed: self.shed(),
        }
    }
}

/// What a profiler did with the spans it was given.
///
/// Every span that ended is in exactly one of `accepted`, `dropped_queue`,
/// `sampled_out` and `shed`; of the accepted ones, `persisted` are in the
/// file and `dropped_write` could not be written. After `close()`,
/// [`unpersisted`](Self::unpersisted) is what did not reach the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Spans handed to the writer.
    pub accepted: u64,
    /// Spans committed to the file.
    pub persisted: u64,
    /// Spans dropped before reaching the writer: its queue was full, or
    /// the span was still open when its thread ended or another profiler
    /// was installed.
    pub dropped_queue: u64,
    /// Spans lost because the file could not be written (or `close()` gave
    /// up waiting for it).
    pub dropped_write: u64,
    /// Spans skipped by sampling or rate limits.
    pub sampled_out: u64,
    /// Spans of whole traces skipped because the writer's queue was
    /// filling up (see [`ProfilerBuilder::queue_capacity`](crate::ProfilerBuilder::queue_capacity)).
    pub shed: u64,
}

impl RecorderStats {
    /// Accepted spans that are not in the file: write failures, and spans
    /// still on their way when `close()` gave up.
    pub fn unpersisted(&self) -> u64 {
        self.accepted.saturating_sub(self.persisted)
    }

    /// Every span the profiler saw end (recorded, dropped or skipped).
    pub fn ended(&self) -> u64 {
        self.accepted + self.dropped_queue + self.sampled_out + self.shed
    }
}
