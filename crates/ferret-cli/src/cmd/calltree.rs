//! `ferret calltree`: every span of a run merged by call path.

use super::open_store;
use crate::art;
use crate::error::{CliError, CliResult};
use crate::fmt::{self, Style};
use ferret_analyze::analysis::{call_tree_many, call_tree_threads, CallTree, Query};
use std::io::Write;

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented tree for people.
    Text,
    /// JSON for scripts (times in seconds).
    Json,
}

/// Merged call tree of a run: every span, merged by call path, with count,
/// total, self, avg, max and errors per path; children sorted by total.
/// Memory grows with the number of distinct call paths, not spans.
#[derive(clap::Args)]
pub struct Args {
    /// Trace files (native or ferret-io) or globs: several files merge
    /// into one tree (each file's latest run, or --run wherever it appears).
    #[arg(required = true, value_name = "DB")]
    pub db: Vec<String>,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Levels to show; 0 shows all. A path whose children are cut shows
    /// `… N paths below, cut by --max-depth`.
    #[arg(long, visible_alias = "max-depth", default_value_t = 0)]
    pub depth: usize,
    /// Hide paths below this percentage of the run's total time.
    #[arg(long, default_value_t = 0.0)]
    pub min_percent: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Clock of durations and self times: wall (start to end) or busy
    /// (time running on a thread: entered tracing spans, polled futures;
    /// sync spans count their wall time; ferret-io files: wall).
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: super::ClockArg,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Threads reading a native file (default: the number of cores); the
    /// tree is the same for any count. ferret-io files read with one.
    #[arg(long, value_name = "N", value_parser = super::parse_threads)]
    pub threads: Option<usize>,
}

pub fn run(a: Args) -> CliResult {
    if !(0.0..=100.0).contains(&a.min_percent) {
        return Err(CliError::user("--min-percent must be between 0 and 100"));
    }
    let files = super::expand_inputs(&a.db)?;
    let q = Query {
        run: a.run.clone(),
        clock: a.clock.into(),
        ..Query::default()
    };
    let t = if files.len() > 1 {
        call_tree_many(super::open_stores(&files, &a.namespace)?, &q)?
    } else {
        let threads = a
            .threads
            .unwrap_or_else(ferret_analyze::analysis::default_threads);
        call_tree_threads(&open_store(&files[0], Some(&a.namespace))?, &q, threads)?
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match a.format {
        Format::Json => write_json(&mut out, &t, &a)?,
        Format::Text => {
            let how = if t.latest { " (latest)" } else { "" };
            let runs = if t.run_id.contains(',') {
                "runs"
            } else {
                "run"
            };
            eprintln!(
                "Call tree of {runs} {}{how}{}",
                t.run_id,
                super::clock_note(a.clock.into())
            );
            write_text(&mut out, &t, &a, fmt::color_stdout())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn pct(t: &CallTree, ns: u64) -> f64 {
    if t.total_ns == 0 {
        0.0
    } else {
        ns as f64 * 100.0 / t.total_ns as f64
    }
}

/// The visible children of a node (or the roots).
fn visible<'a>(
    t: &'a CallTree,
    kids: &'a [usize],
    a: &'a Args,
) -> impl Iterator<Item = usize> + 'a {
    kids.iter()
        .copied()
        .filter(move |&c| pct(t, t.nodes[c].total_ns) >= a.min_percent)
}

/// Paths in the subtrees of `kids`, counted without recursion.
fn paths_below(t: &CallTree, kids: &[usize]) -> usize {
    let mut n = 0;
    let mut stack = kids.to_vec();
    while let Some(i) = stack.pop() {
        n += 1;
        stack.extend_from_slice(&t.nodes[i].children);
    }
    n
}

fn write_text(out: &mut impl Write, t: &CallTree, a: &Args, color: bool) -> CliResult {
    let max = t.roots.first().map_or(0, |&r| t.nodes[r].total_ns) as f64;
    // (node, prefix, is_last, depth)
    let mut stack: Vec<(usize, String, bool, usize)> = Vec::new();
    let roots: Vec<usize> = visible(t, &t.roots, a).collect();
    for (k, &r) in roots.iter().enumerate().rev() {
        stack.push((r, String::new(), k + 1 == roots.len(), 1));
    }
    while let Some((i, prefix, last, depth)) = stack.pop() {
        let branch = art::branch(depth - 1, last);
        let mark = art::depth_mark(depth - 1);
        let n = &t.nodes[i];
        let total = if n.count == 0 {
            format!("≥{}", fmt::dur(n.total_ns as f64))
        } else {
            fmt::dur(n.total_ns as f64)
        };
        let total = match fmt::heat(n.total_ns as f64, max) {
            Some(st) => fmt::paint(&total, st, color),
            None => total,
        };
        let errors = match n.error_count {
            0 => String::new(),
            1 => fmt::paint("  1 error", Style::Red, color),
            e => fmt::paint(&format!("  {e} errors"), Style::Red, color),
        };
        let open = if n.count == 0 {
            fmt::paint(
                "  (open or lost: the span is not in the file)",
                Style::Dim,
                color,
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{prefix}{branch}{mark}{} ×{}  total {total} ({:.1}%)  self {}  avg {}  max {}{errors}{open}",
            fmt::term_safe(&n.name),
            n.count,
            pct(t, n.total_ns),
            fmt::dur(n.self_ns as f64),
            fmt::dur(n.avg_ns()),
            fmt::dur(n.max_ns as f64),
        )?;
        let child_prefix = art::child_prefix(&prefix, depth - 1, last);
        let kids: Vec<usize> = visible(t, &n.children, a).collect();
        if a.depth > 0 && depth >= a.depth {
            let below = paths_below(t, &kids);
            if below > 0 {
                writeln!(
                    out,
                    "{child_prefix}{}{}{}",
                    art::branch(depth, true),
                    art::depth_mark(depth),
                    fmt::paint(
                        &format!("… {below} paths below, cut by --max-depth"),
                        Style::Dim,
                        color
                    )
                )?;
            }
            continue;
        }
        for (k, &c) in kids.iter().enumerate().rev() {
            stack.push((c, child_prefix.clone(), k + 1 == kids.len(), depth + 1));
        }
    }
    let line = format!(
        "{} spans · {} paths · total {}{}",
        t.spans,
        t.nodes.len(),
        fmt::dur(t.total_ns as f64),
        if t.evicted_early > 0 {
            format!(
                " · {} spans finished early (too many open)",
                t.evicted_early
            )
        } else {
            String::new()
        }
    );
    writeln!(out, "{}", fmt::paint(&line, Style::Dim, color))?;
    Ok(())
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `{"run_id", "spans", "total_s", "roots": [node]}` with
/// `node = {name, count, total_s, self_s, avg_s, max_s, error_count, percent, children}`,
/// written without recursion.
fn write_json(out: &mut impl Write, t: &CallTree, a: &Args) -> CliResult {
    write!(
        out,
        "{{\"run_id\":{},{}\"spans\":{},\"total_s\":{},\"roots\":[",
        serde_json::to_string(&t.run_id)?,
        super::clock_field(a.clock.into()),
        t.spans,
        secs(t.total_ns)
    )?;
    // (children to write, next index, depth of those children)
    let roots: Vec<usize> = visible(t, &t.roots, a).collect();
    let mut stack: Vec<(Vec<usize>, usize, usize)> = vec![(roots, 0, 1)];
    while let Some(top) = stack.last_mut() {
        if top.1 >= top.0.len() {
            stack.pop();
            if stack.is_empty() {
                break;
            }
            write!(out, "]}}")?;
            continue;
        }
        if top.1 > 0 {
            write!(out, ",")?;
        }
        let i = top.0[top.1];
        let depth = top.2;
        top.1 += 1;
        let n = &t.nodes[i];
        write!(
            out,
            "{{\"name\":{},\"count\":{},\"total_s\":{},\"self_s\":{},\"avg_s\":{},\"max_s\":{},\"error_count\":{},\"percent\":{},\"children\":[",
            serde_json::to_string(&n.name)?,
            n.count,
            secs(n.total_ns),
            secs(n.self_ns),
            n.avg_ns() / 1e9,
            secs(n.max_ns),
            n.error_count,
            pct(t, n.total_ns)
        )?;
        let kids: Vec<usize> = if a.depth > 0 && depth >= a.depth {
            vec![]
        } else {
            visible(t, &n.children, a).collect()
        };
        stack.push((kids, 0, depth + 1));
    }
    writeln!(out, "]}}")?;
    Ok(())
}
