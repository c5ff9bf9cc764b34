//! The hunting test: damaged and random SQLite files, run through every
//! command. Whatever the damage, a command exits 0 or 2 — never a panic
//! (101), an abort or another signal, or a hang.
//!
//! Seeded and deterministic. `FERRET_DAMAGE_SEEDS=N` (or `FROM..TO`) runs N seeds per kind
//! of damage (default 2; `bench/damaged.sh` runs many more), and
//! `FERRET_DAMAGE_SEED=S` replays one seed.

mod support;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) as usize;
        self.bytes(n)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// A small native file: a few runs of the mixed demo and a deep chain.
fn native_base(dir: &Path) -> PathBuf {
    let p = dir.join("native-base.db");
    run(&["demo", "--db", s(&p), "--spans", "3000", "--no-analyze"]).ok();
    run(&[
        "demo",
        "--db",
        s(&p),
        "--shape",
        "deep",
        "--depth",
        "40",
        "--spans",
        "400",
        "--no-analyze",
    ])
    .ok();
    // Live rows for `dump` and `stalls` to read (and the damage to hit).
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "INSERT INTO ferret_inflight (process, snapshot_ns, thread, depth, span_id, parent_id, trace_id, name, start_ns, entered, tags)
           SELECT id, started_ns + 9, 0, 0, 5, NULL, 5, 'open', started_ns, 1, '{\"k\":1}' FROM ferret_processes;
         INSERT INTO ferret_stalls (process, thread, tid, thread_name, span_id, name, busy, threshold_ns, open_ns, reported_ns, kind, stack)
           SELECT id, 0, 1, 'main', 5, 'open', 1, 10, 20, started_ns + 20, 'stall', '[{\"name\":\"open\",\"open_ns\":20,\"tags\":null}]' FROM ferret_processes;",
    )
    .unwrap();
    p
}

/// A small ferret-io file: two runs of nested spans with tags.
fn fio_base(dir: &Path) -> PathBuf {
    let p = dir.join("fio-base.db");
    let mut conn = rusqlite::Connection::open(&p).unwrap();
    fio_schema(&conn, true);
    let tx = conn.transaction().unwrap();
    let mut ts = 1.0;
    for run in ["r1", "r2"] {
        for t in 0..40 {
            let t0 = 1_700_000_000.0 + t as f64;
            let root = format!("{run}-{t}");
            for (i, name) in ["main", "fetch", "parse", "fetch"].iter().enumerate() {
                let id = format!("{root}-{i}");
                let parent = (i > 0).then(|| format!("{root}-0"));
                let row = fio_row(
                    &id,
                    parent.as_deref(),
                    run,
                    name,
                    t0 + i as f64 * 0.01,
                    Some(if i == 0 { 0.5 } else { 0.005 }),
                );
                tx.execute(
                    "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                    rusqlite::params![ts, row],
                )
                .unwrap();
                ts += 1.0;
            }
        }
    }
    tx.commit().unwrap();
    p
}

/// Kinds of damage.
const KINDS: [&str; 9] = [
    "hostile-blocks",
    "truncate",
    "flip-bytes",
    "block-blobs",
    "fio-rows",
    "drop-table",
    "wrong-types",
    "meta-rows",
    "random-file",
];

fn sql(path: &Path, stmts: &[String]) {
    if let Ok(c) = rusqlite::Connection::open(path) {
        for st in stmts {
            let _ = c.execute_batch(st);
        }
    }
}

fn random_sql_value(r: &mut Rng) -> String {
    match r.below(8) {
        0 => "NULL".into(),
        1 => format!("{}", r.next() as i64),
        2 => format!("{:e}", f64::from_bits(r.next()))
            .replace("NaN", "0.0")
            .replace("inf", "1e308"),
        3 => format!("x'{}'", hex(&r.some_bytes(40))),
        4 => "9223372036854775807".into(),
        5 => "-9223372036854775808".into(),
        6 => "'text'".into(),
        _ => format!("'{}'", r.below(1000)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A JSON-ish row: a mutated good row, or random fields of random types.
fn random_row(r: &mut Rng) -> String {
    let good = fio_row(
        "x1",
        Some("r1-0-0"),
        "r1",
        "main",
        1_700_000_000.5,
        Some(0.1),
    );
    match r.below(4) {
        0 => {
            let mut b = good.into_bytes();
            for _ in 0..=r.below(4) {
                let i = r.below(b.len() as u64) as usize;
                b[i] = *r.pick(b"\"{}[]:,\\0-e.n ");
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        1 => {
            let n = r.below(good.len() as u64) as usize;
            good[..n].to_owned()
        }
        _ => {
            let vals = [
                "null",
                "1e308",
                "-1e308",
                "9223372036854775807",
                "18446744073709551615",
                "-9223372036854775809",
                "\"\"",
                "[]",
                "{}",
                "true",
                "0",
                "\"r1\"",
                "1.5e-324",
                "\"\\u0000\\u001b\"",
                "\"\\ud800\"",
            ];
            let mut o = String::from("{");
            for (k, f) in [
                "span_id",
                "parent_id",
                "run_id",
                "name",
                "start_time",
                "end_time",
                "duration",
                "tags",
                "status",
            ]
            .iter()
            .enumerate()
            {
                if r.below(6) == 0 {
                    continue;
                }
                if k > 0 {
                    o.push(',');
                }
                let v = if *f == "run_id" && r.below(2) == 0 {
                    "\"r1\""
                } else {
                    r.pick(&vals)
                };
                o.push_str(&format!("\"{f}\":{v}"));
            }
            o.push('}');
            o
        }
    }
}

/// Applies one kind of damage to a copy of `base`.
fn damage(base: &Path, out: &Path, kind: &str, r: &mut Rng) {
    let mut bytes = std::fs::read(base).unwrap();
    let native = base.to_string_lossy().contains("native");
    match kind {
        "truncate" => {
            let n = r.below(bytes.len() as u64) as usize;
            bytes.truncate(n);
            std::fs::write(out, bytes).unwrap();
        }
        "flip-bytes" => {
            let flips = 1 + r.below(64);
            for _ in 0..flips {
                // Mostly past the header page, where SQLite trusts its pages.
                let i = if r.below(8) == 0 {
                    r.below(100)
                } else {
                    r.below(bytes.len() as u64)
                } as usize;
                bytes[i] ^= 1 << r.below(8);
            }
            std::fs::write(out, bytes).unwrap();
        }
        "hostile-blocks" if native => {
            // Well-encoded blocks whose values are hostile: extreme times
            // and durations, duplicate ids, parents that are themselves or
            // their children, unknown path ids.
            std::fs::write(out, &bytes).unwrap();
            let conn = rusqlite::Connection::open(out).unwrap();
            let (run, process): (i64, i64) = conn
                .query_row(
                    "SELECT run, process FROM ferret_blocks ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let edge_i = [
                i64::MIN,
                i64::MIN + 1,
                -1,
                0,
                1,
                i64::MAX - 1,
                i64::MAX,
                1_700_000_000_000_000_000,
            ];
            let edge_u = [0, 1, u64::MAX, u64::MAX / 2, i64::MAX as u64, 1 << 63, 1000];
            for _ in 0..=r.below(3) {
                let mut enc = ferret_format::codec::BlockEncoder::new();
                for _ in 0..=r.below(40) {
                    let id = 1 + r.below(8);
                    let other = 1 + r.below(8);
                    let head = ferret_format::codec::SpanHead {
                        id,
                        parent: *r.pick(&[0, id, id + 1, other, u64::MAX]),
                        trace: *r.pick(&[0, 1, id, u64::MAX]),
                        path: r.below(60) as u32,
                        start_ns: if r.below(2) == 0 {
                            *r.pick(&edge_i)
                        } else {
                            r.next() as i64
                        },
                        dur_ns: if r.below(2) == 0 {
                            *r.pick(&edge_u)
                        } else {
                            r.next()
                        },
                        child_ns: *r.pick(&edge_u),
                        thread: r.below(4) as u32,
                        error: false,
                    };
                    let status = if r.below(4) == 0 {
                        ferret_format::Status::Error
                    } else {
                        ferret_format::Status::Ok
                    };
                    let tags: Vec<(String, ferret_format::TagValue)> = vec![];
                    enc.push(&head, &status, &tags);
                }
                let n = enc.len() as i64;
                conn.execute(
                    "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![run, process, *r.pick(&edge_i), *r.pick(&edge_i), n, enc.finish()],
                )
                .unwrap();
            }
        }
        "random-file" => {
            // An SQLite header followed by random pages.
            let mut b = bytes[..100.min(bytes.len())].to_vec();
            let pages = 1 + r.below(4) as usize;
            b.extend(r.bytes(4096 * pages));
            std::fs::write(out, b).unwrap();
        }
        _ => {
            std::fs::write(out, &bytes).unwrap();
            let mut st: Vec<String> = vec![];
            match kind {
                "block-blobs" if native => {
                    for _ in 0..=r.below(6) {
                        let blob = match r.below(3) {
                            0 => r.some_bytes(300),
                            // A valid block's prefix, then noise.
                            1 => {
                                let mut b = vec![1u8];
                                b.extend(r.some_bytes(64));
                                b
                            }
                            _ => vec![],
                        };
                        st.push(format!(
                            "UPDATE ferret_blocks SET data = x'{}' WHERE id = (SELECT id FROM ferret_blocks ORDER BY random() LIMIT 1)",
                            hex(&blob)
                        ));
                        // Flip bytes inside a real block.
                        st.push(format!(
                            "UPDATE ferret_blocks SET data = substr(data, 1, {p}) || x'{b}' || substr(data, {q}) WHERE id = {id}",
                            p = r.below(200),
                            b = hex(&r.some_bytes(5)),
                            q = 2 + r.below(200),
                            id = 1 + r.below(4)
                        ));
                    }
                }
                "block-blobs" | "fio-rows" if !native => {
                    for _ in 0..=r.below(20) {
                        let ts = random_sql_value(r);
                        let data = if r.below(5) == 0 {
                            random_sql_value(r)
                        } else {
                            format!("'{}'", random_row(r).replace('\'', "''"))
                        };
                        st.push(format!(
                            "INSERT INTO beaver_logs VALUES ('_ferret_trace', {ts}, {data})"
                        ));
                    }
                    st.push(format!(
                        "UPDATE beaver_logs SET data = substr(data, 1, {}) WHERE rowid % 7 = {}",
                        r.below(200),
                        r.below(7)
                    ));
                }
                "fio-rows" => {
                    // Random rows in the native tables.
                    for _ in 0..=r.below(6) {
                        st.push(format!(
                            "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES ({}, {}, {}, {}, {}, {})",
                            random_sql_value(r), random_sql_value(r), random_sql_value(r),
                            random_sql_value(r), random_sql_value(r), random_sql_value(r)
                        ));
                    }
                }
                "drop-table" => {
                    let t = r.pick(&[
                        "ferret_meta",
                        "ferret_runs",
                        "ferret_processes",
                        "ferret_threads",
                        "ferret_names",
                        "ferret_paths",
                        "ferret_blocks",
                        "beaver_logs",
                    ]);
                    st.push(format!("DROP TABLE {t}"));
                }
                "wrong-types" => {
                    let (t, cols): (&str, &[&str]) = *r.pick(&[
                        (
                            "ferret_blocks",
                            &["run", "process", "min_start", "max_end", "count", "data"][..],
                        ),
                        (
                            "ferret_runs",
                            &[
                                "run_key",
                                "label",
                                "started_ns",
                                "spans_accepted",
                                "dropped_queue",
                                "sampled_out",
                            ][..],
                        ),
                        ("ferret_names", &["id", "name"][..]),
                        ("ferret_paths", &["parent", "name"][..]),
                        ("ferret_threads", &["idx", "tid", "name"][..]),
                        ("ferret_processes", &["run", "pid", "started_ns"][..]),
                        ("beaver_logs", &["log_name", "timestamp", "data"][..]),
                    ]);
                    for _ in 0..=r.below(3) {
                        let c = r.pick(cols);
                        st.push(format!(
                            "UPDATE {t} SET {c} = {} WHERE rowid % 3 = {}",
                            random_sql_value(r),
                            r.below(3)
                        ));
                    }
                }
                _ => {
                    // meta-rows: odd metadata, cycles in the path table.
                    st.push(format!(
                        "UPDATE ferret_meta SET value = {} WHERE key = 'format_version'",
                        r.pick(&["'abc'", "'999'", "NULL", "'-1'", "x'00'"])
                    ));
                    st.push("UPDATE ferret_paths SET parent = id WHERE id % 3 = 0".into());
                    st.push("UPDATE ferret_paths SET parent = id + 1".into());
                    st.push(format!(
                        "INSERT INTO ferret_runs (run_key, started_ns) VALUES ('z', {})",
                        random_sql_value(r)
                    ));
                    st.push(format!(
                        "DELETE FROM ferret_names WHERE id % {} = 0",
                        1 + r.below(3)
                    ));
                }
            }
            sql(out, &st);
        }
    }
}

/// Every command, in every output format.
fn commands(db: &str, out: &str) -> Vec<Vec<String>> {
    let v: Vec<Vec<&str>> = vec![
        vec!["runs", db],
        vec!["runs", db, "--format", "json"],
        vec!["analyze", db],
        vec!["analyze", db, "--run", "r1"],
        vec!["analyze", db, "--tree"],
        vec!["analyze", db, "--tree", "--format", "json"],
        vec!["analyze", db, "--format", "json", "--limit", "0"],
        vec!["analyze", db, "--format", "csv"],
        vec!["calltree", db],
        vec!["calltree", db, "--format", "json"],
        vec!["export", db, "--format", "speedscope", "-o", out],
        vec!["export", db, "--format", "chrome", "-o", out],
        vec!["export", db, "--format", "folded", "-o", out],
        vec!["export", db, "--format", "svg", "-o", out],
        vec!["export", db, "--format", "jsonl", "-o", out],
        vec!["flamegraph", db, "-o", out],
        // A file against itself: no regression can show (exit 1 would).
        vec!["diff", db, db],
        vec!["diff", db, db, "--by", "path"],
        vec!["stalls", db],
        vec!["stalls", db, "--format", "json"],
        vec!["stalls", db, "--format", "text"],
        vec!["dump", db],
        vec!["dump", db, "--format", "json"],
        // watch: a replay (fast), and live for one short window.
        vec![
            "watch", db, "--once", "--replay", "--speed", "1000", "--format", "json",
        ],
        vec!["watch", db, "--once", "--window", "1s"],
    ];
    v.into_iter()
        .map(|c| c.into_iter().map(str::to_owned).collect())
        .collect()
}

fn hunt(seeds: std::ops::Range<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let bases = [native_base(dir.path()), fio_base(dir.path())];
    let out = dir.path().join("out");
    let mut failures = vec![];
    let mut runs = 0;
    let mut ok = 0;
    for seed in seeds {
        for (k, kind) in KINDS.iter().enumerate() {
            for base in &bases {
                let mut r = Rng::new(seed * 64 + k as u64);
                let db = dir.path().join(format!("damaged-{seed}-{kind}.db"));
                let _ = std::fs::remove_file(&db);
                damage(base, &db, kind, &mut r);
                for cmd in commands(s(&db), s(&out)) {
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    let o = run_with(
                        &args,
                        &Run {
                            timeout: Some(Duration::from_secs(30)),
                            ..Default::default()
                        },
                    );
                    runs += 1;
                    ok += (o.code == Some(0)) as u32;
                    let fine =
                        matches!(o.code, Some(0) | Some(2)) && !o.stderr.contains("panicked");
                    if !fine {
                        failures.push(format!(
                            "seed {seed} {kind} on {}: {:?} -> code {:?} signal {:?} timed out {}: {}",
                            base.file_name().unwrap().to_string_lossy(),
                            &args[..args.len().min(6)],
                            o.code,
                            o.signal,
                            o.timed_out,
                            o.stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
                        ));
                    }
                }
                let _ = std::fs::remove_file(&db);
            }
        }
    }
    eprintln!(
        "{runs} command runs on damaged files: {ok} exit 0, {} bad",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} bad exits:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn damaged_files_exit_0_or_2_through_every_command() {
    let seeds = match (
        std::env::var("FERRET_DAMAGE_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok()),
        std::env::var("FERRET_DAMAGE_SEEDS").ok().and_then(|s| {
            // N, or FROM..TO for seeds not tried before.
            match s.split_once("..") {
                Some((a, b)) => Some(a.parse::<u64>().ok()?..b.parse::<u64>().ok()?),
                None => Some(0..s.parse::<u64>().ok()?),
            }
        }),
    ) {
        (Some(one), _) => one..one + 1,
        (None, Some(range)) => range,
        (None, None) => 0..2,
    };
    hunt(seeds);
}

/// Seeds that found a bug once, replayed on every run: 15 damages a block
/// so that a span's path id is past the path table (~116 M), which made
/// `diff --by path` size a vector by it (minutes and gigabytes).
#[test]
fn seeds_that_found_bugs_stay_fixed() {
    hunt(15..16);
}
