//! One trial: a fresh process serves and loads itself in one mode, then
//! prints one `RESULT {json}` line for the driver.

use crate::{alloc_count, load, probe, service};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing_subscriber::prelude::*;

/// What records the service's spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No profiler, no tracing subscriber.
    None,
    /// A tracing registry with no layer: what enabling tracing costs
    /// before any layer records anything (not in the default set).
    Registry,
    /// Ferret's own spans only (`#[ferret::measure]`); tracing spans off.
    Native,
    /// `FerretLayer` for tracing spans, plus `#[ferret::measure]`.
    Layer,
    /// The least a layer recording busy time can cost
    /// (`ferret_testkit::floor::BusyFloorLayer`) for tracing spans, plus
    /// `#[ferret::measure]`: what `layer` cannot go below (not in the
    /// default set).
    BusyFloor,
    /// tracing-chrome's layer for tracing spans (for reference).
    Chrome,
}

impl Mode {
    /// The mode's name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Registry => "registry",
            Mode::Native => "native",
            Mode::Layer => "layer",
            Mode::BusyFloor => "busy-floor",
            Mode::Chrome => "chrome",
        }
    }
}

/// How hard to load the service.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub requests: u64,
    pub warmup: u64,
    pub concurrency: usize,
}

/// Runs the trial and prints its result line; the files it wrote go in
/// `dir` and are removed, except a Ferret file kept at `keep`.
pub fn run(mode: Mode, load: Load, dir: &Path, keep: Option<&Path>) -> Result<(), String> {
    let db = keep.map_or_else(
        || dir.join(format!("service-{}.db", std::process::id())),
        Path::to_path_buf,
    );
    let chrome_file = dir.join(format!("service-{}.trace.json", std::process::id()));
    let mut profiler = None;
    let mut chrome_guard = None;
    match mode {
        Mode::None => {}
        Mode::Registry => tracing_subscriber::registry().init(),
        Mode::Native => {
            let p = ferret::Profiler::open(&db).map_err(|e| e.to_string())?;
            p.install();
            profiler = Some(p);
        }
        Mode::Layer => {
            let p = ferret::Profiler::open(&db).map_err(|e| e.to_string())?;
            tracing_subscriber::registry()
                .with(ferret::FerretLayer::new(&p))
                .init();
            profiler = Some(p);
        }
        Mode::BusyFloor => {
            let p = ferret::Profiler::open(&db).map_err(|e| e.to_string())?;
            p.install();
            tracing_subscriber::registry()
                .with(ferret_testkit::floor::BusyFloorLayer::default())
                .init();
            profiler = Some(p);
        }
        Mode::Chrome => {
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .file(&chrome_file)
                .build();
            tracing_subscriber::registry().with(layer).init();
            chrome_guard = Some(guard);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, service::router()).await;
        });
        let warm = load::run(addr, load.warmup, load.concurrency).await;
        if warm.failures > 0 {
            return Err(format!("{} warm-up requests failed", warm.failures));
        }
        if let Some(p) = &profiler {
            p.flush().map_err(|e| e.to_string())?;
        }
        let spans0 = profiler.as_ref().map_or(0, |p| p.stats().accepted);
        let cpu0 = probe::process_cpu_ns();
        let writer0 = probe::thread_cpu_ns("ferret-writer");
        let allocs0 = alloc_count::allocations();
        let t = Instant::now();
        let out = load::run(addr, load.requests, load.concurrency).await;
        let secs = t.elapsed().as_secs_f64();
        let cpu = probe::process_cpu_ns() - cpu0;
        let writer = probe::thread_cpu_ns("ferret-writer") - writer0;
        let allocs = alloc_count::allocations() - allocs0;
        let rss = probe::peak_rss_bytes();
        // Spans still buffered belong to this phase too.
        if let Some(p) = &profiler {
            p.flush().map_err(|e| e.to_string())?;
        }
        Ok((out, secs, cpu, writer, rss, spans0, allocs))
    });
    let (mut out, secs, cpu, writer, rss, spans0, allocs) = result?;
    drop(rt);
    let (spans, dropped) = match profiler.take() {
        Some(p) => {
            let s = p.close().map_err(|e| e.to_string())?;
            (s.accepted - spans0, s.dropped_queue + s.dropped_write)
        }
        None => (0, 0),
    };
    drop(chrome_guard);
    if keep.is_none() {
        let _ = std::fs::remove_file(&db);
        let _ = std::fs::remove_file(PathBuf::from(format!("{}-wal", db.display())));
        let _ = std::fs::remove_file(PathBuf::from(format!("{}-shm", db.display())));
    }
    let _ = std::fs::remove_file(&chrome_file);
    out.latencies_us.sort_unstable();
    let pct = |q: f64| -> u32 {
        let v = &out.latencies_us;
        if v.is_empty() {
            return 0;
        }
        v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
    };
    let n = out.latencies_us.len() as f64;
    let line = json!({
        "mode": mode.name(),
        "requests": out.latencies_us.len(),
        "failures": out.failures,
        "server_errors": out.server_errors,
        "secs": secs,
        "rps": n / secs,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "cpu_us_per_req": cpu as f64 / 1e3 / n,
        "allocs_per_req": allocs as f64 / n,
        "peak_rss_mb": rss as f64 / 1048576.0,
        "spans": spans,
        "spans_dropped": dropped,
        "writer_cpu_share": if cpu > 0 { writer as f64 / cpu as f64 } else { 0.0 },
    });
    println!("RESULT {line}");
    Ok(())
}
