//! `ferret stalls`: the stall reports the recorders' watchdogs wrote
//! (`ferret_stalls`), oldest first.

use super::open_store;
use crate::error::CliResult;
use crate::fmt::{self, Align, Table};
use crate::live_render::{tags_text, who};
use ferret_analyze::store::live;
use std::io::Write;

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per report, with its stack (outermost › innermost).
    Table,
    /// The reports as the watchdog printed them on stderr.
    Text,
    /// JSON array of reports.
    Json,
}

/// The long help of the command (`--help`).
pub const LONG_ABOUT: &str = "List the stall reports recorded in a trace file.\n\nA recorder opened with `stall_threshold(..)` reports every span that\nstays open past its threshold, at 1×, 2×, 4× and 8× the threshold, then\nonce more when it ends (\"recovered\"). Each report names the thread (or\nsays the span was awaiting, with no thread polling it), how long the\nspan had been open, and its stack of open spans with their tags.\n\nExample: `ferret stalls ferret.db --run 3f2a... --format text`";

/// List the stall reports recorded in a trace file.
///
/// A recorder opened with `stall_threshold(..)` reports every span that
/// stays open past its threshold, at 1×, 2×, 4× and 8× the threshold, then
/// once more when it ends ("recovered"). Each report names the thread (or
/// says the span was awaiting, with no thread polling it), how long the
/// span had been open, and its stack of open spans with their tags.
///
/// Example: `ferret stalls ferret.db --run 3f2a... --format text`
#[derive(clap::Args)]
pub struct Args {
    /// A native trace file.
    #[arg(value_name = "DB")]
    pub db: std::path::PathBuf,
    /// Only the reports of this run (default: every run).
    #[arg(long)]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(a: Args) -> CliResult {
    let store = open_store(&a.db, None)?;
    let reports = live::stalls(&store, a.run.as_deref())?;
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &reports)?;
            writeln!(out)?;
        }
        Format::Text => {
            for r in &reports {
                let head = who(r.thread_name.as_deref(), r.tid);
                if r.kind == "recovered" {
                    writeln!(
                        out,
                        "{}  pid {}  {head} recovered after {}: {}",
                        fmt::utc(r.reported_ns),
                        r.pid,
                        fmt::dur(r.open_ns as f64),
                        fmt::term_safe(&r.name)
                    )?;
                    continue;
                }
                writeln!(
                    out,
                    "{}  pid {}  {head} {} {}, threshold {}",
                    fmt::utc(r.reported_ns),
                    r.pid,
                    if r.busy { "busy" } else { "idle" },
                    fmt::dur(r.open_ns as f64),
                    fmt::dur(r.threshold_ns as f64)
                )?;
                let width = r.stack.iter().map(|f| f.name.len()).max().unwrap_or(0);
                for f in r.stack.iter().rev() {
                    let line = format!(
                        "  {:<width$}  {:>9}  {}",
                        fmt::term_safe(&f.name),
                        fmt::dur(f.open_ns as f64),
                        tags_text(f.tags.as_ref())
                    );
                    writeln!(out, "{}", line.trim_end())?;
                }
            }
            if reports.is_empty() {
                writeln!(out, "no stall reports in {}", a.db.display())?;
            }
        }
        Format::Table => {
            let mut t = Table::new(&[
                ("Reported (UTC)", Align::Left),
                ("Pid", Align::Right),
                ("Thread", Align::Left),
                ("Kind", Align::Left),
                ("State", Align::Left),
                ("Open", Align::Right),
                ("Threshold", Align::Right),
                ("Stack (outermost › stalled)", Align::Left),
            ]);
            for r in &reports {
                t.row(vec![
                    fmt::utc(r.reported_ns),
                    r.pid.to_string(),
                    match (&r.thread_name, r.tid) {
                        (_, None) => "-".into(),
                        (Some(n), Some(t)) => format!("{} ({t})", fmt::term_safe(n)),
                        (None, Some(t)) => format!("({t})"),
                    },
                    r.kind.clone(),
                    if r.busy { "busy" } else { "idle" }.into(),
                    fmt::dur(r.open_ns as f64),
                    fmt::dur(r.threshold_ns as f64),
                    r.stack
                        .iter()
                        .map(|f| fmt::term_safe(&f.name).into_owned())
                        .collect::<Vec<_>>()
                        .join(" › "),
                ]);
            }
            write!(out, "{}", t.render(fmt::color_stdout()))?;
            let stalls = reports.iter().filter(|r| r.kind == "stall").count();
            writeln!(
                out,
                "{} reports ({stalls} stall, {} recovered) in {}",
                reports.len(),
                reports.len() - stalls,
                a.db.display()
            )?;
        }
    }
    Ok(())
}
