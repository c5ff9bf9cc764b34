//! `--threads`: the same output for any thread count, and a clear error
//! for a count that is not one.

mod support;

use ferret_testkit::{span, NativeFile};
use support::{output, s, stdout_ok};

fn file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("t.db");
    let mut spans = vec![];
    for i in 0..3000u64 {
        let parent = if i % 10 == 0 { 0 } else { i / 10 * 10 + 1 };
        let name = ["request", "db.query", "render", "cache.get"][(i % 4) as usize];
        spans.push(span(
            i + 1,
            parent,
            name,
            i as i64 * 100,
            50 + i * 7 % 1000,
            0,
        ));
    }
    NativeFile::new("r").block_spans(40).spans(spans).write(&p);
    p
}

#[test]
fn analyze_tree_and_calltree_print_the_same_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path());
    for cmd in [
        &["analyze", s(&p), "--format", "json", "--limit", "0"][..],
        &["analyze", s(&p), "--tree", "--top", "5", "--format", "json"][..],
        &["calltree", s(&p), "--format", "json"][..],
    ] {
        let one = stdout_ok(&[cmd, &["--threads", "1"]].concat());
        for t in ["2", "3", "8"] {
            assert_eq!(
                stdout_ok(&[cmd, &["--threads", t]].concat()),
                one,
                "{cmd:?} -t {t}"
            );
        }
        assert_eq!(stdout_ok(cmd), one, "{cmd:?} with the default count");
    }
}

#[test]
fn a_thread_count_below_one_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path());
    for bad in ["0", "1.5", "two"] {
        let o = output(&["analyze", s(&p), "--threads", bad]);
        assert_eq!(o.status.code(), Some(2), "--threads {bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--threads"), "{err}");
    }
}
