//! The recorder: a profiler bound to a file, the global install, and the
//! background writer.

pub(crate) mod buffer;
pub(crate) mod context;
mod file;
pub(crate) mod future;
pub(crate) mod live;
pub(crate) mod rows;
pub(crate) mod sampler;
pub(crate) mod shared;
#[cfg(unix)]
pub(crate) mod signals;
pub(crate) mod span;
pub(crate) mod writer;

use crate::clock::{self, Anchor};
use crate::error::{Error, Result};
use crossbeam_channel::bounded;
pub use live::stall::{Stall, StallFrame, StallKind};
pub use shared::RecorderStats;
use shared::{Counters, Inner, RECYCLED_BATCHES};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::{Writer, BLOCK_SPANS, WRITE_BLOCKS};

/// The next profiler's [`Inner::serial`] (0 stands for none).
#[cfg(feature = "tracing")]
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A random 128-bit run id in hex.
pub fn random_run_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        let t = clock::wall_now_ns() as u128 ^ ((std::process::id() as u128) << 64);
        b = t.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
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
    live: live::LiveConfig,
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

    /// How often the process writes its heartbeat (pid, host, command
    /// line, CPU time, memory, threads) and a snapshot of its open spans
    /// (`ferret_heartbeats`, `ferret_inflight`; read by `ferret dump` and
    /// `ferret watch`). Default 1 s; `None` turns both off.
    pub fn heartbeat_interval(mut self, every: Option<Duration>) -> Self {
        self.live.interval = every.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// Turns on the stall watchdog: a span open longer than `threshold` is
    /// reported on stderr (its thread, whether it is busy or waiting, and
    /// its stack with durations and tags), in the `ferret_stalls` table
    /// and to the [`on_stall`](Self::on_stall) callback; again at 2×, 4×
    /// and 8× the threshold, and when it ends ("recovered after ...").
    /// The check runs every min(threshold / 4, 1 s). Off by default.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let p = ferret::Profiler::builder("ferret.db")
    ///     .stall_threshold(Duration::from_secs(5))
    ///     .stall_threshold_for("main", Duration::MAX)
    ///     .open()?;
    /// # Ok::<(), ferret::Error>(())
    /// ```
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall_config().threshold = threshold.max(Duration::from_millis(1));
        self
    }

    /// A threshold of its own for spans named `name` (e.g. `Duration::MAX`
    /// for a span that lasts as long as the program). Turns the watchdog
    /// on (with a default threshold of 10 s) if it is not yet.
    pub fn stall_threshold_for(mut self, name: impl Into<String>, threshold: Duration) -> Self {
        self.stall_config()
            .overrides
            .insert(name.into(), threshold.max(Duration::from_millis(1)));
        self
    }

    /// Calls `f` with every stall report (and every recovery), on the
    /// watchdog's thread: to alert, or to abort a CI job. Turns the
    /// watchdog on (with a default threshold of 10 s) if it is not yet.
    pub fn on_stall(mut self, f: impl Fn(&Stall) + Send + Sync + 'static) -> Self {
        self.stall_config().callback = Some(Arc::new(f));
        self
    }

    /// Whether stall reports are printed on stderr (default true).
    pub fn stall_reports_on_stderr(mut self, on: bool) -> Self {
        self.stall_config().stderr = on;
        self
    }

    fn stall_config(&mut self) -> &mut live::stall::StallConfig {
        self.live
            .stall
            .get_or_insert_with(|| live::stall::StallConfig {
                threshold: Duration::from_secs(10),
                overrides: Default::default(),
                callback: None,
                stderr: true,
            })
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
            .unwrap_or_else(random_run_id);
        let host = file::hostname();
        let anchor = Anchor::now();
        let started_ns = anchor.wall_ns(clock::now_raw());
        let (run_db_id, proc_db_id) =
            file::register_process(&conn, &run_key, self.label.as_deref(), &host, started_ns)?;
        let batches = self.queue_capacity.div_ceil(self.batch_size).max(1);
        let (tx, rx) = bounded(batches);
        let inner = Arc::new(Inner {
            path: self.path.clone(),
            run_key,
            run_db_id,
            proc_db_id,
            #[cfg(feature = "tracing")]
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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
            wake: bounded(1),
            wake_batches: (BLOCK_SPANS * WRITE_BLOCKS)
                .div_ceil(self.batch_size)
                .clamp(1, (batches / 8).max(1)),
            recycled: bounded(RECYCLED_BATCHES),
            bufs: Mutex::new(Vec::new()),
            retired_skips: AtomicU64::new(0),
            retired_shed: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            next_thread: AtomicU32::new(0),
            live: self
                .live
                .enabled()
                .then(|| Arc::new(live::Live::new(self.live.clone()))),
            host,
            started_ns,
        });
        let writer = Writer::new(conn, inner.clone(), rx);
        let handle = std::thread::Builder::new()
            .name("ferret-writer".into())
            .spawn(move || writer.run())?;
        let stop = Arc::new(live::monitor::StopSignal::default());
        let monitor = match &inner.live {
            Some(_) => {
                let (inner, stop) = (inner.clone(), stop.clone());
                Some(
                    std::thread::Builder::new()
                        .name("ferret-monitor".into())
                        .spawn(move || live::monitor::run(inner, stop))?,
                )
            }
            None => None,
        };
        Ok(Profiler {
            inner,
            writer: Some(handle),
            monitor: monitor.map(|h| (h, stop)),
        })
    }
}

/// A profiler recording into one file. Install it with
/// [`Profiler::install`] so that [`span`](crate::span) and friends record
/// into it; dropping it (or [`Profiler::close`]) persists everything.
pub struct Profiler {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
    monitor: Option<(JoinHandle<()>, Arc<live::monitor::StopSignal>)>,
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
            live: live::LiveConfig {
                interval: Some(Duration::from_secs(1)),
                stall: None,
            },
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
        if let Some((h, stop)) = self.monitor.take() {
            // Its last heartbeat (and an empty snapshot) go with the
            // writer's final commit.
            stop.stop();
            let _ = h.join();
        }
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
