//! The service benchmark runs, serves every request, and records the spans
//! it claims to: a small load, in a debug build.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferret-service-bench"))
}

/// One trial's result line, parsed.
fn trial(mode: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["--trial", mode, "--requests", "300", "--warmup", "20"])
        .args(["--concurrency", "4", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result in {stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["requests"], 300);
    assert_eq!(v["failures"], 0, "{v}");
    assert!(
        v["server_errors"].as_u64().unwrap() > 0,
        "errors happen: {v}"
    );
    // Trace files are removed after the trial.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    v
}

fn spans_per_request(v: &serde_json::Value) -> f64 {
    v["spans"].as_f64().unwrap() / v["requests"].as_f64().unwrap()
}

#[test]
fn each_mode_records_what_it_should() {
    let none = trial("none");
    assert_eq!(none["spans"], 0);
    // 3.3 measured functions per request: 3 for a user, 3 for an order
    // (and its background digest), 2 for a report.
    let native = spans_per_request(&trial("native"));
    assert!(
        (3.0..3.6).contains(&native),
        "native spans/request {native}"
    );
    // Plus request + handler spans, and the background task's span.
    let layer = spans_per_request(&trial("layer"));
    assert!((5.2..6.0).contains(&layer), "layer spans/request {layer}");
    trial("chrome");
}

#[test]
fn the_driver_prints_a_table_of_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["--rounds", "1", "--requests", "100", "--warmup", "10"])
        .args(["--concurrency", "4", "--modes", "none,layer", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("service bench: 100 requests"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("none ") || l.starts_with("layer "))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
}

#[test]
fn bad_arguments_are_refused() {
    let out = bench().args(["--modes", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
