//! The background writer: receives batches of finished spans, maps local name
//! and path ids to the database's, encodes blocks and commits them, with the
//! process's and the run's counters, in one transaction per round.
//!
//! The commit promise: a span that ended more than the flush interval ago
//! is committed. Every half interval (a *tick*) the writer takes the spans
//! buffered by every recording thread (busy, idle or about to end) and
//! commits whatever it holds, so no span waits for a full batch or for a
//! later span of its thread.

use super::buffer::{Batch, RawSpan};
use super::rows::{self, ProcessCounters};
use super::shared::{Inner, Msg};
use crate::intern;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use ferret_format::codec::{BlockEncoder, SpanHead};
use rusqlite::Connection;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spans per stored block.
pub(crate) const BLOCK_SPANS: usize = 4096;
/// Blocks' worth of spans pending that make the writer commit before its
/// tick (and, queued, wake it: see `Inner::wake`).
pub(crate) const WRITE_BLOCKS: usize = 16;

pub(crate) struct Writer {
    conn: Connection,
    inner: Arc<Inner>,
    rx: Receiver<Msg>,
    pending: Vec<Batch>,
    pending_spans: usize,
    /// Local name id -> database id (0 = not yet known).
    names: Vec<i64>,
    /// Local path id -> database id (0 = not yet known; local 0 is the root).
    paths: Vec<i64>,
    threads_synced: usize,
    /// Counter values already stored.
    persisted: ProcessCounters,
    /// Set by a stop request: the next commit marks the process as ended.
    ending: bool,
    /// The block being encoded, its buffer reused from block to block
    /// (a fresh 64 KB buffer per block, and a copy of it to finish it,
    /// cost page faults and a pass over every block's bytes).
    enc: BlockEncoder,
}

/// How long a writer waits for a lock held by another connection before a
/// write fails (the spans are then counted in `dropped_write`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// The writer thread's profiler, for its busy handler (a plain `fn`).
    static WRITER_OF: RefCell<Option<(Arc<Inner>, Instant)>> = const { RefCell::new(None) };
}

/// SQLite's busy handler for the writer's connection: waits for another
/// connection's lock up to [`BUSY_TIMEOUT`], and not at all once `close()`
/// has given up.
fn busy_handler(attempt: i32) -> bool {
    WRITER_OF.with(|w| {
        let mut w = w.borrow_mut();
        let Some((inner, since)) = w.as_mut() else {
            return false;
        };
        if attempt == 0 {
            *since = Instant::now();
        }
        if inner.given_up() || since.elapsed() >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(if attempt < 10 { 1 } else { 5 }));
        true
    })
}

impl Writer {
    pub(crate) fn new(conn: Connection, inner: Arc<Inner>, rx: Receiver<Msg>) -> Writer {
        // Room for every statement the writer runs (16 by default: it runs
        // about as many, and an evicted one is parsed again).
        conn.set_prepared_statement_cache_capacity(32);
        Writer {
            conn,
            inner,
            rx,
            pending: Vec::new(),
            pending_spans: 0,
            names: Vec::new(),
            paths: vec![0],
            threads_synced: 0,
            persisted: ProcessCounters::default(),
            ending: false,
            enc: BlockEncoder::new(),
        }
    }

    pub(crate) fn run(mut self) {
        WRITER_OF.with(|w| *w.borrow_mut() = Some((self.inner.clone(), Instant::now())));
        self.conn.busy_handler(Some(busy_handler)).ok();
        let tick = Duration::from_nanos((self.inner.flush_interval_ns / 2).max(1_000_000));
        let mut next_tick = Instant::now() + tick;
        // The writer does not block on the queue: a blocked receiver makes
        // every hand-over of a batch wake it with a futex call (about 4 ns
        // per span of the recording thread's time, and a context switch
        // of the writer per batch). Batches wait in the queue until the
        // tick, or until enough of them are queued for a commit (the
        // recording thread that hands over such a batch sends a wake-up
        // token), or a flush or stop request comes (the requester sends
        // one). So the writer wakes about twice per flush interval, plus
        // once per WRITE_BLOCKS blocks of spans under heavy load.
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick = now + tick;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Msg::Batch(v)) => {
                        self.pending_spans += v.len();
                        self.pending.push(v);
                        if self.pending_spans >= BLOCK_SPANS * WRITE_BLOCKS {
                            self.persist();
                        }
                    }
                    Ok(Msg::Flush(ack)) => {
                        let stop = self.drain_queued();
                        self.persist();
                        let _ = ack.send(());
                        if let Some(ack) = stop {
                            let _ = ack.send(());
                            return;
                        }
                    }
                    Ok(Msg::Stop(ack)) => {
                        self.drain_queued();
                        self.ending = true;
                        self.persist();
                        let _ = ack.send(());
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.persist();
                        return;
                    }
                }
            }
            self.inner.relieve_queue_pressure();
            // A heartbeat, snapshot or stall report is committed at once
            // (the monitor wakes the writer when it hands one over).
            if self.inner.live.as_ref().is_some_and(|l| l.has_pending()) {
                self.persist();
            }
            // Inner holds the sender: this only times out or takes a token.
            let _ = self.inner.wake.1.recv_deadline(next_tick);
        }
    }

    /// Takes every thread's buffered spans and commits all that is pending:
    /// what keeps the commit promise for idle and slow threads.
    fn tick(&mut self) {
        for v in self.inner.drain_threads() {
            self.inner
                .counters
                .accepted
                .fetch_add(v.len() as u64, Ordering::Relaxed);
            self.pending_spans += v.len();
            self.pending.push(v);
        }
        self.inner.relieve_queue_pressure();
        self.persist();
    }

    /// Moves every batch already queued into `pending`; acknowledges flushes
    /// after the persist that follows. Returns a stop request if one was seen.
    fn drain_queued(&mut self) -> Option<Sender<()>> {
        let mut acks = Vec::new();
        let mut stop = None;
        while let Ok(m) = self.rx.try_recv() {
            match m {
                Msg::Batch(v) => {
                    self.pending_spans += v.len();
                    self.pending.push(v);
                }
                Msg::Flush(a) => acks.push(a),
                Msg::Stop(a) => {
                    stop = Some(a);
                    break;
                }
            }
        }
        if !acks.is_empty() {
            self.persist();
            for a in acks {
                let _ = a.send(());
            }
        }
        stop
    }

    fn counters(&self) -> ProcessCounters {
        let c = &self.inner.counters;
        ProcessCounters {
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped_queue: c.dropped_queue.load(Ordering::Relaxed),
            dropped_write: c.dropped_write.load(Ordering::Relaxed),
            sampled_out: self.inner.sampled_out(),
            shed: self.inner.shed(),
        }
    }

    fn persist(&mut self) {
        let counters = self.counters();
        let live = self
            .inner
            .live
            .as_ref()
            .map(|l| l.take_pending())
            .unwrap_or_default();
        if self.pending.is_empty() && counters == self.persisted && !self.ending && live.is_empty()
        {
            return;
        }
        let batches = std::mem::take(&mut self.pending);
        let n = std::mem::take(&mut self.pending_spans);
        let r = self.write(&batches, counters, &live);
        for b in batches {
            self.inner.recycle(b);
        }
        if r.is_ok() {
            self.inner
                .counters
                .persisted
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Err(e) = r {
            let _ = self.conn.execute_batch("ROLLBACK");
            // Ids handed out inside the failed transaction are gone.
            self.names.clear();
            self.paths.truncate(1);
            self.threads_synced = 0;
            self.inner
                .counters
                .dropped_write
                .fetch_add(n as u64, Ordering::Relaxed);
            if !self.inner.reported.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "ferret: could not write {n} spans to {}: {e} (further write errors are counted, not printed)",
                    self.inner.path.display()
                );
            }
            // Try to store the counters alone, so that the loss is on record.
            let counters = self.counters();
            if self.write(&[], counters, &Default::default()).is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    fn write(
        &mut self,
        batches: &[Batch],
        counters: ProcessCounters,
        live: &super::live::PendingLive,
    ) -> rusqlite::Result<()> {
        // Cached statements: `execute_batch` parsed both statements anew
        // at every commit (about a quarter of a commit's fixed cost).
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.sync_threads()?;
        // No sort: each thread's batch is contiguous and nearly start
        // ordered already; sorting cost more writer time (and queue drops
        // under load) than the byte or so per span it saved.
        let mut ins = self.conn.prepare_cached(
            "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let enc = &mut self.enc;
        // Empty unless a failed commit left a block in it.
        enc.clear();
        let (mut min_start, mut max_end) = (i64::MAX, i64::MIN);
        let (mut last_local, mut last_db) = (u32::MAX, 0);
        for b in batches {
            for (i, s) in b.spans.iter().enumerate() {
                prefetch_spans(&b.spans, i);
                if s.path != last_local {
                    last_db = db_path(&self.conn, &mut self.names, &mut self.paths, s.path)?;
                    last_local = s.path;
                }
                let start = self.inner.anchor.wall_ns(s.start);
                let tail = b.tail(s);
                let head = SpanHead {
                    id: s.id,
                    parent: s.parent,
                    trace: s.trace,
                    path: last_db,
                    start_ns: start,
                    dur_ns: s.dur_ns,
                    child_ns: s.child_ns,
                    thread: s.thread,
                    error: false,
                };
                enc.push_encoded(&head, tail);
                min_start = min_start.min(start);
                // As readers compute a span's end (the summary takes its
                // time range from these columns).
                max_end = max_end.max(ferret_format::span_end(start, s.dur_ns));
                if enc.len() == BLOCK_SPANS as u64 {
                    insert_block(&mut ins, &self.inner, min_start, max_end, enc)?;
                    (min_start, max_end) = (i64::MAX, i64::MIN);
                }
            }
        }
        if !enc.is_empty() {
            insert_block(&mut ins, &self.inner, min_start, max_end, enc)?;
        }
        drop(ins);
        if self.inner.live.is_some() {
            super::live::store::store(&self.conn, &self.inner, live, self.ending)?;
        }
        // A commit of live rows alone (an idle process's heartbeat) leaves
        // the process's row as it is when its counters did not change:
        // rewriting it only to move `committed_ns` cost a page (16 KB) of
        // write traffic per heartbeat.
        if !batches.is_empty() || counters != self.persisted || self.ending {
            let now_ns = crate::clock::wall_now_ns();
            rows::store_counters(
                &self.conn,
                self.inner.run_db_id,
                self.inner.proc_db_id,
                &counters,
                &self.persisted,
                now_ns,
                self.ending.then_some(now_ns),
            )?;
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.persisted = counters;
        Ok(())
    }

    fn sync_threads(&mut self) -> rusqlite::Result<()> {
        // Only the threads not yet stored: a process that ran 100,000
        // threads must not copy them all at every commit.
        let from = self.threads_synced;
        let new: Vec<(u64, Option<String>)> = {
            let t = self.inner.threads.lock().unwrap_or_else(|e| e.into_inner());
            t.get(from..).map_or_else(Vec::new, <[_]>::to_vec)
        };
        if new.is_empty() {
            return Ok(());
        }
        let mut st = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO ferret_threads (process, idx, tid, name) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, (tid, name)) in new.iter().enumerate() {
            st.execute(rusqlite::params![
                self.inner.proc_db_id,
                (from + i) as i64,
                *tid as i64,
                name
            ])?;
        }
        self.threads_synced = from + new.len();
        Ok(())
    }
}

/// Spans arrive from other cores: fetching them ahead overlaps the cache
/// misses. (Their tails lie in one buffer, read in order.)
#[inline(always)]
fn prefetch_spans(batch: &[RawSpan], i: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let fetch = |p: *const u8| {
            // SAFETY: a prefetch is only a hint; it never faults.
            unsafe { _mm_prefetch(p as *const i8, _MM_HINT_T0) }
        };
        if let Some(s) = batch.get(i + 16) {
            fetch(std::ptr::from_ref(s).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (batch, i);
}

/// Stores the encoder's block and empties the encoder for the next one.
fn insert_block(
    ins: &mut rusqlite::CachedStatement<'_>,
    inner: &Inner,
    min_start: i64,
    max_end: i64,
    enc: &mut BlockEncoder,
) -> rusqlite::Result<()> {
    let count = enc.len() as i64;
    ins.execute(rusqlite::params![
        inner.run_db_id,
        inner.proc_db_id,
        min_start,
        max_end,
        count,
        enc.block()
    ])?;
    enc.clear();
    Ok(())
}

/// The database id of a local name id, registering the name if needed.
fn db_name(conn: &Connection, names: &mut Vec<i64>, local: u32) -> rusqlite::Result<i64> {
    let i = local as usize;
    if let Some(&id) = names.get(i) {
        if id != 0 {
            return Ok(id);
        }
    }
    let text = intern::name_text(local);
    conn.prepare_cached("INSERT OR IGNORE INTO ferret_names (name) VALUES (?1)")?
        .execute([&*text])?;
    let id: i64 = conn
        .prepare_cached("SELECT id FROM ferret_names WHERE name = ?1")?
        .query_row([&*text], |r| r.get(0))?;
    if names.len() <= i {
        names.resize(i + 1, 0);
    }
    names[i] = id;
    Ok(id)
}

/// The database id of a local path, registering it (and its unknown
/// ancestors, iteratively: chains can be very deep) if needed.
fn db_path(
    conn: &Connection,
    names: &mut Vec<i64>,
    paths: &mut Vec<i64>,
    local: u32,
) -> rusqlite::Result<u32> {
    if let Some(&id) = paths.get(local as usize) {
        if id != 0 || local == 0 {
            return Ok(id as u32);
        }
    }
    let mut chain = vec![];
    let mut cur = local;
    while cur != 0 && paths.get(cur as usize).is_none_or(|&id| id == 0) {
        let (parent, name) = intern::path_entry(cur);
        chain.push((cur, parent, name));
        cur = parent;
    }
    for (local, parent, name) in chain.into_iter().rev() {
        let parent_db = if parent == 0 {
            0
        } else {
            paths[parent as usize]
        };
        let name_db = db_name(conn, names, name)?;
        conn.prepare_cached("INSERT OR IGNORE INTO ferret_paths (parent, name) VALUES (?1, ?2)")?
            .execute([parent_db, name_db])?;
        let id: i64 = conn
            .prepare_cached("SELECT id FROM ferret_paths WHERE parent = ?1 AND name = ?2")?
            .query_row([parent_db, name_db], |r| r.get(0))?;
        if paths.len() <= local as usize {
            paths.resize(local as usize + 1, 0);
        }
        paths[local as usize] = id;
    }
    Ok(paths[local as usize] as u32)
}
