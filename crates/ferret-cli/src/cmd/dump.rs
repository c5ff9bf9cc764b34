//! `ferret dump`: what the recording processes are doing now, from their
//! latest snapshot of open spans (`ferret_inflight`) and their heartbeats.

use super::open_store;
use crate::error::CliResult;
use crate::fmt::{self, Style};
use crate::live_render::{tags_text, who};
use ferret_analyze::store::live::{self, Heartbeat, InFlightSpan, ProcessState};
use std::io::Write;

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Per process: its heartbeat, then each thread's stack of open spans.
    Text,
    /// JSON object: `now_ns` and `processes`, each with its heartbeat,
    /// `state` and `spans`.
    Json,
}

/// The long help of the command (`--help`).
pub const LONG_ABOUT: &str = "Print the open spans of the processes recording into a trace file.\n\nReads the latest snapshot each process wrote (every heartbeat interval,\n1 s by default): per thread, its stack of open spans, outermost first,\nwith how long each had been open and its tags; then the spans awaiting\n(futures that no thread polls). A process whose heartbeat is older than\nthree intervals and that did not close its profiler is marked STALE:\nit hangs, or it was killed or crashed. Processes that closed cleanly\nare not shown (they have no open spans).\n\nExample: `ferret dump ferret.db`";

/// Print the open spans of the processes recording into a trace file.
///
/// Reads the latest snapshot each process wrote (every heartbeat interval,
/// 1 s by default): per thread, its stack of open spans, outermost first,
/// with how long each had been open and its tags; then the spans awaiting
/// (futures that no thread polls). A process whose heartbeat is older than
/// three intervals and that did not close its profiler is marked STALE:
/// it hangs, or it was killed or crashed. Processes that closed cleanly
/// are not shown (they have no open spans).
///
/// Example: `ferret dump ferret.db`
#[derive(clap::Args)]
pub struct Args {
    /// A native trace file.
    #[arg(value_name = "DB")]
    pub db: std::path::PathBuf,
    /// Only the processes of this run (default: every run).
    #[arg(long)]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(a: Args) -> CliResult {
    let store = open_store(&a.db, None)?;
    let now = live::now_ns();
    let beats = live::heartbeats(&store, a.run.as_deref())?;
    let spans = live::inflight(&store, a.run.as_deref())?;
    // Processes with open spans or a heartbeat that did not close.
    let mut procs: Vec<(Option<&Heartbeat>, i64, Vec<&InFlightSpan>)> = Vec::new();
    for h in beats.iter().filter(|h| h.ended_ns.is_none()) {
        procs.push((Some(h), h.process, vec![]));
    }
    for s in &spans {
        match procs.iter_mut().find(|p| p.1 == s.process) {
            Some(p) => p.2.push(s),
            None => procs.push((None, s.process, vec![s])),
        }
    }
    let mut out = std::io::stdout().lock();
    if a.format == Format::Json {
        let v: Vec<serde_json::Value> = procs
            .iter()
            .map(|(h, process, spans)| {
                serde_json::json!({
                    "process": process,
                    "state": h.map(|h| h.state(now).as_str()),
                    "heartbeat_age_ns": h.map(|h| h.age_ns(now)),
                    "heartbeat": h,
                    "spans": spans,
                })
            })
            .collect();
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"file": a.db.display().to_string(), "now_ns": now, "processes": v}),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    let color = fmt::color_stdout();
    if procs.is_empty() {
        let closed = beats.len();
        writeln!(
            out,
            "no live processes in {} ({closed} closed{})",
            a.db.display(),
            if closed == 0 {
                "; none wrote a heartbeat"
            } else {
                ""
            }
        )?;
        return Ok(());
    }
    for (h, process, spans) in &procs {
        match h {
            Some(h) => {
                let state = h.state(now);
                let age = fmt::dur(h.age_ns(now).max(0) as f64);
                let mark = match state {
                    ProcessState::Stale => fmt::paint(
                        &format!("STALE (last heartbeat {age} ago: hung, killed or crashed)"),
                        Style::Red,
                        color,
                    ),
                    _ => format!("running, heartbeat {age} ago"),
                };
                writeln!(
                    out,
                    "{} {} on {}, run {}: {mark}",
                    fmt::paint("process", Style::Bold, color),
                    h.pid,
                    fmt::term_safe(h.host.as_deref().unwrap_or("?")),
                    fmt::term_safe(&h.run_id)
                )?;
                let mut vitals = vec![format!(
                    "up {}",
                    fmt::dur(h.beat_ns.saturating_sub(h.started_ns).max(0) as f64)
                )];
                if let Some(c) = h.cpu_ns {
                    vitals.push(format!("cpu {}", fmt::dur(c as f64)));
                }
                if let Some(r) = h.rss_bytes {
                    vitals.push(format!("rss {:.1} MB", r as f64 / 1e6));
                }
                if let Some(t) = h.threads {
                    vitals.push(format!("{t} threads"));
                }
                vitals.push(format!("{} spans accepted", h.spans_accepted));
                if h.dropped > 0 {
                    vitals.push(format!("{} dropped", h.dropped));
                }
                writeln!(out, "  {}", vitals.join(", "))?;
                if let Some(c) = &h.cmdline {
                    writeln!(out, "  cmd: {}", fmt::term_safe(c))?;
                }
            }
            None => writeln!(out, "process #{process} (no heartbeat)")?,
        }
        if let Some(s) = spans.first() {
            writeln!(
                out,
                "  open spans at {} ({} ago):",
                fmt::utc(s.snapshot_ns),
                fmt::dur(now.saturating_sub(s.snapshot_ns).max(0) as f64)
            )?;
        } else {
            writeln!(out, "  no open spans")?;
        }
        let mut last: Option<(Option<u32>, bool)> = None;
        for s in spans {
            let key = (s.thread, s.entered);
            if last != Some(key) || (s.thread.is_none() && s.depth == 0) {
                let head = if s.entered {
                    who(s.thread_name.as_deref(), s.tid)
                } else {
                    "awaiting (no thread polls it)".into()
                };
                writeln!(out, "  {head}")?;
                last = Some(key);
            }
            // (A damaged row's depth must not make a huge indent.)
            let indent = "  ".repeat(s.depth.min(64) as usize + 2);
            let line = format!(
                "{indent}{}  {}  {}",
                fmt::term_safe(&s.name),
                fmt::dur(s.open_ns().max(0) as f64),
                tags_text(s.tags.as_ref())
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}
