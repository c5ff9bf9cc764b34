//! Fleet analysis: the analysis of many files equals the analysis of one
//! file holding the same spans (native and ferret-io), percentiles too.

use ferret_analyze::analysis::{
    call_tree, call_tree_many, summarize, summarize_many, CallTree, Query, SortKey, SummaryOptions,
};
use ferret_analyze::store::Store;
use ferret_analyze::Status;
use ferret_testkit::{fio_row, span, FerretIoFile, NativeFile, TestSpan};
use std::collections::BTreeMap;
use std::path::Path;

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `traces` call trees: a root with 1-4 children (`db`, `cache`, `render`),
/// `render` with a `template` child; `rare` under about one root in three
/// (so a file alone has fewer values than the exact sketch keeps, the
/// fleet more). Returns the spans of each trace, parents first.
fn traces(n: usize) -> Vec<Vec<TestSpan>> {
    let mut rng = Lcg(7);
    let mut id = 1u64;
    let mut out = Vec::new();
    for t in 0..n {
        let start = t as i64 * 1_000_000_000;
        let root_id = id;
        id += 1;
        let mut kids = Vec::new();
        let mut at = start + 10;
        let mut child_sum = 0;
        let k = 1 + rng.next(4);
        for c in 0..k {
            let name = ["db", "cache", "render"][(c as usize + t) % 3];
            let dur = 1_000 + rng.next(5_000_000);
            let kid_id = id;
            id += 1;
            let mut grand = Vec::new();
            let mut gsum = 0;
            if name == "render" {
                let gd = dur / 3 + rng.next(dur / 2);
                grand.push(span(id, kid_id, "template", at + 1, gd, 0));
                id += 1;
                gsum = gd;
            }
            let mut s = span(kid_id, root_id, name, at, dur, gsum);
            if rng.next(20) == 0 {
                s = s.status(Status::Error);
            }
            kids.push(s);
            kids.extend(grand);
            at += dur as i64 + 5;
            child_sum += dur;
        }
        if rng.next(3) == 0 {
            let dur = 100 + rng.next(10_000);
            kids.push(span(id, root_id, "rare", at, dur, 0));
            id += 1;
            at += dur as i64 + 5;
            child_sum += dur;
        }
        let root = span(
            root_id,
            0,
            "request",
            start,
            (at - start) as u64 + 7,
            child_sum,
        );
        let mut all = vec![root];
        all.extend(kids);
        out.push(all);
    }
    out
}

fn paths_of(t: &CallTree) -> BTreeMap<String, (u64, u64, u64, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = t.roots.iter().map(|&r| (r, String::new())).collect();
    while let Some((i, prefix)) = stack.pop() {
        let n = &t.nodes[i];
        let p = format!("{prefix}/{}", n.name);
        out.insert(
            p.clone(),
            (n.count, n.total_ns, n.self_ns, n.max_ns, n.error_count),
        );
        stack.extend(n.children.iter().map(|&c| (c, p.clone())));
    }
    out
}

fn check_equal(one: &Path, many: &[std::path::PathBuf]) {
    let opts = SummaryOptions {
        sort: SortKey::Total,
        limit: 0,
    };
    let open = |p: &Path| Store::open(p).unwrap();
    let single = summarize(&open(one), &Query::latest(), &opts, None).unwrap();
    let stores: Vec<Store> = many.iter().map(|p| open(p)).collect();
    let fleet = summarize_many(stores, &Query::latest(), &opts).unwrap();
    assert!(single
        .stats
        .iter()
        .any(|s| s.name == "rare" && s.count > 64));
    assert_eq!(
        fleet.stats, single.stats,
        "per-name statistics, percentiles included"
    );
    assert_eq!(fleet.spans, single.spans);
    assert_eq!(fleet.wall_ns, single.wall_ns);
    let t1 = call_tree(&open(one), &Query::latest()).unwrap();
    let stores: Vec<Store> = many.iter().map(|p| open(p)).collect();
    let tn = call_tree_many(stores, &Query::latest()).unwrap();
    assert_eq!(paths_of(&tn), paths_of(&t1));
    assert_eq!(tn.total_ns, t1.total_ns);
    assert_eq!(tn.spans, t1.spans);
}

#[test]
fn native_files_merge_like_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let ts = traces(400);
    let one = dir.path().join("one.db");
    NativeFile::new("all")
        .spans(ts.iter().flatten().cloned())
        .write(&one);
    let many: Vec<_> = (0..3)
        .map(|f| {
            let p = dir.path().join(format!("f{f}.db"));
            NativeFile::new(&format!("r{f}"))
                .spans(ts.iter().skip(f).step_by(3).flatten().cloned())
                .write(&p);
            p
        })
        .collect();
    check_equal(&one, &many);
}

fn fio_rows<'a>(ts: impl Iterator<Item = &'a Vec<TestSpan>>, run: &str) -> Vec<String> {
    let mut rows: Vec<(i64, String)> = Vec::new();
    for t in ts {
        for s in t {
            let parent = (s.parent != 0).then(|| s.parent.to_string());
            let status = if s.status.is_error() { "error" } else { "ok" };
            rows.push((
                s.start,
                fio_row(
                    &s.id.to_string(),
                    parent.as_deref(),
                    run,
                    &s.name,
                    s.start as f64 / 1e9,
                    Some(s.dur as f64 / 1e9),
                    status,
                ),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

#[test]
fn ferret_io_files_merge_like_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let ts = traces(300);
    let one = dir.path().join("one.db");
    FerretIoFile::new()
        .rows(fio_rows(ts.iter(), "all"))
        .write(&one);
    let many: Vec<_> = (0..3)
        .map(|f| {
            let p = dir.path().join(format!("f{f}.db"));
            FerretIoFile::new()
                .rows(fio_rows(ts.iter().skip(f).step_by(3), &format!("r{f}")))
                .write(&p);
            p
        })
        .collect();
    check_equal(&one, &many);
}

#[test]
fn a_run_is_merged_wherever_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let ts = traces(30);
    let paths: Vec<_> = (0..3)
        .map(|f| {
            let p = dir.path().join(format!("f{f}.db"));
            let run = if f == 1 { "other" } else { "shared" };
            NativeFile::new(run)
                .spans(ts.iter().skip(f).step_by(3).flatten().cloned())
                .write(&p);
            p
        })
        .collect();
    let open = || {
        paths
            .iter()
            .map(|p| Store::open(p).unwrap())
            .collect::<Vec<_>>()
    };
    let opts = SummaryOptions::default();
    let s = summarize_many(open(), &Query::run("shared"), &opts).unwrap();
    let want: usize = ts
        .iter()
        .step_by(3)
        .chain(ts.iter().skip(2).step_by(3))
        .map(Vec::len)
        .sum();
    assert_eq!(s.spans, want as u64);
    assert_eq!(s.run_id, "shared");
    let e = summarize_many(open(), &Query::run("nope"), &opts).unwrap_err();
    assert!(e.to_string().contains("no run 'nope'"), "{e}");
}
