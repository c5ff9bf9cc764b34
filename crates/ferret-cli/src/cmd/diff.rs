//! `ferret diff`: compare runs and gate regressions. Parses arguments and
//! the `--config` file, calls [`ferret_analyze::analysis::diff::diff`], renders.

use super::open_store;
use crate::diff_config::Config;
use crate::diff_render;
use crate::error::{CliError, CliResult};
use ferret_analyze::analysis::diff::{self, By, Clock, DiffOptions, SideSpec};
use ferret_analyze::store::Store;
use std::io::Write;
use std::path::PathBuf;

/// Output formats of a comparison.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Colored table for people (`~`: no significant change).
    Table,
    /// JSON for scripts (times in seconds, changes relative: 0.25 = +25%).
    Json,
    /// Markdown for a pull-request comment or a CI job summary.
    Markdown,
    /// JUnit XML: one test case per name, a failure per regression.
    Junit,
    /// Differential flame graph of self time per call path (red slower, blue faster).
    Svg,
}

/// Row keys.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ByArg {
    /// Per span name.
    Name,
    /// Per call path.
    Path,
}

pub use super::ClockArg;

/// Compare two runs (or two groups of runs) per name and gate regressions.
///
/// `ferret diff BASE CANDIDATE` compares the latest run of each file;
/// `ferret diff FILE` compares the two latest runs of one file. A metric
/// (p50, p95, p99, calls per root) is flagged only with enough samples on
/// both sides, a relative change of at least --threshold, an absolute change
/// of at least --min-abs, and statistical significance after the
/// Benjamini–Hochberg correction across names.
#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 no regression, 1 regression (or a new/gone name with \
--fail-on-new/--fail-on-gone), 2 bad input (missing or bad file, unknown run, empty side, bad option).

Config file (TOML, --config): threshold = \"10%\", min_abs = \"50us\", alpha = 0.05,
fail_on_new = false, fail_on_gone = false, exclude = [\"glob\", ...], and [[rule]] tables
with name = \"glob\" and any of threshold, min_abs, exclude (later rules win).
Command-line options override the file."
)]
pub struct Args {
    /// Base trace file (native or ferret-io); alone, it holds both sides.
    pub base: PathBuf,
    /// Candidate trace file (default: the base file).
    pub candidate: Option<PathBuf>,
    /// Base run(s); repeat to compare a group (default: latest, or the
    /// latest before the candidate's runs when one file holds both).
    #[arg(long = "base-run", value_name = "ID")]
    pub base_runs: Vec<String>,
    /// Candidate run(s); repeat to compare a group (default: latest).
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,
    /// Compare per span name or per call path.
    #[arg(long, value_enum, default_value = "name")]
    pub by: ByArg,
    /// Clock to compare.
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: ClockArg,
    /// Minimum relative change, e.g. 10% or 0.1 (default 10%).
    #[arg(long, value_parser = parse_threshold)]
    pub threshold: Option<f64>,
    /// Minimum absolute change, e.g. 50us, 1ms, 0 (default 50us).
    #[arg(long = "min-abs", value_parser = parse_min_abs)]
    pub min_abs: Option<f64>,
    /// False discovery rate of the significance test (default 0.05).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// TOML file with thresholds, per-name rules and exclusions.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fail (exit 1) when a name appears only in the candidate.
    #[arg(long)]
    pub fail_on_new: bool,
    /// Fail (exit 1) when a name appears only in the base.
    #[arg(long)]
    pub fail_on_gone: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the output to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Table and markdown: unchanged rows to show (0 = all); changed rows are always shown.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// ferret-io log name holding the spans.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `10%`, `12.5%` or a fraction such as `0.1`.
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        format!("bad threshold '{s}': use a percentage such as 10% or a fraction such as 0.1")
    })?;
    if !(0.0..=100.0).contains(&v) || (t.find('%').is_none() && v > 1.0) {
        return Err(format!(
            "bad threshold '{s}': use a percentage such as 10% or a fraction in [0, 1]"
        ));
    }
    Ok(v)
}

/// `50us`, `1.5ms`, `2s`, `0`: a duration in ns.
pub fn parse_min_abs(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if t.parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    crate::fmt::parse_duration_ns(t)
        .map(|ns| ns as f64)
        .map_err(|_| format!("bad duration '{s}': use e.g. 50us, 1.5ms, 2s or 0"))
}

/// Runs picked for the two sides: (base runs, candidate runs).
fn pick_runs(
    base: &Store,
    cand: &Store,
    same_file: bool,
    a: &Args,
) -> CliResult<(Vec<String>, Vec<String>)> {
    for r in &a.base_runs {
        base.check_run(r)?;
    }
    for r in &a.runs {
        cand.check_run(r)?;
    }
    let cand_runs = if a.runs.is_empty() {
        vec![cand.latest_run()?]
    } else {
        a.runs.clone()
    };
    let base_runs = if !a.base_runs.is_empty() {
        a.base_runs.clone()
    } else if same_file {
        // The latest run that is not a candidate.
        let all = base.runs()?;
        match all.iter().rev().find(|r| !cand_runs.contains(&r.run_id)) {
            Some(r) => vec![r.run_id.clone()],
            None => {
                return Err(CliError::user(format!(
                    "{}: only one run ({}); give a second file or a --base-run to compare against",
                    a.base.display(),
                    cand_runs.join(", ")
                )))
            }
        }
    } else {
        vec![base.latest_run()?]
    };
    Ok((base_runs, cand_runs))
}

fn options(a: &Args, cfg: Config) -> CliResult<DiffOptions> {
    let d = DiffOptions::default();
    let alpha = a.alpha.or(cfg.alpha).unwrap_or(d.alpha);
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(CliError::user(format!(
            "--alpha {alpha}: must be in (0, 1)"
        )));
    }
    Ok(DiffOptions {
        by: match a.by {
            ByArg::Name => By::Name,
            ByArg::Path => By::Path,
        },
        clock: Clock::from(a.clock),
        threshold: a.threshold.or(cfg.threshold).unwrap_or(d.threshold),
        min_abs_ns: a.min_abs.or(cfg.min_abs_ns).unwrap_or(d.min_abs_ns),
        alpha,
        rules: cfg.rules,
        fail_on_new: a.fail_on_new || cfg.fail_on_new,
        fail_on_gone: a.fail_on_gone || cfg.fail_on_gone,
    })
}

pub fn run(a: Args) -> CliResult {
    // Every failure of a comparison is bad input (exit 2): exit 1 means a regression.
    let failed = compare(&a).map_err(|e| match e {
        CliError::Internal(m) => CliError::User(m),
        e => e,
    })?;
    if failed {
        return Err(CliError::Regression);
    }
    Ok(())
}

/// Runs the comparison and writes the output; true when the gate fails.
fn compare(a: &Args) -> CliResult<bool> {
    let cfg = match &a.config {
        Some(p) => Config::load(p).map_err(CliError::User)?,
        None => Config::default(),
    };
    let opts = options(a, cfg)?;
    let base = open_store(&a.base, Some(&a.namespace))?;
    let cand_path = a.candidate.clone().unwrap_or_else(|| a.base.clone());
    let same_file = a.candidate.is_none();
    let cand = if same_file {
        None
    } else {
        Some(open_store(&cand_path, Some(&a.namespace))?)
    };
    let cand_store = cand.as_ref().unwrap_or(&base);
    let (base_runs, cand_runs) = pick_runs(&base, cand_store, same_file, a)?;
    let bspec = SideSpec {
        store: &base,
        runs: base_runs,
    };
    let cspec = SideSpec {
        store: cand_store,
        runs: cand_runs,
    };
    let progress = super::analyze::Progress::new(base.file_size() + cand_store.file_size());
    let mut read = 0u64;
    let mut last = 0u64;
    let report = diff::diff(&bspec, &cspec, &opts, &mut |n, b| {
        // Bytes restart at 0 for each run: keep a running total.
        if b < last {
            read += last;
        }
        last = b;
        progress.update(n, read + b);
    });
    progress.finish();
    let report = report?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| CliError::user(format!("{}: cannot write: {e}", p.display())),
        )?)),
        None => Box::new(anstream::AutoStream::auto(std::io::stdout()).lock()),
    };
    match a.format {
        Format::Table => {
            if a.output.is_some() {
                let mut plain = anstream::StripStream::new(&mut out);
                write!(plain, "{}", diff_render::table(&report, a.limit))?;
            } else {
                write!(out, "{}", diff_render::table(&report, a.limit))?;
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &diff_render::json(&report))?;
            writeln!(out)?;
        }
        Format::Markdown => write!(out, "{}", diff_render::markdown(&report, a.limit))?,
        Format::Junit => write!(out, "{}", diff_render::junit(&report))?,
        Format::Svg => {
            let paths = diff::diff_paths(&bspec, &cspec)?;
            diff_render::svg(&report, &paths, &mut out)?;
        }
    }
    out.flush()?;
    Ok(report.failed)
}
