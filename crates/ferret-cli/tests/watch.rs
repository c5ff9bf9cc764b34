//! `ferret watch`: the library's watcher against a live recorder and a
//! replayed run (injected clock), the CLI's `--once` against a live
//! writer, bad input, and the terminal UI end to end under tmux.

mod support;

use ferret_analyze::live::{WatchOptions, Watcher};
use ferret_testkit::{span, NativeFile};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{bin, run_with, s, Run};

const S: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn count_of(w: &Watcher, now: i64, name: &str) -> u64 {
    w.snapshot(now)
        .rows
        .iter()
        .find(|r| r.name == name)
        .map_or(0, |r| r.count)
}

#[test]
fn watcher_reads_each_commit_of_a_live_recorder_once() {
    let _g = ferret_testkit::serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let p = ferret::Profiler::open(&db).unwrap();
    p.install();
    for _ in 0..100 {
        let _s = ferret::span("first");
    }
    p.flush().unwrap();
    let mut w = Watcher::open(&db, WatchOptions::default(), now_ns()).unwrap();
    assert!(w.poll(now_ns()).unwrap());
    assert_eq!(count_of(&w, now_ns(), "first"), 100);
    for _ in 0..50 {
        let _s = ferret::span("second");
    }
    p.flush().unwrap();
    assert!(w.poll(now_ns()).unwrap(), "a commit shows at the next poll");
    let now = now_ns();
    assert_eq!(
        count_of(&w, now, "first"),
        100,
        "old blocks are not read again"
    );
    assert_eq!(count_of(&w, now, "second"), 50);
    assert!(!w.poll(now_ns()).unwrap(), "no commit, nothing read");
    let h = w.header(now_ns());
    assert_eq!(h.processes.len(), 1, "the recorder is live: {h:?}");
    assert_eq!(h.processes[0].pid, std::process::id());
    p.close().unwrap();
    w.poll(now_ns()).unwrap();
    assert!(
        w.header(now_ns()).processes.is_empty(),
        "closed: not live any more"
    );
}

#[test]
fn attach_reads_only_the_recent_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    // Spans that ended an hour before "now": outside any window.
    let t = 1_000 * S;
    NativeFile::new("r")
        .spans((1..=20).map(|i| span(i, 0, "old", t + i as i64 * S / 10, 1_000, 0)))
        .write(&db);
    let mut w = Watcher::open(&db, WatchOptions::default(), t + 3600 * S).unwrap();
    w.poll(t + 3600 * S).unwrap();
    assert_eq!(
        w.view().spans_seen,
        0,
        "nothing older than the window is read"
    );
    // Attached within the window, the same spans are read.
    let mut w = Watcher::open(&db, WatchOptions::default(), t + 5 * S).unwrap();
    w.poll(t + 5 * S).unwrap();
    assert_eq!(count_of(&w, t + 5 * S, "old"), 20);
}

#[test]
fn replay_follows_an_injected_clock_at_its_speed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    // One span ending every 100 ms for 10 s of run time, from t = 1000 s.
    let t = 1_000 * S;
    NativeFile::new("r")
        .spans((0..100).map(|i| span(i + 1, 0, "tick", t + i as i64 * S / 10, 1_000, 0)))
        .write(&db);
    let wall = 50_000 * S;
    let opts = WatchOptions {
        replay_speed: Some(4.0),
        window_s: 60,
        ..WatchOptions::default()
    };
    let mut w = Watcher::open(&db, opts, wall).unwrap();
    w.poll(wall).unwrap();
    assert_eq!(
        w.view_time(wall),
        t,
        "replay starts at the run's first span"
    );
    // One wall second at 4x: 4 s of the run, 40 spans (ends at 0.1 s steps).
    w.poll(wall + S).unwrap();
    assert_eq!(w.view_time(wall + S), t + 4 * S);
    let n = count_of(&w, wall + S, "tick");
    assert!((39..=41).contains(&n), "{n}");
    // Paused: the replay clock stops.
    let at = w.view_time(wall + S);
    w.view_mut().toggle_pause(at);
    w.poll(wall + 2 * S).unwrap();
    assert_eq!(w.view_time(wall + 2 * S), t + 4 * S);
    w.view_mut().toggle_pause(at);
    w.poll(wall + 5 * S).unwrap();
    assert_eq!(count_of(&w, wall + 5 * S, "tick"), 100);
    assert!(w.replay_done());
}

fn paced_demo(db: &Path, spans: u64, pace: u64) -> Child {
    Command::new(bin())
        .args(["demo", "--db", s(db), "--no-analyze", "--threads", "1"])
        .args(["--spans", &spans.to_string(), "--pace", &pace.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the recorder has committed its first block.
fn wait_for_spans(db: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(c) =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        {
            let n: rusqlite::Result<i64> =
                c.query_row("SELECT count(*) FROM ferret_blocks", [], |r| r.get(0));
            if n.is_ok_and(|n| n > 0) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the demo wrote nothing into {}", db.display());
}

#[test]
fn once_json_against_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("svc.db");
    let mut demo = paced_demo(&db, 40_000, 4_000);
    wait_for_spans(&db);
    let o = run_with(
        &[
            "watch",
            s(&db),
            "--once",
            "--window",
            "2s",
            "--format",
            "json",
        ],
        &Run {
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        },
    );
    let _ = demo.kill();
    let _ = demo.wait();
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let snap = &v["snapshot"];
    let rows = snap["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["handle_request", "db.query", "render"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // About 4,000 spans/s paced (8 of a request's spans are named): the
    // window's rate is within a loose band on a busy machine.
    let rate = snap["spans_per_sec"].as_f64().unwrap();
    assert!((1_000.0..8_000.0).contains(&rate), "rate {rate}");
    let hr = rows.iter().find(|r| r["name"] == "handle_request").unwrap();
    assert!(hr["rate"].as_f64().unwrap() > 100.0, "{hr}");
    assert!(hr["p99_ns"].as_u64().unwrap() >= hr["p50_ns"].as_u64().unwrap());
    let procs = v["header"]["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "the demo is live: {v}");
    assert_eq!(procs[0]["pid"].as_u64(), Some(demo.id() as u64));
    assert_eq!(procs[0]["stale"], false);
    // The demo's main thread waits inside `demo.paced` the whole time: the
    // recorder's in-flight snapshot shows it, open since the start.
    let open = snap["inflight"].as_array().unwrap();
    let paced = open
        .iter()
        .find(|r| r["name"] == "demo.paced")
        .unwrap_or_else(|| panic!("demo.paced in flight: {}", snap["inflight"]));
    assert_eq!(paced["busy"], true);
    assert_eq!(paced["stack"], serde_json::json!(["demo.paced"]));
    assert!(
        paced["open_ns"].as_u64().unwrap() >= 1_000_000_000,
        "{paced}"
    );
}

#[test]
fn bad_input_exits_2_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a trace\n").unwrap();
    for (args, want) in [
        (vec!["watch", s(&missing), "--once"], "no such file"),
        (vec!["watch", s(&text), "--once"], "not an SQLite database"),
        (vec!["watch", s(&text), "--window", "1.5s"], "bad window"),
    ] {
        let o = run_with(&args, &Run::default());
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{args:?}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"));
    }
}

#[test]
fn file_deleted_while_watching_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gone.db");
    NativeFile::new("r")
        .span(span(1, 0, "x", now_ns(), 1_000, 0))
        .write(&db);
    let child = Command::new(bin())
        .args(["watch", s(&db), "--once", "--window", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    std::fs::remove_file(&db).unwrap();
    let t0 = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "noticed within a poll or two"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gone.db") && err.contains("no such file"),
        "{err}"
    );
}

/// tmux, or `None` (the test then says it was skipped).
fn tmux() -> Option<&'static str> {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some("tmux")
}

fn capture(session: &str) -> String {
    let o = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls the tmux pane until `f` accepts it.
fn wait_screen(session: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let screen = capture(session);
        if f(&screen) {
            return screen;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            panic!("timed out waiting for {what}; screen:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tui_under_tmux_shows_names_rates_and_quits_cleanly() {
    let Some(tmux) = tmux() else {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux); the TUI end-to-end test did not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("svc.db");
    let done = dir.path().join("exit-code");
    let mut demo = paced_demo(&db, 100_000, 5_000);
    wait_for_spans(&db);
    // A stall threshold the paced span passes quickly: shown in red.
    let session = format!("ferret-watch-{}", std::process::id());
    let cmd = format!(
        "{} watch {} --window 5s --stall-threshold 1s; echo $? > {}; sleep 30",
        bin(),
        s(&db),
        s(&done)
    );
    let st = Command::new(tmux)
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "110",
            "-y",
            "30",
            &cmd,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    let screen = wait_screen(&session, "names, rates and the in-flight span", |sc| {
        sc.contains("handle_request")
            && sc.contains("db.query")
            && sc.contains("spans/s")
            && sc.contains("busy  pid")
            && sc.contains("demo.paced")
    });
    let rate_line = screen
        .lines()
        .find(|l| l.contains("spans/s"))
        .unwrap()
        .to_owned();
    assert!(
        rate_line.contains("LIVE") || screen.contains("LIVE"),
        "{screen}"
    );
    let rate: f64 = rate_line
        .split("spans/s ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|r| {
            r.trim_end_matches('k').parse::<f64>().unwrap()
                * if r.ends_with('k') { 1e3 } else { 1.0 }
        })
        .unwrap();
    assert!(rate > 100.0, "{rate_line}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("demo.paced") && l.contains("STALLED")),
        "{screen}"
    );
    if std::env::var_os("FERRET_WATCH_SCREEN").is_some() {
        eprintln!("{screen}");
    }
    // The help overlay, then any key closes it.
    Command::new(tmux)
        .args(["send-keys", "-t", &session, "?"])
        .status()
        .unwrap();
    wait_screen(&session, "help", |sc| sc.contains("cycle the sort"));
    Command::new(tmux)
        .args(["send-keys", "-t", &session, "x"])
        .status()
        .unwrap();
    // Filter, then quit.
    Command::new(tmux)
        .args(["send-keys", "-t", &session, "/", "r", "e", "n", "Enter"])
        .status()
        .unwrap();
    wait_screen(&session, "the filter", |sc| {
        sc.contains("filter 'ren'")
            && sc.contains("│render")
            && !sc.lines().any(|l| l.starts_with("│db.query"))
    });
    Command::new(tmux)
        .args(["send-keys", "-t", &session, "q"])
        .status()
        .unwrap();
    let t0 = Instant::now();
    while !done.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = demo.kill();
    let _ = demo.wait();
    let code = std::fs::read_to_string(&done).expect("watch exited after q");
    assert_eq!(code.trim(), "0");
    // The terminal is back: the alternate screen is gone with the table.
    let after = capture(&session);
    assert!(!after.contains("sort self"), "{after}");
}

#[test]
fn once_json_on_a_ferret_io_file_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("py.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
    support::fio_schema(&conn, true);
    // ferret-io logs a span when it ends: the child first, then its parent.
    let write = |i: u64| {
        let now = now_ns() as f64 / 1e9;
        let (start, id, child) = (now - 0.010, format!("{i:032x}"), format!("c{i:031x}"));
        for (ts, row) in [
            (
                now - 0.004,
                support::fio_row(&child, Some(&id), "py", "io", start + 0.002, Some(0.006)),
            ),
            (
                now,
                support::fio_row(&id, None, "py", "request", start, Some(0.010)),
            ),
        ] {
            conn.execute(
                "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                rusqlite::params![ts, row],
            )
            .unwrap();
        }
    };
    write(0);
    let child = Command::new(bin())
        .args([
            "watch",
            s(&db),
            "--once",
            "--window",
            "2s",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut i = 1;
    while t0.elapsed() < Duration::from_millis(2500) {
        write(i);
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["header"]["format"], "ferret-io");
    let rows = v["snapshot"]["rows"].as_array().unwrap();
    let get = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {v}"))
    };
    let (req, io) = (get("request"), get("io"));
    assert!(req["count"].as_u64().unwrap() >= 20, "{req}");
    // A pair whose child (logged 4 ms before its parent) fell just outside
    // the window start counts one request more than children; a snapshot
    // read between a pair's two rows (each its own transaction, as
    // ferret-io commits them) counts one child more than requests.
    let (rc, ic) = (
        req["count"].as_u64().unwrap(),
        io["count"].as_u64().unwrap(),
    );
    assert!(rc.abs_diff(ic) <= 1, "{req} vs {io}");
    assert_eq!(req["max_ns"].as_u64(), Some(10_000_000));
    // Self time: the request's 10 ms minus its child's 6 ms.
    let self_each = req["self_ns"].as_u64().unwrap() / req["count"].as_u64().unwrap();
    assert!((3_900_000..=4_100_000).contains(&self_each), "{req}");
}

#[test]
fn tui_file_deleted_while_watching_exits_2_with_the_terminal_restored() {
    let Some(tmux) = tmux() else {
        eprintln!(
            "SKIPPED: tmux is not installed (apt-get install tmux); the TUI error test did not run"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("doomed.db");
    NativeFile::new("r")
        .span(span(1, 0, "doomed_span", now_ns(), 1_000, 0))
        .write(&db);
    let done = dir.path().join("exit-code");
    let session = format!("ferret-watch-del-{}", std::process::id());
    let cmd = format!(
        "{} watch {} 2> {}; echo $? > {}; sleep 30",
        bin(),
        s(&db),
        s(&dir.path().join("stderr")),
        s(&done)
    );
    assert!(Command::new(tmux)
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "100",
            "-y",
            "25",
            &cmd
        ])
        .status()
        .unwrap()
        .success());
    let _kill = scopeguard(session.clone());
    wait_screen(&session, "the span", |sc| sc.contains("doomed_span"));
    std::fs::remove_file(&db).unwrap();
    let t0 = Instant::now();
    while !done.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = std::fs::read_to_string(&done).expect("watch exited");
    assert_eq!(code.trim(), "2");
    let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        err.contains("doomed.db") && err.contains("no such file"),
        "{err}"
    );
    // Back on the normal screen: the table is gone.
    let after = capture(&session);
    assert!(!after.contains("doomed_span"), "{after}");
}

/// Kills the tmux session when dropped.
fn scopeguard(session: String) -> impl Drop {
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    Kill(session)
}
