//! Helpers for the hostile-input tests: run the binary with a timeout and
//! measure its peak RSS, and write native and ferret-io files.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code, or None when killed by a signal or the timeout.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// True when it was still running at the timeout (then killed).
    pub timed_out: bool,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error, as text.
    pub stderr: String,
    /// Peak resident set size in KiB (from `wait4`).
    pub maxrss_kb: i64,
}

impl Outcome {
    /// Exit code 0, or a panic with stderr.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "ferret failed: {self:?}");
        self
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Options of a run.
#[derive(Default)]
pub struct Run {
    pub timeout: Option<Duration>,
    /// Run as this uid/gid (tests run as root; see `run_as_nobody`).
    pub uid: Option<u32>,
    /// Directory for the captured stdout.
    pub dir: Option<PathBuf>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferret")
}

/// Runs `ferret args...` without colours and returns what it did.
pub fn output(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ferret")
}

/// Runs `ferret args...`, asserts that it succeeded, returns its stdout.
pub fn stdout_ok(args: &[&str]) -> String {
    let out = output(args);
    assert!(
        out.status.success(),
        "ferret {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ferret args...` with stdout captured to a file, killing it after
/// the timeout (default 60 s). Never panics on the child's behaviour.
pub fn run_with(args: &[&str], o: &Run) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let dir = o.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let out_path = dir.join(format!("stdout-{}", std::process::id()));
    let err_path = dir.join(format!("stderr-{}", std::process::id()));
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    if let Some(uid) = o.uid {
        cmd.uid(uid).gid(uid);
    }
    let child = cmd.spawn().expect("spawn ferret");
    let pid = child.id() as libc::pid_t;
    // FERRET_TEST_TIMEOUT (seconds) caps every run: checking that a test
    // fails on old code that hangs or floods its output needs no minute.
    let cap = std::env::var("FERRET_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let deadline = Instant::now() + o.timeout.unwrap_or(cap).min(cap);
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: waiting for our own child; `status` and `ru` are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4 failed");
        if Instant::now() > deadline {
            timed_out = true;
            // SAFETY: our own child, still unreaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::mem::forget(child); // reaped above
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let out = Outcome {
        code: if timed_out { None } else { code },
        signal,
        timed_out,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        maxrss_kb: ru.ru_maxrss,
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    out
}

pub fn run(args: &[&str]) -> Outcome {
    run_with(args, &Run::default())
}

/// True when the tests run as root (then permissions do not stop reads,
/// and tests drop to `nobody` for the child instead).
pub fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

pub const NOBODY: u32 = 65534;

/// A temporary directory that another user can enter and read.
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Records a native file holding one chain `depth` spans deep (`chain`
/// then `level`s), through `ferret demo --shape deep`.
pub fn native_chain(path: &Path, depth: u64) {
    let d = depth.to_string();
    run(&[
        "demo",
        "--db",
        s(path),
        "--shape",
        "deep",
        "--depth",
        &d,
        "--spans",
        &d,
        "--threads",
        "1",
        "--no-analyze",
    ])
    .ok();
}

/// The ferret-io (BeaverDB) table, with its primary key or without.
pub fn fio_schema(conn: &rusqlite::Connection, primary_key: bool) {
    let pk = if primary_key {
        ", PRIMARY KEY (log_name, timestamp)"
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL{pk});
         CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);"
    ))
    .unwrap();
}

/// A ferret-io span row as Python's `json.dumps` writes it.
pub fn fio_row(
    id: &str,
    parent: Option<&str>,
    run: &str,
    name: &str,
    start: f64,
    dur: Option<f64>,
) -> String {
    serde_json::json!({
        "span_id": id, "parent_id": parent, "run_id": run, "name": name,
        "start_time": start, "end_time": dur.map(|d| start + d), "duration": dur,
        "tags": {}, "status": "ok",
    })
    .to_string()
}

/// A ferret-io file holding one chain `depth` spans deep, in start order.
pub fn fio_chain(path: &Path, depth: usize) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    fio_schema(&conn, true);
    let tx = conn.transaction().unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)")
            .unwrap();
        let t0 = 1_700_000_000.0;
        for i in 0..depth {
            let start = t0 + i as f64 * 1e-6;
            let dur = (2 * (depth - i)) as f64 * 1e-6;
            let id = format!("{i:032x}");
            let parent = (i > 0).then(|| format!("{:032x}", i - 1));
            let name = if i == 0 { "chain" } else { "level" };
            st.execute(rusqlite::params![
                start,
                fio_row(&id, parent.as_deref(), "deep", name, start, Some(dur))
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Parses an SVG as XML (DTD allowed, as inferno writes one); panics if it
/// is not well-formed. Returns its text nodes.
pub fn svg_texts(text: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("SVG is well-formed XML");
    doc.descendants()
        .filter_map(|n| n.text())
        .map(str::to_owned)
        .collect()
}
