//! `ferret dump`, `ferret stalls` and the live part of `ferret runs`, on a
//! file this test's own process is recording into.

mod support;
use ferret_analyze::store::{live, Store};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{output, stdout_ok as ferret};

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dump_and_stalls_of_a_live_process_then_a_crashed_one() {
    let _one = ferret_testkit::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = path.to_str().unwrap();
    let p = ferret::Profiler::builder(&path)
        .run_id("live")
        .heartbeat_interval(Some(Duration::from_millis(20)))
        .stall_threshold(Duration::from_millis(60))
        .stall_reports_on_stderr(false)
        .open()
        .unwrap();
    p.install();
    let hold = Arc::new(Barrier::new(2));
    let worker = {
        let hold = hold.clone();
        std::thread::Builder::new()
            .name("server-1".into())
            .spawn(move || {
                let _o = ferret::span("serve").with_tag("route", "/checkout");
                let _i = ferret::span("query").with_tag("table", "orders");
                hold.wait();
                hold.wait();
            })
            .unwrap()
    };
    hold.wait();
    eventually("a stall report and a snapshot", || {
        let s = Store::open(&path).ok()?;
        let ok =
            !live::stalls(&s, None).ok()?.is_empty() && live::inflight(&s, None).ok()?.len() == 2;
        ok.then_some(())
    });

    let text = ferret(&["dump", db]);
    let pid = std::process::id();
    assert!(text.contains(&format!("process {pid} on ")), "{text}");
    assert!(text.contains("run live: running, heartbeat "), "{text}");
    assert!(text.contains("thread \"server-1\" (tid "), "{text}");
    let serve = text
        .lines()
        .find(|l| l.trim_start().starts_with("serve"))
        .unwrap();
    let query = text
        .lines()
        .find(|l| l.trim_start().starts_with("query"))
        .unwrap();
    assert!(serve.contains("route=\"/checkout\""), "{text}");
    assert!(query.contains("table=\"orders\""), "{text}");
    let indent = |l: &str| l.len() - l.trim_start().len();
    assert_eq!(indent(query), indent(serve) + 2, "{text}");

    let v: serde_json::Value =
        serde_json::from_str(&ferret(&["dump", db, "--format", "json"])).unwrap();
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0]["state"], "running");
    assert_eq!(procs[0]["heartbeat"]["pid"], pid);
    let spans = procs[0]["spans"].as_array().unwrap();
    assert_eq!(spans[1]["name"], "query");
    assert_eq!(spans[1]["depth"], 1);
    assert_eq!(spans[1]["entered"], true);
    assert_eq!(spans[1]["thread_name"], "server-1");

    let table = ferret(&["stalls", db]);
    assert!(table.contains("server-1"), "{table}");
    assert!(table.contains("serve › query"), "{table}");
    assert!(table.contains(" stall "), "{table}");
    let blocks = ferret(&["stalls", db, "--format", "text"]);
    assert!(blocks.contains("thread \"server-1\" (tid "), "{blocks}");
    assert!(blocks.contains(" busy "), "{blocks}");
    assert!(blocks.contains("table=\"orders\""), "{blocks}");

    let runs: serde_json::Value =
        serde_json::from_str(&ferret(&["runs", db, "--format", "json"])).unwrap();
    assert_eq!(runs[0]["processes_running"], 1);
    assert!(ferret(&["runs", db]).contains("; 1 running"));

    hold.wait();
    worker.join().unwrap();
    eventually("the recovery", || {
        let s = Store::open(&path).ok()?;
        let r = live::stalls(&s, None).ok()?;
        r.iter().any(|r| r.kind == "recovered").then_some(())
    });
    p.close().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ferret(&[
        "stalls", db, "--run", "live", "--format", "json",
    ]))
    .unwrap();
    let kinds: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].clone())
        .collect();
    assert_eq!(kinds.last().unwrap(), "recovered", "{v}");
    assert_eq!(v[0]["name"], "query");
    assert!(ferret(&["stalls", db, "--format", "text"]).contains("recovered after"));
    let text = ferret(&["dump", db]);
    assert!(text.starts_with("no live processes in "), "{text}");

    // Now make it look crashed: no clean close, an old heartbeat, spans
    // still open in its last snapshot.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "UPDATE ferret_processes SET ended_ns = NULL;
         UPDATE ferret_heartbeats SET beat_ns = beat_ns - 60000000000;
         INSERT INTO ferret_inflight (process, snapshot_ns, thread, depth, span_id, name, start_ns, entered)
         SELECT process, beat_ns, 0, 0, 77, 'stuck', beat_ns - 5000000000, 1 FROM ferret_heartbeats;",
    )
    .unwrap();
    drop(c);
    let text = ferret(&["dump", db]);
    assert!(text.contains("STALE (last heartbeat "), "{text}");
    assert!(text.contains("stuck  5.000s"), "{text}");
    let table = ferret(&["runs", db]);
    assert!(table.contains("1 stale (no heartbeat for "), "{table}");
    let v: serde_json::Value =
        serde_json::from_str(&ferret(&["dump", db, "--format", "json"])).unwrap();
    assert_eq!(v["processes"][0]["state"], "stale");
}

#[test]
fn bad_input_names_the_file_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database, not at all, no").unwrap();
    for cmd in ["dump", "stalls"] {
        for f in [&missing, &junk] {
            let o = output(&[cmd, f.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {f:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(f.to_str().unwrap()), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn unknown_run_and_files_without_live_tables() {
    let _one = ferret_testkit::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = path.to_str().unwrap();
    let p = ferret::Profiler::builder(&path)
        .run_id("r")
        .heartbeat_interval(None)
        .open()
        .unwrap();
    p.install();
    drop(ferret::span("x"));
    p.close().unwrap();
    for cmd in ["dump", "stalls"] {
        let o = output(&[cmd, db, "--run", "nope"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
    }
    // An older file: no live tables at all.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE ferret_heartbeats; DROP TABLE ferret_inflight; DROP TABLE ferret_stalls;",
    )
    .unwrap();
    drop(c);
    assert!(ferret(&["dump", db]).starts_with("no live processes"));
    assert!(ferret(&["stalls", db]).contains("0 reports"));
    assert_eq!(ferret(&["stalls", db, "--format", "json"]).trim(), "[]");
    let help = ferret(&["stalls", "--help"]);
    assert!(help.contains("1×, 2×, 4× and 8×"), "{help}");
    let help = ferret(&["dump", "--help"]);
    assert!(help.contains("STALE"), "{help}");
}

/// Thread names (tid → name per process) reach every export that has a
/// place for them: jsonl, Chrome's thread metadata, speedscope's profiles.
#[test]
fn thread_names_in_exports() {
    let _one = ferret_testkit::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = path.to_str().unwrap();
    let p = ferret::Profiler::open(&path).unwrap();
    p.install();
    let tid = std::thread::Builder::new()
        .name("named-worker".into())
        .spawn(|| {
            let _g = ferret::span("work");
            unsafe { libc::syscall(libc::SYS_gettid) as u64 }
        })
        .unwrap()
        .join()
        .unwrap();
    p.close().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();

    ferret(&["export", db, "--format", "jsonl", "-o", o]);
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["name"], "work");
    assert_eq!(line["tid"], tid);
    assert_eq!(line["thread_name"], "named-worker");

    ferret(&["export", db, "--format", "chrome", "-o", o]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let events = v
        .as_array()
        .or_else(|| v["traceEvents"].as_array())
        .unwrap();
    assert!(
        events.iter().any(|e| e["ph"] == "M"
            && e["name"] == "thread_name"
            && e["tid"] == tid
            && e["args"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("named-worker"))),
        "{v}"
    );

    ferret(&["export", db, "--format", "speedscope", "-o", o]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("named-worker (pid ")),
        "{names:?}"
    );
}
