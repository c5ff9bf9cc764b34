//! `ferret watch`: a live terminal view of a file being written (or a
//! replay of a finished run), and its batch mode `--once`.
//!
//! The state is the library's [`Watcher`] (tailing, window, sort, filter,
//! pause); this module parses the arguments, runs the terminal loop
//! ([`tui`]) and draws ([`render`]).

pub mod render;
mod tui;

use crate::error::{CliError, CliResult};
use crate::fmt::{self, Align, Table};
use ferret_analyze::live::{Header, LiveSort, Snapshot, WatchOptions, Watcher};
use ferret_analyze::store::OpenOptions;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How often the file is polled for new commits.
pub const POLL: Duration = Duration::from_millis(250);

/// Output formats of `--once`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table.
    Table,
    /// One JSON object: `{"header": ..., "snapshot": ...}`.
    Json,
}

/// Watch a trace file live: per-name rates and latencies over a sliding
/// window, in-flight spans, live processes. Keys: q quit, space pause,
/// s sort, / filter, w window, Tab pane, r run, ? help.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io), being written or finished.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Run to follow (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Sliding window, whole seconds: `10s`, `1m`, `30`.
    #[arg(long, default_value = "10s", value_parser = parse_window)]
    pub window: u32,
    /// Play a finished run from its first span instead of following the
    /// file live.
    #[arg(long)]
    pub replay: bool,
    /// With --replay: play N times faster than the original pace.
    #[arg(long, default_value_t = 1.0, value_name = "N", requires = "replay")]
    pub speed: f64,
    /// Print one snapshot after one window and exit (batch mode, like `top -b`).
    #[arg(long)]
    pub once: bool,
    /// Output format of --once.
    #[arg(long, value_enum, default_value = "table", requires = "once")]
    pub format: Format,
    /// Initial sort: self, rate, p99, max, errors, name.
    #[arg(long, default_value = "self")]
    pub sort: LiveSort,
    /// Initial name filter (substring, any case).
    #[arg(long, default_value = "")]
    pub filter: String,
    /// In-flight spans open longer than this are shown in red.
    #[arg(long, default_value = "5s", value_parser = fmt::parse_duration_ns)]
    pub stall_threshold: i64,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `10s`, `1m`, `30` (seconds): whole seconds from 1 to 3600.
fn parse_window(s: &str) -> Result<u32, String> {
    let ns = fmt::parse_duration_ns(s)?;
    let secs = ns / 1_000_000_000;
    if !(1..=3600).contains(&secs) || ns % 1_000_000_000 != 0 {
        return Err(format!(
            "bad window '{s}': whole seconds from 1s to 1h, e.g. 10s or 1m"
        ));
    }
    Ok(secs as u32)
}

/// Wall-clock time, ns since the UNIX epoch (the recorder's clock).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn open(a: &Args) -> CliResult<Watcher> {
    if !(a.speed.is_finite() && a.speed > 0.0) {
        return Err(CliError::user("--speed must be a positive number"));
    }
    let opts = WatchOptions {
        window_s: a.window,
        replay_speed: a.replay.then_some(a.speed),
        stall_threshold_ns: a.stall_threshold.max(0) as u64,
        run: a.run.clone(),
        open: OpenOptions {
            namespace: Some(a.namespace.clone()),
        },
    };
    let mut w = Watcher::open(&a.db, opts, now_ns())?;
    w.view_mut().set_sort(a.sort);
    w.view_mut().set_filter(&a.filter);
    Ok(w)
}

pub fn run(a: Args) -> CliResult {
    let mut w = open(&a)?;
    if a.once {
        return once(&mut w, a.format);
    }
    tui::run(&mut w)
}

/// What `--once --format json` prints.
#[derive(Serialize)]
struct Once<'a> {
    header: &'a Header,
    snapshot: &'a Snapshot,
}

/// Polls for one window (replay: one window of the run's time, or until it
/// ends), then prints the snapshot.
fn once(w: &mut Watcher, format: Format) -> CliResult {
    let t0 = now_ns();
    w.poll(t0)?;
    let start_view = w.view_time(t0);
    let window_ns = w.view().window_s() as i64 * 1_000_000_000;
    loop {
        let now = now_ns();
        w.poll(now)?;
        if w.replay_done() || w.view_time(now) - start_view >= window_ns {
            break;
        }
        std::thread::sleep(POLL);
    }
    let now = now_ns();
    let header = w.header(now);
    let snap = w.snapshot(now);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &Once {
                    header: &header,
                    snapshot: &snap,
                },
            )?;
            writeln!(out)?;
        }
        Format::Table => {
            for line in render::header_lines(&header, &snap) {
                writeln!(out, "{line}")?;
            }
            writeln!(out)?;
            let mut t = Table::new(&[
                ("name", Align::Left),
                ("rate/s", Align::Right),
                ("p50", Align::Right),
                ("p95", Align::Right),
                ("p99", Align::Right),
                ("max", Align::Right),
                ("errors", Align::Right),
                ("self %", Align::Right),
            ]);
            for r in &snap.rows {
                t.row(render::row_cells(r));
            }
            write!(out, "{}", t.render(fmt::color_stdout()))?;
            if !snap.inflight.is_empty() {
                writeln!(out)?;
                writeln!(out, "in flight (longest open first):")?;
                for r in &snap.inflight {
                    writeln!(out, "  {}", render::inflight_line(r))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
