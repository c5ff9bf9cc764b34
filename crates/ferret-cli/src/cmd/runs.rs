//! `ferret runs`: one line per run, streamed (ferret-io: one pass, memory
//! proportional to the number of runs).

use super::open_store;
use crate::error::{CliError, CliResult};
use crate::fmt::{self, Align, Table};
use std::io::Write;

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
    /// Trace files (native or ferret-io) or globs: the runs of all of them.
    #[arg(required = true, value_name = "DB")]
    pub db: Vec<String>,
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

/// Heartbeats of a run's processes that did not close: (running, stale,
/// age of the freshest stale heartbeat in ns).
#[derive(Default, Clone, Copy)]
struct LiveState {
    running: u32,
    stale: u32,
    stale_age_ns: i64,
}

impl LiveState {
    /// What the heartbeats add to an incomplete run's note.
    fn note(&self) -> String {
        let mut s = String::new();
        if self.running > 0 {
            s.push_str(&format!("; {} running", self.running));
        }
        if self.stale > 0 {
            s.push_str(&format!(
                "; {} stale (no heartbeat for {}: crashed or hung)",
                self.stale,
                fmt::dur(self.stale_age_ns as f64)
            ));
        }
        s
    }
}

/// Per run id, the state of its unclosed processes' heartbeats.
fn live_states(store: &ferret_analyze::store::Store) -> CliResult<Vec<(String, LiveState)>> {
    use ferret_analyze::store::live::{self, ProcessState};
    let now = live::now_ns();
    let mut out: Vec<(String, LiveState)> = Vec::new();
    for h in live::heartbeats(store, None)? {
        let st = h.state(now);
        if st == ProcessState::Closed {
            continue;
        }
        let i = match out.iter().position(|(r, _)| *r == h.run_id) {
            Some(i) => i,
            None => {
                out.push((h.run_id.clone(), LiveState::default()));
                out.len() - 1
            }
        };
        let l = &mut out[i].1;
        if st == ProcessState::Running {
            l.running += 1;
        } else {
            l.stale_age_ns = if l.stale == 0 {
                h.age_ns(now)
            } else {
                l.stale_age_ns.min(h.age_ns(now))
            };
            l.stale += 1;
        }
    }
    Ok(out)
}

pub fn run(a: Args) -> CliResult {
    let files = super::expand_inputs(&a.db)?;
    let many = files.len() > 1;
    let mut runs = Vec::new();
    let mut kinds = Vec::new();
    let mut lives: Vec<Vec<(String, LiveState)>> = Vec::new();
    for f in &files {
        let store = open_store(f, Some(&a.namespace))?;
        lives.push(live_states(&store)?);
        let rs = store.runs()?;
        if rs.is_empty() && !many {
            return Err(ferret_analyze::Error::NoRuns.into());
        }
        kinds.push(store.kind());
        runs.extend(rs.into_iter().map(|r| (files_index(&kinds), r)));
    }
    if runs.is_empty() {
        return Err(CliError::user("no runs in any of the files"));
    }
    let live_of = |fi: usize, run: &str| -> LiveState {
        lives[fi]
            .iter()
            .find(|(r, _)| r == run)
            .map(|(_, l)| *l)
            .unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let v: Vec<serde_json::Value> = runs
                .iter()
                .map(|(fi, r)| {
                    serde_json::json!({
                        "file": files[*fi].display().to_string(),
                        "run_id": r.run_id,
                        "label": r.label,
                        "host": r.host,
                        "first_start_s": r.first_start_ns as f64 / 1e9,
                        "last_end_s": r.last_end_ns as f64 / 1e9,
                        "wall_s": r.last_end_ns.saturating_sub(r.first_start_ns).max(0) as f64 / 1e9,
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
                        "processes_running": live_of(*fi, &r.run_id).running,
                        "processes_stale": live_of(*fi, &r.run_id).stale,
                        "format": kinds[*fi].as_str(),
                    })
                })
                .collect();
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        }
        Format::Table => {
            let color = fmt::color_stdout();
            let mut cols = vec![("Run", Align::Left)];
            if many {
                cols.insert(0, ("File", Align::Left));
            }
            cols.extend([
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
            let mut t = Table::new(&cols);
            for (fi, r) in &runs {
                let mut row = Vec::new();
                if many {
                    row.push(fmt::term_safe(&files[*fi].display().to_string()).into_owned());
                }
                row.extend([
                    fmt::term_safe(&r.run_id).into_owned(),
                    fmt::utc(r.first_start_ns),
                    fmt::utc(r.last_end_ns),
                    fmt::dur(r.last_end_ns.saturating_sub(r.first_start_ns).max(0) as f64),
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
                        incomplete_note(r) + &live_of(*fi, &r.run_id).note()
                    },
                    fmt::term_safe(r.label.as_deref().unwrap_or_default()).into_owned(),
                ]);
                t.row(row);
            }
            write!(out, "{}", t.render(color))?;
            if many {
                writeln!(out, "{} runs in {} files", runs.len(), files.len())?;
            } else {
                writeln!(
                    out,
                    "{} runs in {} ({})",
                    runs.len(),
                    files[0].display(),
                    kinds[0].as_str()
                )?;
            }
        }
    }
    Ok(())
}

/// The index of the file whose kind was pushed last.
fn files_index<T>(kinds: &[T]) -> usize {
    kinds.len() - 1
}
