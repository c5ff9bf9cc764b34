//! Parallel scans give exactly the results of one thread: per-name counts,
//! totals, min/max, self time, errors and percentiles, and call trees, on
//! native files split into many blocks and on ferret-io files (which one
//! thread reads).

use ferret_analyze::analysis::{
    call_tree, call_tree_threads, scan, scan_threads, select, slowest_trees, summarize,
    summarize_threads, Clock, Fold, Merge, Query, Resolved, ScanOptions, SortKey, SummaryOptions,
    TimeBound, TreeOptions,
};
use ferret_analyze::store::{HeadSink, SpanQuery, SpanRecord, Store};
use ferret_analyze::Status;
use ferret_format::codec::{HeadColumns, HeadFields, SpanHead};
use ferret_testkit::{fio_row, span, FerretIoFile, NativeFile, TestSpan};
use proptest::prelude::*;
use std::path::Path;

const ALL: SummaryOptions = SummaryOptions {
    sort: SortKey::Name,
    limit: 0,
};

/// Spans from a seed: a forest where each span's parent is an earlier
/// span or none, `names` names, durations from 0 to ~10^15 ns (so that
/// totals of a name reach far), about one error in 16.
fn forest(seed: u64, n: usize, names: usize) -> Vec<TestSpan> {
    let mut x = seed | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m.max(1)
    };
    let mut out: Vec<TestSpan> = Vec::with_capacity(n);
    for i in 0..n {
        let id = i as u64 + 1;
        let parent = if i == 0 || next(4) == 0 {
            0
        } else {
            1 + next(i as u64)
        };
        let dur = match next(4) {
            0 => next(100),
            1 => next(1_000_000),
            2 => next(1 << 40),
            _ => 1_000 + next(1 << 50),
        };
        let name = format!("n{}", next(names as u64));
        let mut s = span(id, parent, &name, i as i64 * 1000, dur, next(dur + 1));
        if next(16) == 0 {
            s = s.status(Status::Error);
        }
        out.push(s);
    }
    out
}

fn native(dir: &Path, spans: Vec<TestSpan>, block: usize) -> Store {
    let p = dir.join(format!("n{block}-{}.db", spans.len()));
    let _ = std::fs::remove_file(&p);
    NativeFile::new("run")
        .block_spans(block)
        .spans(spans)
        .write(&p);
    Store::open(&p).unwrap()
}

fn assert_same(store: &Store, q: &Query, threads: usize) {
    let one = summarize(store, q, &ALL, None).unwrap();
    let par = summarize_threads(store, q, &ALL, threads, None).unwrap();
    assert_eq!(par, one, "summary with {threads} threads");
    // Percentiles compared bit for bit, not only as floats.
    for (a, b) in par.stats.iter().zip(&one.stats) {
        for (x, y) in [
            (a.p50_ns, b.p50_ns),
            (a.p95_ns, b.p95_ns),
            (a.p99_ns, b.p99_ns),
        ] {
            assert_eq!(x.to_bits(), y.to_bits(), "{}", a.name);
        }
    }
    let t1 = call_tree(store, q).unwrap();
    let tn = call_tree_threads(store, q, threads).unwrap();
    assert_eq!(tn, t1, "call tree with {threads} threads");
    if !q.has_window() {
        assert_same_trees(store, q, threads);
    }
}

/// `analyze --tree`: the slowest trees, orphans' missing parents included,
/// are the same whatever the thread count.
fn assert_same_trees(store: &Store, q: &Query, threads: usize) {
    let opts = |threads| TreeOptions {
        top: 7,
        max_children: 5,
        threads,
    };
    let one = slowest_trees(store, q, &opts(1)).unwrap();
    let par = slowest_trees(store, q, &opts(threads)).unwrap();
    assert_eq!(par, one, "slowest trees with {threads} threads");
}

/// The forest with every `gap`-th span lost (as a recorder that dropped
/// spans leaves it): their children are orphans.
fn lossy(spans: Vec<TestSpan>, gap: u64) -> Vec<TestSpan> {
    spans.into_iter().filter(|s| s.id % gap != 0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whole runs, and lossy ones (every `lost`-th span missing, for 2 to
    /// 8), whose orphans `--tree` shows under their missing parents.
    #[test]
    fn native_parallel_equals_serial(
        seed in any::<u64>(),
        n in 1usize..1500,
        names in 1usize..120,
        block in 1usize..64,
        lost in 0u64..9,
        threads in 2usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut spans = forest(seed, n, names);
        if lost >= 2 {
            spans = lossy(spans, lost);
        }
        let store = native(dir.path(), spans, block);
        assert_same(&store, &Query::latest(), threads);
    }
}

/// Every orphan's missing parent is found: the set of span ids is exact, so
/// no present id stands in for an absent one (the Bloom filter of 16 bits per
/// id used before hid about one orphan in 3,000: some 7 of these 20,000).
#[test]
fn every_missing_parent_of_a_big_lossy_run_is_a_root() {
    let dir = tempfile::tempdir().unwrap();
    // 60,000 present spans (ids 1..=60,000, roots), and 20,000 orphans whose
    // parents (ids above 10^9, spread out) were lost, each slower than
    // every present root.
    let mut spans: Vec<TestSpan> = (1..=60_000u64)
        .map(|i| span(i, 0, "present", i as i64 * 10, 5, 0))
        .collect();
    spans.extend((0..20_000u64).map(|i| {
        let id = 100_000 + i;
        let lost_parent = 1_000_000_000 + i * 7_919;
        span(id, lost_parent, "orphan", i as i64 * 10, 1_000 + i, 0)
    }));
    let store = native(dir.path(), spans, 512);
    for threads in [1, 2] {
        let t = slowest_trees(
            &store,
            &Query::latest(),
            &TreeOptions {
                top: 20_000,
                max_children: 5,
                threads,
            },
        )
        .unwrap();
        let missing = t.roots.iter().filter(|&&r| t.nodes[r].missing).count();
        assert_eq!(missing, 20_000, "{threads} threads");
    }
}

#[test]
fn native_parallel_equals_serial_with_a_time_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path(), forest(7, 5000, 40), 37);
    let q = Query {
        since: Some(TimeBound::UnixNs(1_000_000)),
        until: Some(TimeBound::UnixNs(4_000_000)),
        ..Query::latest()
    };
    assert_same(&store, &q, 2);
    assert_same(&store, &q, 3);
    let s = summarize_threads(&store, &q, &ALL, 2, None).unwrap();
    assert_eq!(s.spans, 3000, "spans starting in [1 ms, 4 ms)");
}

/// Every head it sees, slowly: the helper threads then surely get chunks.
#[derive(Default)]
struct Heads(Vec<(u64, u32, u64)>);

impl Fold for Heads {
    fn heads_only(&self) -> bool {
        true
    }
    fn head(&mut self, h: &SpanHead, name: u32) {
        std::thread::sleep(std::time::Duration::from_micros(20));
        self.0.push((h.id, name, h.dur_ns));
    }
    fn span(&mut self, _: Resolved<'_>) {}
}

impl Merge for Heads {
    fn fresh(&self) -> Self {
        Heads::default()
    }
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }
}

#[test]
fn threads_share_the_blocks_and_see_each_span_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path(), forest(3, 4000, 10), 25);
    let sel = select(&store, &Query::latest()).unwrap();
    let mut one = Heads::default();
    let s1 = scan(&store, &sel, ScanOptions::default(), &mut one).unwrap();
    let mut par = Heads::default();
    let s2 = scan_threads(&store, &sel, ScanOptions::default(), 2, &mut par).unwrap();
    assert_eq!(s1.threads, 1);
    assert_eq!(s2.threads, 2, "both threads read chunks");
    assert_eq!(s2.spans, 4000);
    assert_eq!(s2.names, s1.names);
    one.0.sort_unstable();
    par.0.sort_unstable();
    assert_eq!(par.0, one.0, "every span exactly once");
}

#[test]
fn damaged_blocks_are_counted_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path(), forest(11, 3000, 20), 30);
    let path = store.path().to_path_buf();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE ferret_blocks SET data = x'00ff' WHERE id % 7 = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    let one = summarize(&store, &Query::latest(), &ALL, None).unwrap();
    assert!(one.skipped_rows > 0);
    assert_same(&store, &Query::latest(), 2);
}

#[test]
fn ferret_io_reads_with_one_thread_and_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fio.db");
    let mut rows = vec![fio_row("root", None, "r", "main", 100.0, Some(50.0), "ok")];
    for i in 0..500 {
        let id = format!("c{i}");
        let start = 100.0 + i as f64 * 0.05;
        let status = if i % 50 == 0 { "error" } else { "ok" };
        rows.push(fio_row(
            &id,
            Some("root"),
            "r",
            &format!("module_{}.function_{}", i % 3, i % 7),
            start,
            Some(0.01 + (i % 13) as f64 * 0.001),
            status,
        ));
    }
    FerretIoFile::new().rows(rows).write(&p);
    let store = Store::open(&p).unwrap();
    assert_same(&store, &Query::latest(), 2);
    let sel = select(&store, &Query::latest()).unwrap();
    struct Count(u64);
    impl Fold for Count {
        fn span(&mut self, _: Resolved<'_>) {
            self.0 += 1;
        }
    }
    impl Merge for Count {
        fn fresh(&self) -> Self {
            Count(0)
        }
        fn merge(&mut self, o: Self) {
            self.0 += o.0;
        }
    }
    let mut c = Count(0);
    let s = scan_threads(&store, &sel, ScanOptions::default(), 4, &mut c).unwrap();
    assert_eq!((s.threads, c.0), (1, 501));
}

/// The native fast path (fixed fields only, one loop per block, with or
/// without a time window to test) gives the summary and call tree of the
/// record path (which the busy clock takes; spans without busy tags keep
/// their wall times), with few names and with enough to stage durations.
#[test]
fn fast_path_equals_the_record_path() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, names) in [(5, 10), (9, 200)] {
        let store = native(dir.path(), forest(seed, 6000 + names, names), 41);
        let plain = Query::latest();
        let records = Query {
            clock: Clock::Busy,
            ..Query::latest()
        };
        let everything = Query {
            since: Some(TimeBound::UnixNs(i64::MIN)),
            until: Some(TimeBound::UnixNs(i64::MAX)),
            ..Query::latest()
        };
        let fast = summarize(&store, &plain, &ALL, None).unwrap();
        assert_eq!(fast.stats.len(), names);
        assert_eq!(summarize(&store, &records, &ALL, None).unwrap(), fast);
        assert_eq!(summarize(&store, &everything, &ALL, None).unwrap(), fast);
        let tree = call_tree(&store, &plain).unwrap();
        assert_eq!(call_tree(&store, &records).unwrap(), tree);
        assert_eq!(call_tree(&store, &everything).unwrap(), tree);
    }
}

/// The forest with tags and custom statuses on some spans: blocks with
/// tails for whole-span readers, which readers of heads do not read.
fn tailed(seed: u64, n: usize) -> Vec<TestSpan> {
    forest(seed, n, 20)
        .into_iter()
        .map(|s| match s.id % 5 {
            0 => s.tag("k", "a tag value long enough to need bytes"),
            1 => s.status(Status::Custom("a custom status".into())),
            _ => s,
        })
        .collect()
}

/// Opens the file of `store` again after `sql` changed its blocks.
fn damaged(store: Store, sql: &str) -> Store {
    let path = store.path().to_path_buf();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert!(conn.execute(sql, []).unwrap() > 0);
    drop(conn);
    Store::open(&path).unwrap()
}

/// Readers of heads read a block only up to its last head column: damage
/// confined to the tails (here, the tails' last bytes cut off) does not
/// reach them, while readers of whole spans (the busy clock) skip the
/// rest of each such block, with one thread as with two.
#[test]
fn damaged_tails_leave_head_folds_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path(), tailed(13, 3000), 40);
    let before = summarize(&store, &Query::latest(), &ALL, None).unwrap();
    let tree_before = call_tree(&store, &Query::latest()).unwrap();
    let store = damaged(
        store,
        "UPDATE ferret_blocks SET data = substr(data, 1, length(data) - 3) WHERE id % 3 = 1",
    );
    let after = summarize(&store, &Query::latest(), &ALL, None).unwrap();
    assert_eq!(after, before);
    assert_eq!(call_tree(&store, &Query::latest()).unwrap(), tree_before);
    let busy = Query {
        clock: Clock::Busy,
        ..Query::latest()
    };
    let whole = summarize(&store, &busy, &ALL, None).unwrap();
    assert!(whole.skipped_rows > 0 && whole.spans < before.spans);
    assert_same(&store, &Query::latest(), 2);
    assert_eq!(
        summarize_threads(&store, &busy, &ALL, 2, None).unwrap(),
        whole
    );
}

/// A block whose sections do not fit in it (cut inside its columns) is
/// refused before any span by every reader, the ones that read only a
/// prefix of it included.
#[test]
fn blocks_cut_inside_their_columns_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path(), tailed(17, 3000), 40);
    let blocks = 3000u64.div_ceil(40);
    let store = damaged(
        store,
        "UPDATE ferret_blocks SET data = substr(data, 1, length(data) / 2) WHERE id % 4 = 2",
    );
    let cut = blocks.div_ceil(4);
    let heads = summarize(&store, &Query::latest(), &ALL, None).unwrap();
    let busy = Query {
        clock: Clock::Busy,
        ..Query::latest()
    };
    let whole = summarize(&store, &busy, &ALL, None).unwrap();
    assert!(heads.skipped_rows >= cut - 1 && heads.skipped_rows <= cut);
    assert_eq!(whole.skipped_rows, heads.skipped_rows);
    assert_eq!(heads.spans, 3000 - 40 * heads.skipped_rows);
    assert_eq!(whole.spans, heads.spans);
    assert_same(&store, &Query::latest(), 2);
}

/// A stream read for heads, then for whole spans, reads the blocks left
/// whole: every span once, with its status and tags, and a block that is
/// not a blob counted once though its page was fetched twice.
#[test]
fn a_stream_read_for_heads_then_whole_spans_gets_whole_blocks() {
    struct Count(u64);
    impl HeadSink for Count {
        fn head(&mut self, _: &SpanHead, _: u32) {
            self.0 += 1;
        }
        fn columns(&mut self, c: &HeadColumns<'_>, _: &[u32]) {
            self.0 += c.len() as u64;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spans = tailed(19, 1000);
    let tagged = spans.iter().filter(|s| s.id % 5 == 0).count();
    let store = damaged(
        native(dir.path(), spans, 40),
        "UPDATE ferret_blocks SET data = 'text' WHERE id = 5",
    );
    let run = store.latest_run().unwrap();
    let q = SpanQuery {
        with_tags: true,
        ..SpanQuery::default()
    };
    let mut s = store.spans(&run, &q).unwrap();
    let mut heads = Count(0);
    let mut n = 0;
    for _ in 0..3 {
        n += s
            .block_heads(HeadFields::DURATION, false, &mut heads)
            .unwrap();
    }
    assert_eq!((n, heads.0), (120, 120));
    let (mut rec, mut seen_tags, mut custom) = (SpanRecord::default(), 0, 0);
    while s.next_into(&mut rec) {
        n += 1;
        seen_tags += usize::from(!rec.tags.is_empty());
        custom += usize::from(matches!(rec.status, Status::Custom(_)));
    }
    assert_eq!((n, s.skipped_rows()), (1000 - 40, 1));
    assert!(seen_tags > 0 && seen_tags < tagged && custom > 0);
}
