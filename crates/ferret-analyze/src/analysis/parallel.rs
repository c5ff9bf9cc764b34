//! Parallel scans of native files: the run's blocks are independent, so
//! threads read disjoint chunks of them (each through its own connection),
//! each into a fresh copy of the fold, and the copies merge at the end.
//!
//! Results equal one thread's, bit for bit, for folds whose merge is exact
//! ([`Merge`]): counts, sums (saturating), minima and maxima do not depend on
//! the order of the spans, and the latency sketch's content does not either
//! (its histogram counts values per bucket; see
//! [`LatencySketch::merge`](super::sketch::LatencySketch::merge)).
//!
//! Work is handed out in chunks of [`CHUNK_BLOCKS`] block ids from one
//! atomic counter, so a thread slowed by a busy core takes fewer chunks.
//!
//! Memory: each thread holds one fold (state per distinct name or call
//! path) and one page of blocks, so the bound of a one-thread scan
//! multiplies by the thread count, and by nothing else.
//!
//! ferret-io files are scanned by one thread (their spans need a resolver
//! fed in start order; the reader already overlaps SQLite with parsing on
//! a second thread): [`scan_threads`] falls back to [`scan`] for them.

use super::query::{Clock, Selection};
use super::scan::{feed_native, scan, Fold, PathTable, ScanOptions, Scanned};
use crate::error::Result;
use crate::store::{FileKind, SpanQuery, Store};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A [`Fold`] whose states, built from disjoint parts of a run, merge into
/// the state one pass over the whole run would have built.
pub trait Merge: Fold + Send + Sized {
    /// An empty fold with the same settings.
    fn fresh(&self) -> Self;

    /// Adds the state of `other`, built from spans this fold did not see.
    fn merge(&mut self, other: Self);
}

/// Block ids a thread claims at a time (32 blocks of up to 4,096 spans).
pub const CHUNK_BLOCKS: i64 = 32;

/// The default thread count: the cores this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Like [`scan`], on up to `threads` threads for native files (see the
/// module docs); one thread (plain [`scan`]) for ferret-io files, for
/// `threads <= 1` and for runs too small to split.
pub fn scan_threads<F: Merge>(
    store: &Store,
    sel: &Selection,
    opts: ScanOptions<'_>,
    threads: usize,
    fold: &mut F,
) -> Result<Scanned> {
    if threads <= 1 || store.kind() != FileKind::Native {
        return scan(store, sel, opts, fold);
    }
    // Busy clock: durations come from the busy tags (see `scan`).
    let busy = (sel.clock == Clock::Busy).then_some(opts.with_tags);
    let mut q = sel.window.clone();
    q.with_tags = opts.with_tags || busy.is_some();
    let mut spans = store.spans(&sel.run, &q)?;
    let Some((lo, hi)) = spans.block_range()? else {
        drop(spans);
        return scan(store, sel, opts, fold);
    };
    let threads = threads.min(1 << 10);
    // At least 4 chunks per thread, so that a small run splits too.
    let width = hi - lo + 1;
    let chunk = CHUNK_BLOCKS
        .min((width + threads as i64 * 4 - 1) / (threads as i64 * 4))
        .max(1);
    if width <= chunk {
        drop(spans);
        return scan(store, sel, opts, fold);
    }
    let threads = threads.min(((width + chunk - 1) / chunk) as usize);
    let paths = PathTable::from_triples(store.paths()?);
    let next = AtomicI64::new(lo);
    let claim = || {
        let a = next.fetch_add(chunk, Ordering::Relaxed);
        (a <= hi).then(|| (a, a.saturating_add(chunk - 1).min(hi)))
    };
    // Helpers that have opened their connection (or failed to): the
    // calling thread waits for them before it claims chunks, so that a
    // small run is shared too.
    let ready = AtomicU64::new(0);
    let working = AtomicU64::new(0);
    let (all_n, all_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    // Adds a thread's progress (its own running totals) to the shared
    // totals; returns them.
    let publish = |last: &mut (u64, u64), n: u64, b: u64| -> (u64, u64) {
        let dn = n - last.0;
        let db = b.saturating_sub(last.1);
        *last = (n, b);
        (
            all_n.fetch_add(dn, Ordering::Relaxed) + dn,
            all_bytes.fetch_add(db, Ordering::Relaxed) + db,
        )
    };
    let mut progress = opts.progress;
    // One thread's work: chunks until none is left. Returns (spans, skipped).
    let work = |spans: &mut crate::store::Spans<'_>,
                fold: &mut F,
                report: &mut dyn FnMut(u64, u64)|
     -> Result<(u64, u64)> {
        let mut n = 0u64;
        let mut first = true;
        while let Some((a, b)) = claim() {
            if fold.done() {
                break;
            }
            if std::mem::take(&mut first) {
                working.fetch_add(1, Ordering::Relaxed);
            }
            spans.restrict_blocks(a, b);
            feed_native(spans, &paths, fold, busy, &mut n, report);
            if let Some(e) = spans.take_error() {
                return Err(e);
            }
        }
        report(n, spans.bytes_read());
        Ok((n, spans.skipped_rows()))
    };
    let (path, open_opts) = (store.path().to_path_buf(), store.open_options());
    let helper = |q: &SpanQuery, mut f: F| -> Result<(F, u64, u64)> {
        let store = Store::open_with(&path, &open_opts);
        let spans = store.as_ref().map(|st| st.spans(&sel.run, q));
        ready.fetch_add(1, Ordering::Release);
        let mut spans = match spans {
            Ok(s) => s?,
            Err(_) => return Err(store.expect_err("failed to open")),
        };
        let mut last = (0, 0);
        let (n, skipped) = work(&mut spans, &mut f, &mut |n, b| {
            publish(&mut last, n, b);
        })?;
        Ok((f, n, skipped))
    };
    let (mine, others) = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|i| {
                let (helper, q, f) = (&helper, &q, fold.fresh());
                std::thread::Builder::new()
                    .name(format!("ferret-scan-{i}"))
                    .spawn_scoped(s, move || helper(q, f))
            })
            .collect();
        let spawned = handles.iter().filter(|h| h.is_ok()).count() as u64;
        let t0 = std::time::Instant::now();
        while ready.load(Ordering::Acquire) < spawned && t0.elapsed().as_secs() < 2 {
            std::thread::yield_now();
        }
        let mut last = (0, 0);
        let mine = work(&mut spans, fold, &mut |n, b| {
            let (tn, tb) = publish(&mut last, n, b);
            if let Some(p) = progress.as_mut() {
                p(tn, tb)
            }
        });
        let others: Vec<Result<(F, u64, u64)>> = handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(crate::Error::Io(std::io::Error::other(
                        "a scan thread panicked",
                    )))
                }),
                Err(e) => Err(e.into()),
            })
            .collect();
        (mine, others)
    });
    let (mut n, mut skipped) = mine?;
    for r in others {
        let (f, fn_, fs) = r?;
        fold.merge(f);
        n += fn_;
        skipped += fs;
    }
    Ok(Scanned {
        run: sel.run.clone(),
        kind: FileKind::Native,
        spans: n,
        skipped_rows: skipped,
        evicted_early: 0,
        names: (0..spans.name_count() as u32)
            .map(|i| spans.name(i).to_owned())
            .collect(),
        paths,
        threads: working.into_inner() as usize,
    })
}
