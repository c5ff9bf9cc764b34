//! The recorder: a profiler bound to a file, the global install, and the
//! background writer.

pub(crate) mod buffer;
pub(crate) mod context;
mod file;
pub(crate) mod future;
pub(crate) mod rows;
pub(crate) mod sampler;
#[cfg(unix)]
pub(crate) mod signals;
pub(crate) mod span;
pub(crate) mod writer;

use crate::clock::{self, Anchor};
use crate::error::{Error, Result};
use buffer::{RawSpan, ThreadBuf};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::{Msg, Writer};

/// Emptied batches kept for reuse.
const RECYCLED_BATCHES: usize = 64;

#[derive(Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub dropped_queue: AtomicU64,
    pub dropped_write: AtomicU64,
    /// Spans committed to the file.
    pub persisted: AtomicU64,
}

/// Empties a batch. Unlike `clear`, it does not call the drop of each
/// span's `extra` when none has one (the common case).
pub(crate) fn empty(v: &mut Vec<RawSpan>) {
    if !empty_if_untagged(v) {
        v.clear();
    }
}

/// Empties a batch whose spans own nothing (no `extra`) without a drop
/// call per span; returns false, leaving the batch as it is, otherwise.
fn empty_if_untagged(v: &mut Vec<RawSpan>) -> bool {
    if v.iter().all(|s| s.extra.is_none()) {
        // SAFETY: 0 is within capacity, and the spans own nothing (forgetting
        // them would be safe anyway).
        unsafe { v.set_len(0) };
        true
    } else {
        false
    }
}

/// State shared by the profiler handle, every thread recording into it and
/// the writer thread.
pub(crate) struct Inner {
    pub path: PathBuf,
    pub run_key: String,
    pub run_db_id: i64,
    pub proc_db_id: i64,
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
    shed_traces: bool,
    /// Raw clock ticks after which the writer stops waiting for the file
    /// (set by `close`; 0 = no deadline).
    pub give_up_raw: AtomicU64,
    /// How long closing waits for the file.
    pub close_timeout: Duration,
    tx: Sender<Msg>,
    /// Emptied batches the writer hands back, so that recording threads do
    /// not allocate (and fault in) a fresh batch each time.
    pub recycled: (Sender<Vec<RawSpan>>, Receiver<Vec<RawSpan>>),
    bufs: Mutex<Vec<Arc<ThreadBuf>>>,
    /// Spans skipped by threads whose buffers were retired.
    retired_skips: AtomicU64,
    /// Spans shed by threads whose buffers were retired.
    retired_shed: AtomicU64,
    /// (OS thread id, thread name) per thread index.
    pub threads: Mutex<Vec<(u64, Option<String>)>>,
    next_thread: AtomicU32,
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
    pub(crate) fn drain_threads(&self) -> Vec<Vec<RawSpan>> {
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

    pub(crate) fn submit(&self, spans: Vec<RawSpan>) {
        self.submit_or_return(spans);
    }

    /// Like [`submit`](Self::submit), but a dropped batch comes back,
    /// emptied, for reuse: under overload, that spares an allocation (and
    /// its page faults) and a free per batch.
    pub(crate) fn submit_or_return(&self, spans: Vec<RawSpan>) -> Option<Vec<RawSpan>> {
        let n = spans.len() as u64;
        match self.tx.try_send(Msg::Batch(spans)) {
            Ok(()) => {
                self.counters.accepted.fetch_add(n, Ordering::Relaxed);
                None
            }
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                self.counters.dropped_queue.fetch_add(n, Ordering::Relaxed);
                match m {
                    Msg::Batch(mut v) => {
                        empty(&mut v);
                        Some(v)
                    }
                    _ => None,
                }
            }
        }
    }

    /// An empty batch with room for `batch_size` spans, recycled if possible.
    /// Recycled batches are cleared here, on the recording thread: their
    /// tags were allocated by recording threads, and freeing them there is
    /// much cheaper for the allocator than freeing them all on the writer
    /// (measured: 2.5 M → 4.2 M tagged spans/s persisted by the demo).
    pub(crate) fn fresh_batch(&self) -> Vec<RawSpan> {
        match self.recycled.1.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(self.batch_size),
        }
    }

    /// Returns a persisted batch for reuse (dropped if the pool is full).
    /// A batch with tags is left uncleared, for `fresh_batch`; one without
    /// is emptied here, where it is still in cache: clearing it on the
    /// recording thread cost a cold pass calling the drop of every span's
    /// (empty) `extra`, about 2 ns per span.
    pub(crate) fn recycle(&self, mut v: Vec<RawSpan>) {
        if v.capacity() == self.batch_size {
            empty_if_untagged(&mut v);
            let _ = self.recycled.0.try_send(v);
        }
    }

    /// Hands a batch to the writer, waiting for room until `deadline`
    /// (used by `flush`).
    fn submit_waiting(&self, spans: Vec<RawSpan>, deadline: Instant) {
        let n = spans.len() as u64;
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
    fn flush_until(&self, deadline: Instant) -> Result<()> {
        for spans in self.drain_threads() {
            self.submit_waiting(spans, deadline);
        }
        let (ack_tx, ack_rx) = bounded(1);
        self.tx
            .send_deadline(Msg::Flush(ack_tx), deadline)
            .map_err(|_| Error::WriterFailed("it did not take the flush in time".into()))?;
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
        self.tx.send_deadline(Msg::Stop(ack_tx), grace).is_ok()
            && ack_rx.recv_deadline(grace).is_ok()
    }

    fn stats(&self) -> RecorderStats {
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
    /// filling up (see [`ProfilerBuilder::queue_capacity`]).
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

/// Options for opening a profiler; see [`Profiler::builder`].
#[derive(Debug, Clone)]
pub struct ProfilerBuilder {
    path: PathBuf,
    run_id: Option<String>,
    label: Option<String>,
    batch_size: usize,
    flush_interval: Duration,
    close_timeout: Duration,
    queue_capacity: usize,
    shed_traces: bool,
    max_spans_per_second: Option<f64>,
    max_traces_per_second: Option<f64>,
    sample_rate: Option<f64>,
}

impl ProfilerBuilder {
    /// The run id. Default: `$FERRET_RUN_ID` if set, else a random 128-bit hex id.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// A human label for the run (shown by `ferret runs`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Spans a thread buffers before handing them to the writer (default 1024).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// How often buffered spans are handed over and committed even when
    /// batches are not full (default 200 ms).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// How long [`Profiler::close`] (and dropping the profiler) waits for
    /// the file, e.g. while another connection holds a write lock, before
    /// giving up (default 5 s). What it could not persist is counted in
    /// `dropped_write` and shown by [`RecorderStats::unpersisted`].
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }

    /// Spans that may wait for the writer (default 4,194,304; rounded up to
    /// whole batches). From half full on, new traces are skipped whole and
    /// counted as `shed` until the queue is down to a quarter, so that the
    /// traces already open keep room; if it fills all the same, spans are
    /// dropped and counted (`dropped_queue`).
    pub fn queue_capacity(mut self, spans: usize) -> Self {
        self.queue_capacity = spans;
        self
    }

    /// Whether new traces are skipped whole (counted as `shed`) while the
    /// queue is at least half full (default true). With `false`, every
    /// trace is recorded and a full queue drops batches of spans
    /// (`dropped_queue`), tearing the traces they belong to.
    pub fn shed_traces(mut self, on: bool) -> Self {
        self.shed_traces = on;
        self
    }

    /// Caps recorded spans per second (a token bucket); whole traces are
    /// kept or skipped.
    pub fn max_spans_per_second(mut self, n: f64) -> Self {
        self.max_spans_per_second = Some(n);
        self
    }

    /// Caps recorded traces (root spans) per second.
    pub fn max_traces_per_second(mut self, n: f64) -> Self {
        self.max_traces_per_second = Some(n);
        self
    }

    /// Keeps each trace with probability `p` (0..=1).
    pub fn sample_rate(mut self, p: f64) -> Self {
        self.sample_rate = Some(p.clamp(0.0, 1.0));
        self
    }

    /// Opens the file (creating it if needed), registers the run and this
    /// process, and starts the writer thread.
    pub fn open(self) -> Result<Profiler> {
        let conn = file::open_for_write(&self.path)?;
        let run_key = self
            .run_id
            .or_else(|| {
                std::env::var("FERRET_RUN_ID")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(crate::random_run_id);
        let host = file::hostname();
        let anchor = Anchor::now();
        let (run_db_id, proc_db_id) = file::register_process(
            &conn,
            &run_key,
            self.label.as_deref(),
            &host,
            anchor.wall_ns(clock::now_raw()),
        )?;
        let batches = self.queue_capacity.div_ceil(self.batch_size).max(1);
        let (tx, rx) = bounded(batches);
        let inner = Arc::new(Inner {
            path: self.path.clone(),
            run_key,
            run_db_id,
            proc_db_id,
            id_base: (proc_db_id as u64) << 40,
            next_id: AtomicU64::new(1),
            batch_size: self.batch_size,
            flush_interval_ns: self.flush_interval.as_nanos().min(u64::MAX as u128) as u64,
            flush_interval_raw: clock::ns_to_raw(
                self.flush_interval.as_nanos().min(u64::MAX as u128) as u64,
            ),
            anchor,
            counters: Counters::default(),
            sampler: sampler::Sampler::new(
                self.max_spans_per_second,
                self.max_traces_per_second,
                self.sample_rate,
            ),
            reported: AtomicBool::new(false),
            shedding: AtomicBool::new(false),
            queue_batches: batches,
            shed_traces: self.shed_traces,
            give_up_raw: AtomicU64::new(0),
            close_timeout: self.close_timeout,
            tx,
            recycled: bounded(RECYCLED_BATCHES),
            bufs: Mutex::new(Vec::new()),
            retired_skips: AtomicU64::new(0),
            retired_shed: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            next_thread: AtomicU32::new(0),
        });
        let writer = Writer::new(conn, inner.clone(), rx);
        let handle = std::thread::Builder::new()
            .name("ferret-writer".into())
            .spawn(move || writer.run())?;
        Ok(Profiler {
            inner,
            writer: Some(handle),
        })
    }
}

/// A profiler recording into one file. Install it with
/// [`Profiler::install`] so that [`span`](crate::span) and friends record
/// into it; dropping it (or [`Profiler::close`]) persists everything.
pub struct Profiler {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("path", &self.inner.path)
            .field("run_id", &self.inner.run_key)
            .finish()
    }
}

impl Profiler {
    /// Opens a profiler on `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Profiler> {
        Profiler::builder(path).open()
    }

    /// A builder for a profiler on `path`.
    pub fn builder(path: impl AsRef<Path>) -> ProfilerBuilder {
        ProfilerBuilder {
            path: path.as_ref().to_path_buf(),
            run_id: None,
            label: None,
            batch_size: 1024,
            flush_interval: Duration::from_millis(200),
            close_timeout: Duration::from_secs(5),
            shed_traces: true,
            queue_capacity: 1 << 22,
            max_spans_per_second: None,
            max_traces_per_second: None,
            sample_rate: None,
        }
    }

    /// The id of the run this profiler records.
    pub fn run_id(&self) -> &str {
        &self.inner.run_key
    }

    /// The file this profiler writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes this the global profiler: spans anywhere in the process record
    /// into it. Replaces any profiler installed before.
    pub fn install(&self) -> &Self {
        context::install(self.inner.clone());
        self
    }

    /// Persists every span finished so far, on every thread, and waits for
    /// the commit (at most two minutes).
    pub fn flush(&self) -> Result<()> {
        self.inner
            .flush_until(Instant::now() + Duration::from_secs(120))
    }

    /// What happened to the spans so far.
    pub fn stats(&self) -> RecorderStats {
        self.inner.stats()
    }

    /// Persists what it can, stops the writer, marks this process's part of
    /// the run as cleanly ended, and returns the final counters.
    ///
    /// It never takes much longer than the close timeout (5 s by default,
    /// [`ProfilerBuilder::close_timeout`]): when the file stays locked by
    /// another connection (or a write fails), the spans it could not write
    /// are counted in `dropped_write`, and [`RecorderStats::unpersisted`]
    /// tells how many accepted spans are not in the file. An error is
    /// returned only if the writer could not even be stopped in that time.
    pub fn close(mut self) -> Result<RecorderStats> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<RecorderStats> {
        let Some(handle) = self.writer.take() else {
            return Ok(self.inner.stats());
        };
        context::uninstall(&self.inner);
        let stopped = self.inner.stop();
        if stopped {
            let _ = handle.join();
            Ok(self.inner.stats())
        } else {
            // The writer is stuck (not on a lock: that would have timed
            // out); leave it behind.
            let st = self.inner.stats();
            Err(Error::WriterFailed(format!(
                "closing {}: it did not stop within the close timeout ({:?}); \
                 {} accepted spans may not be in the file",
                self.inner.path.display(),
                self.inner.close_timeout,
                st.unpersisted()
            )))
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("ferret: closing {}: {e}", self.inner.path.display());
        }
    }
}
