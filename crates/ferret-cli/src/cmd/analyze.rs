//! `ferret analyze`: the per-name summary of a run.

use super::open_store;
use crate::error::{CliError, CliResult};
use crate::fmt::{self, Align, Style, Table};
use ferret_analyze::analysis::{
    summarize_many, summarize_threads, Clock, Query, SortKey, Summary, SummaryOptions,
};
use std::io::Write;

/// Output formats of the summary.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table for people.
    Table,
    /// JSON for scripts (times in seconds).
    Json,
    /// CSV with the JSON's columns.
    Csv,
    /// With --tree: indented text (same as table).
    Text,
}

/// Per-name summary of a run: count, total, avg, min, max, p50/p95/p99,
/// self time and errors, streamed in memory proportional to distinct names.
///
/// Reads native ferret files and ferret-io (Python) files. Without --run it
/// analyzes the latest run and says which one it chose.
#[derive(clap::Args)]
#[command(
    after_help = "Times for --since/--until: UNIX seconds (1795711277.5), \
an offset from the run's first span (+2s, +150ms, +1m), or UTC \
YYYY-MM-DDTHH:MM:SS[.frac]Z. A span is included when its start is in [since, until).

Exit codes: 0 ok, 2 bad input (missing/bad file, unknown run, bad option), 1 internal error."
)]
pub struct Args {
    /// Trace files (native or ferret-io) or globs ('hosts/*/ferret.db'):
    /// several files are analyzed as one (each file's latest run, or --run
    /// wherever it appears).
    #[arg(required = true, value_name = "DB")]
    pub db: Vec<String>,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Row order: total, count, avg, max, p99, self, errors, name.
    #[arg(long, default_value = "total", value_parser = parse_sort)]
    pub sort: SortKey,
    /// Rows to show; 0 shows all.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only names matching this glob (e.g. 'db_*'); may repeat.
    #[arg(long = "name", value_name = "GLOB")]
    pub names: Vec<String>,
    /// Only spans starting at or after this time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only spans starting before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Clock of durations and self times: wall (start to end) or busy
    /// (time running on a thread: entered tracing spans, polled futures;
    /// sync spans count their wall time; ferret-io files: wall).
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: super::ClockArg,
    /// Show the slowest call trees instead of the summary.
    #[arg(long)]
    pub tree: bool,
    /// With --tree: number of slowest roots to show.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// With --tree: children per node before same-name siblings merge.
    #[arg(long, default_value_t = 50)]
    pub max_children: usize,
    /// With --tree: levels to show (0 = all). A node whose children are
    /// cut shows `… N spans below, cut by --max-depth`.
    #[arg(long, default_value_t = 0)]
    pub max_depth: usize,
    /// Threads reading a native file (default: the number of cores); the
    /// result is the same for any count. With --tree, the passes that find
    /// the slowest roots use them and the pass that builds the trees reads
    /// with one. ferret-io files read with one thread (plus ferret-io's
    /// SQLite reader).
    #[arg(long, value_name = "N", value_parser = super::parse_threads)]
    pub threads: Option<usize>,
}

fn parse_sort(s: &str) -> Result<SortKey, String> {
    s.parse()
}

impl Args {
    /// The library query these arguments ask for.
    pub fn query(&self) -> CliResult<Query> {
        let bound = |s: &Option<String>| s.as_deref().map(fmt::parse_time).transpose();
        Ok(Query {
            run: self.run.clone(),
            since: bound(&self.since).map_err(CliError::User)?,
            until: bound(&self.until).map_err(CliError::User)?,
            names: self.names.clone(),
            clock: self.clock.into(),
        })
    }
}

/// A progress bar on stderr for long scans, only on a TTY.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(total_bytes: u64) -> Progress {
        let bar = (fmt::stderr_is_tty() && total_bytes > 64 << 20).then(|| {
            let b = indicatif::ProgressBar::new(total_bytes);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} read, {msg} [{elapsed}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress { bar }
    }

    pub fn update(&self, spans: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
            b.set_message(format!("{spans} spans"));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn run(a: Args) -> CliResult {
    let q = a.query()?;
    let files = super::expand_inputs(&a.db)?;
    if files.len() > 1 {
        if a.tree {
            return Err(CliError::user("--tree reads one file at a time"));
        }
        let stores = super::open_stores(&files, &a.namespace)?;
        let opts = SummaryOptions {
            sort: a.sort,
            limit: a.limit,
        };
        let t = std::time::Instant::now();
        let summary = summarize_many(stores, &q, &opts)?;
        if a.format == Format::Table || a.format == Format::Text {
            eprintln!(
                "Read {} files in {:.2} s",
                files.len(),
                t.elapsed().as_secs_f64()
            );
        }
        return render(&summary, a.format, q.clock);
    }
    let db = &files[0];
    let store = open_store(db, Some(&a.namespace))?;
    if a.tree {
        if q.has_window() || !q.names.is_empty() {
            return Err(CliError::user(
                "--tree does not take --since, --until or --name",
            ));
        }
        let format = match a.format {
            Format::Json => super::tree::Format::Json,
            Format::Csv => return Err(CliError::user("--tree supports --format text or json")),
            Format::Table | Format::Text => super::tree::Format::Text,
        };
        let opts = super::tree::Request {
            top: a.top,
            max_children: a.max_children,
            format,
            max_depth: a.max_depth,
            threads: a
                .threads
                .unwrap_or_else(ferret_analyze::analysis::default_threads),
        };
        return super::tree::run(&store, &q, &opts);
    }
    let progress = Progress::new(store.file_size());
    let opts = SummaryOptions {
        sort: a.sort,
        limit: a.limit,
    };
    let threads = a
        .threads
        .unwrap_or_else(ferret_analyze::analysis::default_threads);
    let summary = summarize_threads(
        &store,
        &q,
        &opts,
        threads,
        Some(&mut |n, b| progress.update(n, b)),
    )
    .map_err(|e| match e {
        // A damaged file (exit 2; `main` names it).
        e @ ferret_analyze::Error::Storage(_) => match CliError::from(e) {
            CliError::File(m) => CliError::File(format!("reading failed part way: {m}")),
            other => other,
        },
        e => e.into(),
    })?;
    progress.finish();
    render(&summary, a.format, q.clock)
}

/// Prints a summary in `format` on stdout; `clock` is the one its times
/// are on.
pub fn render(summary: &Summary, format: Format, clock: Clock) -> CliResult {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => write_json(&mut out, summary, clock)?,
        Format::Csv => write_csv(&mut out, summary)?,
        Format::Table | Format::Text => {
            let color = fmt::color_stdout();
            eprintln!(
                "Analyzing {}{}",
                super::describe_runs(&summary.run_id, summary.latest),
                super::clock_note(clock)
            );
            write!(out, "{}", render_table(summary, color))?;
            writeln!(out, "{}", summary_line(summary, color))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn secs(ns: f64) -> f64 {
    ns / 1e9
}

/// One row of the JSON `stats` array (times in seconds).
#[derive(serde::Serialize)]
struct JsonStat<'a> {
    name: &'a str,
    count: u64,
    total_s: f64,
    avg_s: f64,
    min_s: f64,
    max_s: f64,
    p50_s: f64,
    p95_s: f64,
    p99_s: f64,
    self_s: f64,
    error_count: u64,
    error_rate: f64,
}

/// The JSON document of the schema (times in seconds), written
/// row by row: memory as the CSV path's, whatever the number of names.
pub fn write_json(out: &mut impl Write, s: &Summary, clock: Clock) -> CliResult {
    write!(
        out,
        "{{\"run_id\":{},\"format\":{},{}\"spans\":{},\"skipped_rows\":{},\"stats\":[",
        serde_json::to_string(&s.run_id)?,
        serde_json::to_string(s.format.as_str())?,
        super::clock_field(clock),
        s.spans,
        s.skipped_rows
    )?;
    for (i, n) in s.stats.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(
            &mut *out,
            &JsonStat {
                name: &n.name,
                count: n.count,
                total_s: secs(n.total_ns as f64),
                avg_s: secs(n.avg_ns),
                min_s: secs(n.min_ns as f64),
                max_s: secs(n.max_ns as f64),
                p50_s: secs(n.p50_ns),
                p95_s: secs(n.p95_ns),
                p99_s: secs(n.p99_ns),
                self_s: secs(n.self_ns as f64),
                error_count: n.error_count,
                error_rate: n.error_rate,
            },
        )?;
    }
    writeln!(out, "]}}")?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "name,count,total_s,avg_s,min_s,max_s,p50_s,p95_s,p99_s,self_s,error_count,error_rate"
    )?;
    for n in &s.stats {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&n.name),
            n.count,
            secs(n.total_ns as f64),
            secs(n.avg_ns),
            secs(n.min_ns as f64),
            secs(n.max_ns as f64),
            secs(n.p50_ns),
            secs(n.p95_ns),
            secs(n.p99_ns),
            secs(n.self_ns as f64),
            n.error_count,
            n.error_rate
        )?;
    }
    Ok(())
}

/// The summary table.
pub fn render_table(s: &Summary, color: bool) -> String {
    let mut t = Table::new(&[
        ("Name", Align::Left),
        ("Count", Align::Right),
        ("Total", Align::Right),
        ("Self", Align::Right),
        ("Avg", Align::Right),
        ("Min", Align::Right),
        ("p50", Align::Right),
        ("p95", Align::Right),
        ("p99", Align::Right),
        ("Max", Align::Right),
        ("Errors", Align::Right),
    ]);
    let max_total = s.stats.iter().map(|n| n.total_ns).max().unwrap_or(0) as f64;
    for n in &s.stats {
        let total = fmt::dur(n.total_ns as f64);
        let total = match fmt::heat(n.total_ns as f64, max_total) {
            Some(st) => fmt::paint(&total, st, color),
            None => total,
        };
        let errors = if n.error_count == 0 {
            "0".to_owned()
        } else {
            fmt::paint(
                &format!("{} ({:.1}%)", n.error_count, n.error_rate * 100.0),
                Style::Red,
                color,
            )
        };
        t.row(vec![
            fmt::term_safe(&n.name).into_owned(),
            n.count.to_string(),
            total,
            fmt::dur(n.self_ns as f64),
            fmt::dur(n.avg_ns),
            fmt::dur(n.min_ns as f64),
            fmt::dur(n.p50_ns),
            fmt::dur(n.p95_ns),
            fmt::dur(n.p99_ns),
            fmt::dur(n.max_ns as f64),
            errors,
        ]);
    }
    t.render(color)
}

fn summary_line(s: &Summary, color: bool) -> String {
    let counters = s.counters.as_ref();
    let names = s.names_total;
    let shown = if names > s.stats.len() {
        format!("{names} names ({} shown)", s.stats.len())
    } else {
        format!("{names} names")
    };
    let mut parts = vec![
        format!("{} spans", s.spans),
        shown,
        format!("wall {}", fmt::dur(s.wall_ns as f64)),
        format!("{} skipped rows", s.skipped_rows),
    ];
    match counters {
        Some(c) => {
            parts.push(format!("{} dropped by the recorder", c.dropped()));
            if c.sampled_out > 0 {
                parts.push(format!(
                    "{} sampled out (counts and totals cover recorded traces only)",
                    c.sampled_out
                ));
            }
            if c.shed > 0 {
                parts.push(format!("{} shed (whole traces, queue full)", c.shed));
            }
            if !c.complete() {
                parts.push(super::runs::incomplete_note(c));
            }
        }
        None => parts.push("recorder drops unknown (ferret-io)".into()),
    }
    let line = parts.join(" · ");
    if s.skipped_rows > 0
        || counters.is_some_and(|c| c.dropped() + c.sampled_out + c.shed > 0 || !c.complete())
    {
        fmt::paint(&line, Style::Yellow, color)
    } else {
        fmt::paint(&line, Style::Dim, color)
    }
}
