//! The scan driver: the one place that opens a run's spans and hands each
//! one, resolved, to an analysis or an exporter.
//!
//! A native file stores every span's call path and its children's total
//! duration; a ferret-io file stores neither, and a [`PathResolver`]
//! rebuilds both from the start-ordered stream. The driver hides the
//! difference: a [`Fold`] sees every span with a call-path id and its
//! parent path, and every span's self time once it is known, with the
//! same meaning for both kinds. [`Scanned`] then gives the names and the
//! call-path table those ids refer to.
//!
//! The clock ([`Selection::clock`]) is applied here too: on the busy
//! clock, a native span's duration and children's total are rewritten from
//! its busy tags before any fold sees it (ferret-io files record no busy
//! time, so busy = wall there).
//!
//! Memory: the native path table (distinct call paths of the file), the
//! resolver's open spans (ferret-io: concurrency × depth) and the names.

use super::query::{Clock, Selection};
use super::resolve::PathResolver;
use crate::error::Result;
use crate::store::{FileKind, HeadSink, SpanRecord, Spans, Store};
use ferret_format::codec::{HeadColumns, HeadFields, SpanHead};
use ferret_format::TagValue;

/// A span as a [`Fold`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The span as read (tags only when the scan asked for them).
    pub span: &'a SpanRecord,
    /// Its call-path id (see [`Scanned::paths`]).
    pub path: u32,
    /// The call path of its parent; 0 when the path is a root path.
    pub parent_path: u32,
    /// The text of its name.
    pub name: &'a str,
}

/// An analysis or exporter fed by [`scan`].
pub trait Fold {
    /// True when the fold needs only the fixed fields of native spans:
    /// they then go to [`Fold::head`] without a record being built (the
    /// fast path). ferret-io spans always go to [`Fold::span`].
    fn heads_only(&self) -> bool {
        false
    }

    /// The fixed fields [`Fold::head`] and [`Fold::head_and_self`] read
    /// (default: all). On the fast path, a columnar block decodes only
    /// their columns, and the other fields of the [`SpanHead`] the fold
    /// gets may be 0: a fold must not read a field it did not name here.
    /// (The call path is always there: the scan reads it for the name.)
    fn head_fields(&self) -> HeadFields {
        HeadFields::ALL
    }

    /// True when the fold takes the time range of native spans on the
    /// fast path through [`Fold::range`] (per block), and not from their
    /// starts (which it then need not name in [`Fold::head_fields`]).
    fn ranges(&self) -> bool {
        false
    }

    /// Native fast path, with [`Fold::ranges`]: the first start and last
    /// end (start + duration, saturating) of the spans just given.
    fn range(&mut self, _first_start_ns: i64, _last_end_ns: i64) {}

    /// Native fast path: a span's fixed fields and name id.
    fn head(&mut self, _head: &SpanHead, _name: u32) {}

    /// Native fast path: [`Fold::head`] then [`Fold::self_time`] of one
    /// span (its self time: duration minus children's, floored at 0), in
    /// one call, so that a fold can do both with one lookup of its state.
    #[inline(always)]
    fn head_and_self(&mut self, head: &SpanHead, name: u32) {
        self.head(head, name);
        self.self_time(name, head.path, head.dur_ns.saturating_sub(head.child_ns));
    }

    /// Native fast path, a columnar block read without a time window:
    /// [`Fold::head_and_self`] of each of its spans in turn (span `i` is
    /// `c.head(i)`, its name id `names[path]`, 0 past the end), which a
    /// fold may do a column at a time. Default: span by span.
    #[inline(always)]
    fn head_columns(&mut self, c: &HeadColumns<'_>, names: &[u32]) {
        let spans = c
            .status_bytes()
            .iter()
            .zip(c.path)
            .zip(c.start)
            .zip(c.dur)
            .zip(c.child);
        for ((((&st, &path), &start_ns), &dur_ns), &child_ns) in spans {
            let h = SpanHead::narrow(path, start_ns, dur_ns, child_ns, HeadColumns::error_of(st));
            self.head_and_self(&h, names.get(path as usize).copied().unwrap_or(0));
        }
    }

    /// Every span, in file order, with its call path.
    fn span(&mut self, s: Resolved<'_>);

    /// A span's self time (duration minus its direct children's durations,
    /// never below 0), as soon as it is known: right after the span for
    /// native files, once the stream passes the span's end for ferret-io
    /// files. Not called for spans without a duration.
    fn self_time(&mut self, _name: u32, _path: u32, _self_ns: u64) {}

    /// The same self time tied to its span id (`None` for a span without
    /// a duration), for folds that write one row per span: right after
    /// [`Fold::span`] for native files, once the stream passes the span's
    /// end for ferret-io files. Every span [`Fold::span`] saw gets exactly
    /// one call. Not called on the native fast path ([`Fold::heads_only`]).
    fn span_self(&mut self, _span_id: u64, _self_ns: Option<u64>) {}

    /// Native files, outside the fast path: whether the fold wants the span
    /// with these fixed fields. A span it does not want is skipped before
    /// its status and tags are decoded, and [`Fold::span`] does not see it
    /// (nor [`Fold::self_time`] or [`Fold::span_self`]). ferret-io spans
    /// are not asked about. Default: every span.
    #[inline(always)]
    fn wants(&mut self, _head: &SpanHead) -> bool {
        true
    }

    /// True when [`Fold::wants`] may reject spans (default: false, and
    /// `wants` is not asked).
    fn filters(&self) -> bool {
        false
    }

    /// True when the fold wants no more spans (e.g. its output failed):
    /// the scan then stops early.
    fn done(&self) -> bool {
        false
    }
}

/// The call paths a scan's path ids refer to.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    /// `entries[id]` = (parent path, name id); `u32::MAX` names a hole.
    entries: Vec<(u32, u32)>,
}

const HOLE: (u32, u32) = (u32::MAX, u32::MAX);

impl PathTable {
    pub(crate) fn from_triples(t: impl IntoIterator<Item = (u32, u32, u32)>) -> PathTable {
        let mut entries = Vec::new();
        for (id, parent, name) in t {
            let i = id as usize;
            if i >= entries.len() {
                entries.resize(i + 1, HOLE);
            }
            entries[i] = (parent, name);
        }
        PathTable { entries }
    }

    /// (parent path, name id) of path `id`; `None` for 0 and unknown ids.
    #[inline]
    pub fn get(&self, id: u32) -> Option<(u32, u32)> {
        match self.entries.get(id as usize) {
            Some(&e) if id != 0 && e != HOLE => Some(e),
            _ => None,
        }
    }

    /// The parent path of `id` (0 for a root path or an unknown id).
    #[inline]
    pub fn parent(&self, id: u32) -> u32 {
        self.get(id).map_or(0, |(p, _)| p)
    }

    /// One past the largest path id.
    pub fn end(&self) -> u32 {
        self.entries.len() as u32
    }

    /// The name ids of path `id`, root first. A path always has a larger
    /// id than its parent (the recorder and the resolver create parents
    /// first), so a parent id that is not smaller (a damaged file) ends
    /// the walk, as does an unknown one.
    pub fn frames(&self, id: u32) -> Vec<u32> {
        let mut names = Vec::new();
        let mut c = id;
        while let Some((parent, name)) = self.get(c) {
            names.push(name);
            if parent >= c {
                break;
            }
            c = parent;
        }
        names.reverse();
        names
    }
}

/// What a scan read, besides what the fold kept.
#[derive(Debug, Clone, Default)]
pub struct Scanned {
    /// The run read.
    pub run: String,
    /// The file's kind.
    pub kind: FileKind,
    /// Spans read.
    pub spans: u64,
    /// Rows (native: blocks; ferret-io: spans) skipped as unreadable.
    pub skipped_rows: u64,
    /// ferret-io: spans finished early because too many were open at once
    /// (see [`PathResolver`]).
    pub evicted_early: u64,
    /// Name texts by name id.
    pub names: Vec<String>,
    /// Call paths by path id.
    pub paths: PathTable,
    /// Threads that read spans (see
    /// [`scan_threads`](super::parallel::scan_threads)); 1 for a plain scan.
    pub threads: usize,
}

impl Scanned {
    /// The text of a name id ("" if unknown).
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// How to scan.
#[derive(Default)]
pub struct ScanOptions<'p> {
    /// Decode tags (costs time and memory).
    pub with_tags: bool,
    /// Called now and then with (spans so far, bytes read so far).
    pub progress: Option<&'p mut dyn FnMut(u64, u64)>,
}

/// Streams every span of `sel` into `fold`; see the module docs. A read
/// failure part way is an error (what was folded until then stays in
/// `fold`).
pub fn scan(
    store: &Store,
    sel: &Selection,
    opts: ScanOptions<'_>,
    fold: &mut impl Fold,
) -> Result<Scanned> {
    let kind = store.kind();
    // Busy clock on a native file: durations come from the busy tags (see
    // `onto_busy_clock`), and the fast path, which skips tags, is off.
    let busy = sel.clock == Clock::Busy && kind == FileKind::Native;
    let mut q = sel.window.clone();
    q.with_tags = opts.with_tags || busy;
    let mut progress = opts.progress;
    let mut report = |n: u64, b: u64| {
        if let Some(p) = progress.as_mut() {
            p(n, b)
        }
    };
    let mut spans = store.spans(&sel.run, &q)?;
    let mut n = 0u64;
    let mut rec = SpanRecord::default();
    let mut out = Scanned {
        run: sel.run.clone(),
        kind,
        ..Scanned::default()
    };
    match kind {
        FileKind::Native => {
            let paths = PathTable::from_triples(store.paths()?);
            feed_native(
                &mut spans,
                &paths,
                fold,
                busy.then_some(opts.with_tags),
                &mut n,
                &mut report,
            );
            out.paths = paths;
        }
        FileKind::FerretIo => {
            let mut r = PathResolver::default();
            let emit = |f: super::resolve::Finished, fold: &mut _| {
                if let Some(s) = f.self_ns {
                    Fold::self_time(fold, f.name, f.path, s);
                }
                Fold::span_self(fold, f.span_id, f.self_ns);
            };
            let mut done = Vec::new();
            while !fold.done() && spans.next_into(&mut rec) {
                n += 1;
                if n & 0xFFFF == 0 {
                    report(n, spans.bytes_read());
                }
                let path = r.push(&rec, &mut |f| done.push(f));
                for f in done.drain(..) {
                    emit(f, fold);
                }
                fold.span(Resolved {
                    span: &rec,
                    path,
                    parent_path: r.path(path).map_or(0, |(p, _)| p),
                    name: spans.name(rec.name),
                });
            }
            r.finish(&mut |f| done.push(f));
            for f in done.drain(..) {
                emit(f, fold);
            }
            out.evicted_early = r.evicted_early;
            out.paths = PathTable::from_triples(
                (1..=r.path_count() as u32).filter_map(|id| r.path(id).map(|(p, nm)| (id, p, nm))),
            );
        }
    }
    report(n, spans.bytes_read());
    if let Some(e) = spans.take_error() {
        return Err(e);
    }
    out.spans = n;
    out.threads = 1;
    out.skipped_rows = spans.skipped_rows();
    out.names = (0..spans.name_count() as u32)
        .map(|i| spans.name(i).to_owned())
        .collect();
    Ok(out)
}

/// The tag holding a span's busy time (ns), written by FerretLayer and
/// `in_span` futures.
pub const BUSY_TAG: &str = "busy_ns";
/// The tag holding a span's self busy time (ns).
pub const SELF_BUSY_TAG: &str = "self_busy_ns";

/// Puts a native span on the busy clock: its duration becomes its busy
/// time and its children's total the part of it that is not self busy
/// time, so that every fold reads busy durations and self times through
/// the usual fields. A span without `busy_ns` (a sync span) keeps its
/// wall times. A span with `busy_ns` but no `self_busy_ns` gets busy minus
/// its children's wall time, never below 0: exact for the spans the
/// recorder writes without it (no children's time, self busy = busy), an
/// underestimate for files recorded before self busy time was. The busy tags are removed
/// unless the caller asked for tags.
fn onto_busy_clock(rec: &mut SpanRecord, keep_tags: bool) {
    let find = |k: &str| {
        rec.tags.iter().find_map(|(key, v)| match v {
            TagValue::U64(n) if key == k => Some(*n),
            TagValue::I64(n) if key == k && *n >= 0 => Some(*n as u64),
            _ => None,
        })
    };
    let Some(busy) = find(BUSY_TAG) else {
        return;
    };
    let self_busy = find(SELF_BUSY_TAG)
        .unwrap_or_else(|| busy.saturating_sub(rec.head.child_ns))
        .min(busy);
    rec.head.dur_ns = busy;
    rec.head.child_ns = busy - self_busy;
    if !keep_tags {
        rec.tags.clear();
    }
}

/// Feeds every span of a native stream to `fold` (the fast path when the
/// fold takes heads only and the clock is wall), counting them in `n` and
/// calling `report` with (spans, bytes read) now and then. Stops early
/// when the fold is done. `busy`: `Some(keep_tags)` puts every span on the
/// busy clock first (see `onto_busy_clock`; the stream must decode tags).
pub(crate) fn feed_native(
    spans: &mut Spans<'_>,
    paths: &PathTable,
    fold: &mut impl Fold,
    busy: Option<bool>,
    n: &mut u64,
    report: &mut dyn FnMut(u64, u64),
) {
    let mut rec = SpanRecord::default();
    if fold.heads_only() && busy.is_none() {
        let mut next_report = *n + (1 << 16);
        let fields = fold.head_fields();
        while !fold.done() {
            // Counted by the block, not by the span. The fold is inlined
            // in both loops of `block_heads` (with and without a window).
            let ranges = fold.ranges();
            let Some(k) = spans.block_heads(fields, ranges, &mut FoldSink(fold)) else {
                break;
            };
            *n += k;
            if *n >= next_report {
                next_report = *n + (1 << 16);
                report(*n, spans.bytes_read());
            }
        }
    } else {
        // The filtered read costs ~40 instructions a span more than the
        // plain one: folds that keep every span take the plain one.
        let filters = fold.filters();
        while !fold.done()
            && if filters {
                spans.next_into_where(&mut rec, |h| fold.wants(h))
            } else {
                spans.next_into(&mut rec)
            }
        {
            *n += 1;
            if *n & 0xFFFF == 0 {
                report(*n, spans.bytes_read());
            }
            if let Some(keep_tags) = busy {
                onto_busy_clock(&mut rec, keep_tags);
            }
            let path = rec.path().unwrap_or(0);
            fold.span(Resolved {
                span: &rec,
                path,
                parent_path: paths.parent(path),
                name: spans.name(rec.name),
            });
            let self_ns = rec
                .duration_ns()
                .map(|d| d.saturating_sub(rec.children_ns().unwrap_or(0)));
            if let Some(s) = self_ns {
                fold.self_time(rec.name, path, s);
            }
            fold.span_self(rec.span_id(), self_ns);
        }
    }
}

/// A [`Fold`] as the sink of [`Spans::block_heads`].
struct FoldSink<'a, F>(&'a mut F);

impl<F: Fold> HeadSink for FoldSink<'_, F> {
    #[inline(always)]
    fn head(&mut self, h: &SpanHead, name: u32) {
        self.0.head_and_self(h, name);
    }

    #[inline(always)]
    fn columns(&mut self, c: &HeadColumns<'_>, names: &[u32]) {
        self.0.head_columns(c, names);
    }

    fn range(&mut self, first_start_ns: i64, last_end_ns: i64) {
        self.0.range(first_start_ns, last_end_ns);
    }
}

/// A [`Fold`] that calls `f` with every span (and ignores self times).
pub struct ForEach<F>(pub F);

impl<F: FnMut(Resolved<'_>)> Fold for ForEach<F> {
    fn span(&mut self, s: Resolved<'_>) {
        (self.0)(s)
    }
}

/// Streams every span of `sel` (tags decoded when `with_tags`) to `f`; the
/// first error `f` returns stops the scan and is returned. What exporters
/// use.
pub fn try_for_each<E: From<crate::Error>>(
    store: &Store,
    sel: &Selection,
    with_tags: bool,
    f: impl FnMut(Resolved<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<Scanned, E> {
    struct TryEach<F, E> {
        f: F,
        failed: Option<E>,
    }
    impl<F: FnMut(Resolved<'_>) -> std::result::Result<(), E>, E> Fold for TryEach<F, E> {
        fn span(&mut self, s: Resolved<'_>) {
            if let Err(e) = (self.f)(s) {
                self.failed = Some(e);
            }
        }
        fn done(&self) -> bool {
            self.failed.is_some()
        }
    }
    let mut fold = TryEach { f, failed: None };
    let opts = ScanOptions {
        with_tags,
        progress: None,
    };
    let scanned = scan(store, sel, opts, &mut fold)?;
    match fold.failed {
        Some(e) => Err(e),
        None => Ok(scanned),
    }
}
