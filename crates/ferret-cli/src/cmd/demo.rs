//! `ferret demo`: records a synthetic workload through the public recorder
//! API, reports the persistence rate, then prints the analysis.

use crate::error::{CliError, CliResult};
use ferret::{InSpanExt, Profiler};
use ferret_analyze::analysis::{summarize, Query, SortKey, SummaryOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Shapes of the synthetic workload.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Requests on a thread pool (nested sync calls, tags, ~1% errors, a
    /// panic caught inside a span) plus async tasks on tokio (0.25% of spans).
    Mixed,
    /// One root span with N-1 children.
    Wide,
    /// Long chains of nested spans.
    Deep,
    /// A long-running service: one root (`main`) open for the whole run,
    /// N-1 spans directly under it with 300 names such as
    /// `module_3.function_73`, no tags.
    Service,
}

/// Record a synthetic workload into a trace file, then analyze it.
#[derive(clap::Args)]
pub struct Args {
    /// File to record into (created if missing; runs accumulate).
    #[arg(long, default_value = "ferret.db")]
    pub db: PathBuf,
    /// Spans to record.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Recording threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Workload shape.
    #[arg(long, value_enum, default_value = "mixed")]
    pub shape: Shape,
    /// With --shape deep: chain depth.
    #[arg(long, default_value_t = 64)]
    pub depth: u64,
    /// Record only; skip the analysis.
    #[arg(long)]
    pub no_analyze: bool,
    /// Make the spans named NAME FACTOR times slower (their CPU work is
    /// scaled), e.g. `--slow db.query=1.3`; may repeat. For showing `ferret diff`.
    #[arg(long = "slow", value_name = "NAME=FACTOR", value_parser = parse_slow)]
    pub slow: Vec<(String, f64)>,
    /// CPU work per working span, in µs (about; default 0.1). Larger values
    /// make spans long enough for `ferret diff`'s default 50 µs floor.
    #[arg(long, default_value_t = 0.1, value_name = "US")]
    pub work_us: f64,
    /// Mixed shape: record at about N spans per second (sleeping between
    /// requests) instead of flat out, inside one span, `demo.paced`, that
    /// stays open the whole time: a service to try `ferret watch` on.
    #[arg(long, value_name = "N")]
    pub pace: Option<f64>,
}

/// --pace: spans per second per recording thread (0 = flat out).
static PACE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Sleeps until `made` spans are due at the thread's pace since `t0`.
fn pace(t0: Instant, made: u64) {
    let per_thread = PACE.get().copied().unwrap_or(0.0);
    if per_thread > 0.0 {
        let due = std::time::Duration::from_secs_f64(made as f64 / per_thread);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn parse_slow(s: &str) -> Result<(String, f64), String> {
    let (name, f) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("--slow '{s}': expected NAME=FACTOR, e.g. db.query=1.3"))?;
    let f: f64 = f
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite() && *f > 0.0)
        .ok_or_else(|| format!("--slow '{s}': FACTOR must be a positive number"))?;
    if name.is_empty() {
        return Err(format!("--slow '{s}': NAME is empty"));
    }
    Ok((name.to_owned(), f))
}

/// Work scaling of this process's demo: (base scale, per-name factors).
static SCALE: std::sync::OnceLock<(f64, Vec<(String, f64)>)> = std::sync::OnceLock::new();

/// [`work`] scaled by --work-us and the --slow factor of `name`.
#[inline]
fn work_as(name: &str, n: u64) -> u64 {
    let (base, slow) = SCALE.get_or_init(|| (1.0, vec![]));
    let f = base
        * slow
            .iter()
            .find(|(s, _)| s == name)
            .map_or(1.0, |(_, f)| *f);
    if f == 1.0 {
        return work(n);
    }
    let steps = (((n % 16 + 96) as f64) * f).round().max(1.0) as u64;
    let mut x = n | 1;
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// A little CPU work (about 0.1 µs) so that spans have non-trivial
/// durations. Lighter steps make the two recording threads outrun the one
/// writer on a 2-core machine, and the queue then drops (and counts) spans.
#[inline]
fn work(n: u64) -> u64 {
    let mut x = n | 1;
    for _ in 0..(n % 16 + 96) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

const TABLES: [&str; 3] = ["users", "orders", "items"];

/// One request: 8 spans on the mixed path (root, parse, 2×db.query or
/// cache.get, render + 2 fragments, maybe a caught panic). Returns spans made.
fn request(i: u64, worker: usize) -> u64 {
    let mut made = 1;
    let mut root = ferret::span("handle_request");
    if i.is_multiple_of(64) {
        root.tag("worker", worker as i64);
    }
    ferret::measure("parse", || work_as("parse", i));
    made += 1;
    for k in 0..2u64 {
        let table = TABLES[((i + k) % 3) as usize];
        if (i + k).is_multiple_of(4) {
            let mut g = ferret::span("cache.get");
            g.tag("hit", !i.is_multiple_of(3));
            work_as("cache.get", i + k);
        } else {
            let mut q = ferret::span("db.query");
            q.tag("table", table);
            work_as("db.query", i * 3 + k);
            if (i + k).is_multiple_of(97) {
                q.set_error("timeout after 30s");
            }
        }
        made += 1;
    }
    {
        let _r = ferret::span("render");
        for part in ["header", "body"] {
            let name = format!("render.{part}");
            let _p = ferret::span(name.clone());
            work_as(&name, i ^ 0x55);
            made += 1;
        }
        made += 1;
    }
    if i % 500 == 7 {
        let r = std::panic::catch_unwind(|| {
            let _g = ferret::span("risky_op");
            if work(i) != 0 {
                panic!("demo panic inside a span");
            }
        });
        made += 1;
        if r.is_ok() {
            root.set_error("risky_op did not panic");
        }
    } else if i.is_multiple_of(113) {
        root.set_status(ferret::Status::Custom("warning".into()));
    }
    made
}

fn mixed(total: u64, threads: usize) -> CliResult<u64> {
    // 0.25% of the spans come from async tasks on a tokio runtime: spawning
    // a task costs some 5 µs, a hundred spans' worth, so more would measure
    // tokio rather than ferret.
    let async_target = total / 400;
    let sync_target = total - async_target;
    let made = AtomicU64::new(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("demo-async")
        .build()
        .map_err(|e| CliError::Internal(format!("tokio runtime: {e}")))?;
    let async_made = rt.block_on(async {
        let mut made = 0u64;
        let mut batch = 0u64;
        while made < async_target {
            let fetches = 3u64.min(async_target - made).max(1);
            let job = async move {
                let mut handles = Vec::new();
                for f in 0..fetches.saturating_sub(1) {
                    handles.push(tokio::spawn(
                        async move {
                            tokio::task::yield_now().await;
                            work_as("fetch", batch + f)
                        }
                        .in_span("fetch"),
                    ));
                }
                for h in handles {
                    let _ = h.await;
                }
            }
            .in_span("async_job");
            job.await;
            made += fetches;
            batch += 1;
        }
        made
    });
    drop(rt);
    std::thread::scope(|s| {
        for w in 0..threads.max(1) {
            let made = &made;
            std::thread::Builder::new()
                .name(format!("demo-worker-{w}"))
                .spawn_scoped(s, move || {
                    let mut i = w as u64;
                    let share = sync_target / threads.max(1) as u64
                        + u64::from((w as u64) < sync_target % threads.max(1) as u64);
                    let mut mine = 0;
                    let t0 = Instant::now();
                    while mine < share {
                        pace(t0, mine);
                        if share - mine >= 9 {
                            mine += request(i, w);
                        } else {
                            ferret::measure("tail", || work_as("tail", i));
                            mine += 1;
                        }
                        i += threads as u64;
                    }
                    made.fetch_add(mine, Ordering::Relaxed);
                })
                .expect("spawn demo worker");
        }
    });
    Ok(made.into_inner() + async_made)
}

fn wide(total: u64, threads: usize) -> u64 {
    let root = ferret::start("main");
    let children = total.saturating_sub(1);
    std::thread::scope(|s| {
        for w in 0..threads.max(1) {
            let root = &root;
            s.spawn(move || {
                let _e = root.enter();
                let share =
                    children / threads as u64 + u64::from((w as u64) < children % threads as u64);
                for i in 0..share {
                    let _g = ferret::span("request");
                    work_as("request", i);
                }
            });
        }
    });
    root.end();
    total.max(1)
}

/// The 300 names of the service shape: `module_M.function_F`, 10 modules
/// of 30 functions (as `bench/make_ferret_io.py --shape service` writes).
fn service_names() -> Vec<&'static str> {
    (0..10)
        .flat_map(|m| (30..60).map(move |f| format!("module_{m}.function_{f}")))
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect()
}

fn service(total: u64, threads: usize) -> u64 {
    let names = service_names();
    let root = ferret::start("main");
    let children = total.saturating_sub(1);
    std::thread::scope(|s| {
        for w in 0..threads.max(1) {
            let (root, names) = (&root, &names);
            s.spawn(move || {
                let _e = root.enter();
                let share =
                    children / threads as u64 + u64::from((w as u64) < children % threads as u64);
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ w as u64;
                for i in 0..share {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let name = names[(x % names.len() as u64) as usize];
                    let _g = ferret::span(name);
                    work_as(name, i);
                }
            });
        }
    });
    root.end();
    total.max(1)
}

/// A chain of `depth` nested spans under the current span, built with an
/// explicit stack of guards (no recursion: a depth of 100,000 needs no more
/// stack than a depth of 1). Guards end innermost first. Returns spans made.
fn chain(depth: u64, seed: u64) -> u64 {
    let mut guards = Vec::with_capacity(depth.min(1 << 20) as usize);
    for level in 0..depth {
        guards.push(ferret::span("level"));
        work_as("level", seed + level);
    }
    while let Some(g) = guards.pop() {
        drop(g);
    }
    depth
}

fn deep(total: u64, threads: usize, depth: u64) -> u64 {
    let depth = depth.max(1);
    let made = AtomicU64::new(0);
    std::thread::scope(|s| {
        for w in 0..threads.max(1) {
            let made = &made;
            s.spawn(move || {
                let share = total / threads as u64 + u64::from((w as u64) < total % threads as u64);
                let mut mine = 0;
                while mine < share {
                    let d = depth.min(share - mine);
                    let _root = ferret::span("chain");
                    mine += 1;
                    if d > 1 {
                        mine += chain(d - 1, mine);
                    }
                }
                made.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    made.into_inner()
}

pub fn run(a: Args) -> CliResult {
    if a.threads == 0 {
        return Err(CliError::user("--threads must be at least 1"));
    }
    if a.db.is_dir() {
        return Err(CliError::user(format!(
            "{}: is a directory; give a file to record into",
            a.db.display()
        )));
    }
    if !(a.work_us.is_finite() && a.work_us > 0.0) {
        return Err(CliError::user("--work-us must be a positive number"));
    }
    let _ = SCALE.set((a.work_us / 0.1, a.slow.clone()));
    if let Some(p) = a.pace {
        if !(p.is_finite() && p > 0.0) || a.shape != Shape::Mixed {
            return Err(CliError::user(
                "--pace takes a positive number of spans per second, with --shape mixed",
            ));
        }
        let _ = PACE.set(p / a.threads as f64);
    }
    let shape = match a.shape {
        Shape::Mixed => "mixed",
        Shape::Wide => "wide",
        Shape::Deep => "deep",
        Shape::Service => "service",
    };
    // Writing the file is the whole job: wait for the writer far longer
    // than a host program would (a deep chain's 100,000 new call paths
    // took more than the default 5 s to commit on a loaded 2-core machine).
    let profiler = Profiler::builder(&a.db)
        .label(format!("demo {shape} {} spans", a.spans))
        .close_timeout(std::time::Duration::from_secs(120))
        .open()?;
    profiler.install();
    let run_id = profiler.run_id().to_owned();
    eprintln!(
        "Recording {} spans ({shape}, {} threads) into {} (run {run_id})",
        a.spans,
        a.threads,
        a.db.display()
    );
    let quiet_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    // Entered on this thread, which waits for the workers: an open span
    // the recorder publishes in its in-flight snapshots.
    let paced = a.pace.map(|_| ferret::span("demo.paced"));
    let made = match a.shape {
        Shape::Mixed => mixed(a.spans, a.threads),
        Shape::Wide => Ok(wide(a.spans, a.threads)),
        Shape::Deep => Ok(deep(a.spans, a.threads, a.depth)),
        Shape::Service => Ok(service(a.spans, a.threads)),
    };
    std::panic::set_hook(quiet_hook);
    drop(paced);
    let made = made?;
    let recorded = t0.elapsed();
    let stats = profiler.close()?;
    let total = t0.elapsed();
    let persisted = stats.persisted;
    let size = std::fs::metadata(&a.db).map_or(0, |m| m.len());
    println!("file:       {}", a.db.display());
    println!("run:        {run_id}");
    println!(
        "spans:      {made} produced, {persisted} persisted, {} shed (whole traces, queue filling), {} dropped (queue full), {} lost to write errors",
        stats.shed, stats.dropped_queue, stats.dropped_write
    );
    let rate = persisted as f64 / total.as_secs_f64();
    // Slow spans (--work-us) make rates far below a million a second.
    let rate = if rate >= 1e5 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{rate:.0}")
    };
    println!(
        "rate:       {rate} spans/s persisted ({:.2} s recording + {:.2} s final flush)",
        recorded.as_secs_f64(),
        (total - recorded).as_secs_f64()
    );
    println!("file size:  {:.1} MB", size as f64 / 1e6);
    if a.no_analyze {
        return Ok(());
    }
    println!();
    let store = super::open_store(&a.db, None)?;
    let opts = SummaryOptions {
        sort: SortKey::Total,
        limit: 20,
    };
    let summary = summarize(&store, &Query::run(run_id), &opts, None)?;
    super::analyze::render(
        &summary,
        super::analyze::Format::Table,
        ferret_analyze::analysis::Clock::Wall,
    )
}
