//! Beyond one machine: `ferret push` against a loopback OTLP/HTTP
//! receiver, `export --format otlp` and `--format parquet` read back by
//! independent decoders, fleet analysis, and the bad inputs of each.
//!
//! The independent decoders are Python's official `opentelemetry-proto`
//! and DuckDB, found through `FERRET_TEST_PYTHON` (set by `.ci/run`, which
//! installs both into a virtualenv). Without it the Rust-side checks still
//! run and each skipped Python check says so on stderr.
//!
//! Network: 127.0.0.1 only; every receiver stops after a bounded number of
//! requests or 60 s.

use ferret_analyze::export::otlp::proto;
use prost::Message;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferret");

fn ferret(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ferret failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Records a demo file of `spans` spans (tags, ~1% errors, two threads).
fn demo(dir: &Path, name: &str, spans: u32) -> PathBuf {
    let p = dir.join(name);
    ok(&ferret(&[
        "demo",
        "--db",
        p.to_str().unwrap(),
        "--spans",
        &spans.to_string(),
        "--no-analyze",
    ]));
    p
}

/// Per name: (count, total ns, self ns, errors) from `ferret analyze --format json`.
fn analyze(files: &[&Path]) -> BTreeMap<String, (u64, u64, u64, u64)> {
    let mut args = vec!["analyze", "--format", "json", "--limit", "0"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    let v: Value = serde_json::from_str(&ok(&ferret(&args))).unwrap();
    let ns = |x: &Value| (x.as_f64().unwrap() * 1e9).round() as u64;
    v["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                (
                    s["count"].as_u64().unwrap(),
                    ns(&s["total_s"]),
                    ns(&s["self_s"]),
                    s["error_count"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The Python of the test virtualenv, or `None` (and a note on stderr
/// naming the skipped check).
fn python(check: &str) -> Option<String> {
    match std::env::var("FERRET_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the Python check ({check}): set FERRET_TEST_PYTHON"
            );
            eprintln!(
                "SKIPPED Python check ({check}): FERRET_TEST_PYTHON is not set \
                 (.ci/run sets it; the Rust-side checks ran)"
            );
            None
        }
    }
}

fn run_python(py: &str, args: &[&str]) -> Value {
    let out = Command::new(py).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{py} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check_py() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_check.py").to_owned()
}

// ---------------------------------------------------------------- receiver

/// One request the receiver got: the status it answered and the body
/// (gunzipped).
struct Got {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A loopback OTLP/HTTP receiver answering request `i` with `script(i)`
/// (status, response body).
struct Receiver {
    url: String,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Got>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(script: impl Fn(usize) -> (u16, Vec<u8>) + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (stop2, got2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline && n < 10_000 {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = serve(s, &mut n, &script, &got2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver {
            url,
            stop,
            got,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Got> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// Serves requests on one connection until it closes.
fn serve(
    s: TcpStream,
    n: &mut usize,
    script: &impl Fn(usize) -> (u16, Vec<u8>),
    got: &Mutex<Vec<Got>>,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        assert!(
            line.starts_with("POST /v1/traces "),
            "request line {line:?}"
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let hv = |k: &str| {
            headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
        };
        let len: usize = hv("content-length")
            .expect("content-length")
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        if hv("content-encoding").as_deref() == Some("gzip") {
            let mut d = flate2::read::GzDecoder::new(&body[..]);
            let mut plain = Vec::new();
            d.read_to_end(&mut plain)?;
            body = plain;
        }
        let (status, resp) = script(*n);
        *n += 1;
        got.lock().unwrap().push(Got {
            status,
            body,
            headers: headers.clone(),
        });
        write!(
            w,
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            resp.len()
        )?;
        w.write_all(&resp)?;
        w.flush()?;
    }
}

/// Rust-side facts about decoded requests (our own prost types: the
/// Python check is the independent one).
#[derive(Debug, Default)]
struct Facts {
    by_name: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    ids: Vec<Vec<u8>>,
    parents: Vec<Vec<u8>>,
    bad_len: u64,
    attr_keys: HashSet<String>,
}

fn facts(msgs: impl IntoIterator<Item = proto::TracesData>) -> Facts {
    let mut f = Facts::default();
    for m in msgs {
        for rs in m.resource_spans {
            for ss in rs.scope_spans {
                for sp in ss.spans {
                    *f.by_name.entry(sp.name.clone()).or_default() += 1;
                    if sp.status.as_ref().is_some_and(|s| s.code == 2) {
                        *f.errors.entry(sp.name.clone()).or_default() += 1;
                    }
                    f.bad_len += (sp.trace_id.len() != 16) as u64 + (sp.span_id.len() != 8) as u64;
                    if !sp.parent_span_id.is_empty() {
                        f.parents.push(sp.parent_span_id);
                    }
                    f.ids.push(sp.span_id);
                    f.attr_keys.extend(sp.attributes.into_iter().map(|a| a.key));
                }
            }
        }
    }
    f
}

/// Checks Rust-side facts against `ferret analyze`.
fn check_facts(f: &Facts, want: &BTreeMap<String, (u64, u64, u64, u64)>) {
    let counts: BTreeMap<String, u64> = want.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let errors: BTreeMap<String, u64> = want
        .iter()
        .filter(|(_, v)| v.3 > 0)
        .map(|(k, v)| (k.clone(), v.3))
        .collect();
    assert_eq!(f.by_name, counts, "spans per name");
    assert_eq!(f.errors, errors, "ERROR statuses per name");
    assert_eq!(f.bad_len, 0, "id lengths");
    let ids: HashSet<&Vec<u8>> = f.ids.iter().collect();
    assert_eq!(ids.len(), f.ids.len(), "duplicate span ids");
    assert!(
        f.parents.iter().all(|p| ids.contains(p)),
        "a parent is missing"
    );
    for k in ["thread.id", "thread.name", "table", "hit"] {
        assert!(
            f.attr_keys.contains(k),
            "attribute {k} lost: {:?}",
            f.attr_keys
        );
    }
}

/// Checks the Python decoder's facts against `ferret analyze`.
fn check_python_facts(v: &Value, want: &BTreeMap<String, (u64, u64, u64, u64)>) {
    let total: u64 = want.values().map(|w| w.0).sum();
    assert_eq!(v["spans"], total);
    assert_eq!(v["distinct_span_ids"], total, "duplicate span ids");
    for k in [
        "bad_trace_id_len",
        "bad_span_id_len",
        "bad_parent_id_len",
        "bad_kind",
        "end_before_start",
        "missing_parents",
    ] {
        assert_eq!(v[k], 0, "{k}");
    }
    for (name, w) in want {
        assert_eq!(v["by_name"][name], w.0, "count of {name}");
        if w.3 > 0 {
            assert_eq!(v["errors_by_name"][name], w.3, "errors of {name}");
        }
    }
    let types = &v["attribute_types"];
    assert_eq!(types["thread.id"], "int_value");
    assert_eq!(types["thread.name"], "string_value");
    assert_eq!(types["table"], "string_value");
    assert_eq!(types["hit"], "bool_value");
    assert!(!v["status_messages"].as_array().unwrap().is_empty());
}

fn dump_bodies(dir: &Path, got: &[Got]) -> Vec<String> {
    got.iter()
        .enumerate()
        .filter(|(_, g)| g.status == 200)
        .map(|(i, g)| {
            let p = dir.join(format!("req-{i}.pb"));
            std::fs::write(&p, &g.body).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect()
}

// ------------------------------------------------------------------- tests

#[test]
fn push_sends_every_span_once_with_headers_gzip_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 6000);
    let want = analyze(&[&db]);
    // 503 twice (the first batch), then accept everything.
    let rx = Receiver::start(|i| (if i < 2 { 503 } else { 200 }, Vec::new()));
    let out = ferret(&[
        "push",
        db.to_str().unwrap(),
        "--endpoint",
        &rx.url,
        "--batch-size",
        "1000",
        "--gzip",
        "--header",
        "x-api-key=secret=1",
        "--backoff-ms",
        "10",
        "--service-name",
        "checkout",
    ]);
    let got = rx.finish();
    let stdout = ok(&out);
    assert!(stdout.contains("pushed 6000 spans"), "{stdout}");
    assert!(stdout.contains("rejected 0, 2 retries"), "{stdout}");
    assert_eq!(got.iter().filter(|g| g.status == 503).count(), 2);
    assert_eq!(got.iter().filter(|g| g.status == 200).count(), 6);
    // The retried request is the same batch, sent again whole.
    assert_eq!(got[0].body, got[2].body);
    for g in &got {
        assert!(g.headers.contains(&("x-api-key".into(), "secret=1".into())));
        assert!(g
            .headers
            .contains(&("content-type".into(), "application/x-protobuf".into())));
    }
    let accepted: Vec<proto::TracesData> = got
        .iter()
        .filter(|g| g.status == 200)
        .map(|g| proto::TracesData::decode(g.body.as_slice()).unwrap())
        .collect();
    let services: HashSet<String> = accepted
        .iter()
        .flat_map(|m| m.resource_spans.iter())
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| r.attributes.iter())
        .filter(|a| a.key == "service.name")
        .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
            proto::Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(services, HashSet::from(["checkout".to_owned()]));
    check_facts(&facts(accepted), &want);
    if let Some(py) = python("opentelemetry-proto decodes the pushed requests") {
        let files = dump_bodies(dir.path(), &got);
        let mut args = vec![check_py(), "proto".into()];
        args.extend(files);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check_python_facts(&run_python(&py, &args), &want);
    }
}

#[test]
fn a_reexport_gives_the_same_ids_and_json_lines_decode() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 5000);
    let want = analyze(&[&db]);
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    for p in [&a, &b] {
        ok(&ferret(&[
            "export",
            db.to_str().unwrap(),
            "--format",
            "otlp",
            "-o",
            p.to_str().unwrap(),
        ]));
    }
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b).unwrap(),
        "re-export differs"
    );
    // Rust side: parse the JSON back into our messages by hand.
    let hex = |s: &Value| -> Vec<u8> {
        let s = s.as_str().unwrap();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut msgs = Vec::new();
    for line in text.lines() {
        assert!(line.len() < 4 << 20);
        let v: Value = serde_json::from_str(line).unwrap();
        let mut m = proto::TracesData::default();
        for rs in v["resourceSpans"].as_array().unwrap() {
            let mut spans = Vec::new();
            for sp in rs["scopeSpans"][0]["spans"].as_array().unwrap() {
                spans.push(proto::Span {
                    trace_id: hex(&sp["traceId"]),
                    span_id: hex(&sp["spanId"]),
                    parent_span_id: sp.get("parentSpanId").map_or(Vec::new(), hex),
                    name: sp["name"].as_str().unwrap().to_owned(),
                    status: sp.get("status").map(|s| proto::Status {
                        code: s["code"].as_i64().unwrap() as i32,
                        message: s["message"].as_str().unwrap().to_owned(),
                    }),
                    attributes: sp["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| proto::KeyValue {
                            key: a["key"].as_str().unwrap().to_owned(),
                            value: None,
                        })
                        .collect(),
                    ..proto::Span::default()
                });
            }
            m.resource_spans.push(proto::ResourceSpans {
                resource: None,
                scope_spans: vec![proto::ScopeSpans { scope: None, spans }],
            });
        }
        msgs.push(m);
    }
    check_facts(&facts(msgs), &want);
    if let Some(py) = python("opentelemetry-proto parses the OTLP/JSON lines") {
        let v = run_python(&py, &[&check_py(), "json", a.to_str().unwrap()]);
        check_python_facts(&v, &want);
    }
}

#[test]
fn otlp_json_lines_stay_under_the_line_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 40_000);
    let out = dir.path().join("a.jsonl");
    ok(&ferret(&[
        "export",
        db.to_str().unwrap(),
        "--format",
        "otlp",
        "-o",
        out.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "40k spans should need several lines");
    assert!(lines.iter().all(|l| l.len() <= 4 << 20));
}

#[test]
fn push_reports_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 3000);
    let resp = proto::ExportTraceServiceResponse {
        partial_success: Some(proto::ExportTracePartialSuccess {
            rejected_spans: 7,
            error_message: "7 spans too old".into(),
        }),
    }
    .encode_to_vec();
    let rx = Receiver::start(move |_| (200, resp.clone()));
    let out = ferret(&[
        "push",
        db.to_str().unwrap(),
        "--endpoint",
        &format!("{}/", rx.url),
        "--batch-size",
        "1000",
    ]);
    let got = rx.finish();
    let stdout = ok(&out);
    assert_eq!(got.len(), 3);
    assert!(stdout.contains("accepted 2979, rejected 21"), "{stdout}");
    assert!(
        stdout.contains("receiver said: 7 spans too old"),
        "{stdout}"
    );
}

#[test]
fn push_bad_inputs_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 2000);
    let db = db.to_str().unwrap();
    // A 400: no retry, the receiver's text in the error.
    let rx = Receiver::start(|_| (400, b"bad spans".to_vec()));
    let out = ferret(&["push", db, "--endpoint", &rx.url, "--backoff-ms", "10"]);
    let got = rx.finish();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(got.len(), 1, "a 400 is not retried");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 400: bad spans"), "{err}");
    // Unreachable: a port nobody listens on (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = ferret(&[
        "push",
        db,
        "--endpoint",
        &url,
        "--retries",
        "2",
        "--backoff-ms",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot send to {url}/v1/traces")),
        "{err}"
    );
    assert!(err.contains("after 3 attempts"), "{err}");
    // Retries run out on 503.
    let rx = Receiver::start(|_| (503, Vec::new()));
    let out = ferret(&[
        "push",
        db,
        "--endpoint",
        &rx.url,
        "--retries",
        "1",
        "--backoff-ms",
        "10",
    ]);
    assert_eq!(rx.finish().len(), 2);
    assert_eq!(out.status.code(), Some(2));
    // Not a URL; a glob matching nothing.
    let out = ferret(&["push", db, "--endpoint", "localhost:4318"]);
    assert_eq!(out.status.code(), Some(2));
    let pattern = format!("{}/nothing-*.db", dir.path().display());
    let out = ferret(&["push", &pattern, "--endpoint", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file matches"));
}

// ----------------------------------------------------------------- parquet

/// Per name (count, total, self, errors) read back from Parquet files with
/// the `parquet` crate's row reader.
fn parquet_per_name(files: &[PathBuf]) -> BTreeMap<String, (u64, u64, u64, u64)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let mut m: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for f in files {
        let r = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        for row in r.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let mut name = String::new();
            let (mut dur, mut selfns, mut err) = (0u64, 0u64, false);
            for (k, v) in row.get_column_iter() {
                match (k.as_str(), v) {
                    ("name", Field::Str(s)) => name = s.clone(),
                    ("duration_ns", Field::Long(d)) => dur = *d as u64,
                    ("self_ns", Field::Long(d)) => selfns = *d as u64,
                    ("error", Field::Bool(b)) => err = *b,
                    _ => {}
                }
            }
            let e = m.entry(name).or_default();
            e.0 += 1;
            e.1 += dur;
            e.2 += selfns;
            e.3 += err as u64;
        }
    }
    m
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn parquet_partitions_of_three_files_match_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| demo(dir.path(), &format!("host{i}.db"), 4000 + 1000 * i))
        .collect();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let want = analyze(&refs);
    let part = dir.path().join("fleet");
    let pattern = format!("{}/host*.db", dir.path().display());
    ok(&ferret(&[
        "export",
        &pattern,
        "--format",
        "parquet",
        "--partition-dir",
        part.to_str().unwrap(),
    ]));
    let written = parquet_files(&part);
    assert_eq!(written.len(), 3);
    for p in &written {
        let rel = p.strip_prefix(&part).unwrap().to_str().unwrap().to_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert!(
            parts[0].starts_with("host=") && parts[1].starts_with("run="),
            "{rel}"
        );
        assert_eq!(parts[2], "part-0.parquet");
    }
    assert_eq!(parquet_per_name(&written), want, "parquet crate read-back");
    if let Some(py) = python("DuckDB reads the partitioned Parquet export") {
        let script = format!(
            "import duckdb, json\n\
             rows = duckdb.sql(\"select name, count(*), sum(duration_ns), sum(self_ns), \
             sum(error::int) from read_parquet('{}/**/*.parquet', hive_partitioning=false) \
             group by name\").fetchall()\n\
             print(json.dumps({{r[0]: [int(x) for x in r[1:]] for r in rows}}))",
            part.display()
        );
        let v = run_python(&py, &["-c", &script]);
        let got: BTreeMap<String, (u64, u64, u64, u64)> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, a)| {
                let a: Vec<u64> = a
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect();
                (k.clone(), (a[0], a[1], a[2], a[3]))
            })
            .collect();
        assert_eq!(got, want, "DuckDB vs ferret analyze");
    }
}

#[test]
fn export_failures_leave_no_file_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), "a.db", 1000);
    let db = db.to_str().unwrap();
    // An output directory that does not exist.
    let out = dir.path().join("missing/x.parquet");
    let r = ferret(&[
        "export",
        db,
        "--format",
        "parquet",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot create"));
    assert!(!out.exists());
    // A read-only directory (root ignores permissions: only checked when they bite).
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let target = ro.join("x.jsonl");
    let r = ferret(&[
        "export",
        db,
        "--format",
        "otlp",
        "-o",
        target.to_str().unwrap(),
    ]);
    if std::fs::File::create(ro.join("probe")).is_err() {
        assert_eq!(r.status.code(), Some(2));
        assert!(!target.exists());
    }
    // An unknown run: nothing written, not even an empty file.
    let target = dir.path().join("y.parquet");
    let r = ferret(&[
        "export",
        db,
        "--format",
        "parquet",
        "--run",
        "nope",
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ferret-export")
        })
        .collect();
    assert!(leftovers.is_empty());
    // A glob matching nothing, for analyze and export alike.
    let pattern = format!("{}/none-*.db", dir.path().display());
    for args in [
        vec!["analyze", pattern.as_str()],
        vec!["export", pattern.as_str(), "--format", "jsonl"],
        vec!["runs", pattern.as_str()],
    ] {
        let r = ferret(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&r.stderr).contains("no file matches"));
    }
}

#[test]
fn fleet_analyze_calltree_and_runs_over_globs() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| demo(dir.path(), &format!("h{i}.db"), 3000))
        .collect();
    let pattern = format!("{}/h*.db", dir.path().display());
    let all = analyze(&[Path::new(&pattern)]);
    // Counts, totals and self times add up over the files.
    let mut sum: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for f in &files {
        for (k, v) in analyze(&[f]) {
            let e = sum.entry(k).or_default();
            e.0 += v.0;
            e.1 += v.1;
            e.2 += v.2;
            e.3 += v.3;
        }
    }
    assert_eq!(all, sum);
    let runs = ok(&ferret(&["runs", &pattern, "--format", "json"]));
    let runs: Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
    let tree = ok(&ferret(&["calltree", &pattern, "--format", "json"]));
    let tree: Value = serde_json::from_str(&tree).unwrap();
    assert!(tree.to_string().contains("handle_request"));
    // --run picks one run wherever it is.
    let run = runs[1]["run_id"].as_str().unwrap();
    let one = ok(&ferret(&[
        "analyze", &pattern, "--run", run, "--format", "json",
    ]));
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["spans"], 3000);
    let r = ferret(&["analyze", &pattern, "--run", "nope"]);
    assert_eq!(r.status.code(), Some(2));
}

/// A ferret-io file: parent links and self times come from the resolver.
fn ferret_io_file(dir: &Path) -> PathBuf {
    use ferret_testkit::{fio_row, FerretIoFile};
    let mut rows = Vec::new();
    for t in 0..50 {
        let s = 1000.0 + t as f64;
        let root = format!("r{t}");
        rows.push(fio_row(&root, None, "io-run", "main", s, Some(0.5), "ok"));
        rows.push(fio_row(
            &format!("a{t}"),
            Some(&root),
            "io-run",
            "load",
            s + 0.1,
            Some(0.2),
            "ok",
        ));
        let status = if t % 10 == 0 { "error" } else { "ok" };
        rows.push(fio_row(
            &format!("b{t}"),
            Some(&format!("a{t}")),
            "io-run",
            "query",
            s + 0.15,
            Some(0.05),
            status,
        ));
    }
    let p = dir.join("io.db");
    FerretIoFile::new().rows(rows).write(&p);
    p
}

#[test]
fn ferret_io_files_export_to_parquet_and_otlp() {
    let dir = tempfile::tempdir().unwrap();
    let db = ferret_io_file(dir.path());
    let want = analyze(&[&db]);
    assert_eq!(want["main"].0, 50);
    let pq = dir.path().join("io.parquet");
    ok(&ferret(&[
        "export",
        db.to_str().unwrap(),
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
    ]));
    assert_eq!(parquet_per_name(&[pq]), want, "parquet rows and self times");
    let rx = Receiver::start(|_| (200, Vec::new()));
    let out = ferret(&[
        "push",
        db.to_str().unwrap(),
        "--endpoint",
        &rx.url,
        "--batch-size",
        "40",
    ]);
    let got = rx.finish();
    assert!(ok(&out).contains("pushed 150 spans"));
    let f = facts(
        got.iter()
            .map(|g| proto::TracesData::decode(g.body.as_slice()).unwrap()),
    );
    assert_eq!(f.by_name.values().sum::<u64>(), 150);
    assert_eq!(f.errors.get("query"), Some(&5));
    assert_eq!(f.parents.len(), 100);
    let ids: HashSet<&Vec<u8>> = f.ids.iter().collect();
    assert!(f.parents.iter().all(|p| ids.contains(p)));
    if let Some(py) = python("opentelemetry-proto decodes a ferret-io push") {
        let files = dump_bodies(dir.path(), &got);
        let mut args = vec![check_py(), "proto".into()];
        args.extend(files);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = run_python(&py, &args);
        assert_eq!(v["spans"], 150);
        assert_eq!(v["missing_parents"], 0);
        assert_eq!(v["errors_by_name"]["query"], 5);
    }
}
