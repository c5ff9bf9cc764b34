//! `ferret runs`: one line per run, streamed (ferret-io: one pass, memory
//! proportional to the number of runs).

use super::open_store;
use crate::error::CliResult;
use crate::fmt::{self, Align, Table};
use std::io::Write;
use std::path::PathBuf;

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table.
    Table,
    /// JSON array.
    Json,
}

/// List the runs of a trace file: id, first start, last end, wall time,
/// spans, processes, spans dropped by the recorder, label.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// How an incomplete run is described: some process did not close its
/// profiler (still recording, or killed), and what is known of its losses.
pub fn incomplete_note(r: &ferret_analyze::store::RunInfo) -> String {
    let procs = r.pids.len().max(r.processes_unclosed as usize);
    let mut s = format!(
        "incomplete: {}/{procs} processes not closed (running or killed)",
        r.processes_unclosed
    );
    if r.lost_unclosed > 0 {
        s.push_str(&format!(", ≥{} spans lost", r.lost_unclosed));
    }
    s
}

pub fn run(a: Args) -> CliResult {
    let store = open_store(&a.db, Some(&a.namespace))?;
    let runs = store.runs()?;
    if runs.is_empty() {
        return Err(ferret_analyze::Error::NoRuns.into());
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let v: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": r.run_id,
                        "label": r.label,
                        "host": r.host,
                        "first_start_s": r.first_start_ns as f64 / 1e9,
                        "last_end_s": r.last_end_ns as f64 / 1e9,
                        "wall_s": (r.last_end_ns - r.first_start_ns).max(0) as f64 / 1e9,
                        "spans": r.spans,
                        "pids": r.pids,
                        "accepted": r.accepted,
                        "dropped_queue": r.dropped_queue,
                        "dropped_write": r.dropped_write,
                        "sampled_out": r.sampled_out,
                        "shed": r.shed,
                        "complete": r.complete(),
                        "processes_unclosed": r.processes_unclosed,
                        "lost_unclosed": r.lost_unclosed,
                        "format": store.kind().as_str(),
                    })
                })
                .collect();
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        }
        Format::Table => {
            let color = fmt::color_stdout();
            let mut t = Table::new(&[
                ("Run", Align::Left),
                ("First start (UTC)", Align::Left),
                ("Last end (UTC)", Align::Left),
                ("Wall", Align::Right),
                ("Spans", Align::Right),
                ("Procs", Align::Right),
                ("Dropped", Align::Right),
                ("Sampled out", Align::Right),
                ("Shed", Align::Right),
                ("State", Align::Left),
                ("Label", Align::Left),
            ]);
            for r in &runs {
                t.row(vec![
                    r.run_id.clone(),
                    fmt::utc(r.first_start_ns),
                    fmt::utc(r.last_end_ns),
                    fmt::dur((r.last_end_ns - r.first_start_ns).max(0) as f64),
                    r.spans.to_string(),
                    if r.pids.is_empty() {
                        "-".into()
                    } else {
                        r.pids.len().to_string()
                    },
                    r.dropped().to_string(),
                    r.sampled_out.to_string(),
                    r.shed.to_string(),
                    if r.complete() {
                        "complete".into()
                    } else {
                        incomplete_note(r)
                    },
                    r.label.clone().unwrap_or_default(),
                ]);
            }
            write!(out, "{}", t.render(color))?;
            writeln!(
                out,
                "{} runs in {} ({})",
                runs.len(),
                a.db.display(),
                store.kind().as_str()
            )?;
        }
    }
    Ok(())
}
