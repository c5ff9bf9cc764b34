//! `ferret`: record a demo workload and analyze ferret / ferret-io trace files.

mod art;
mod cmd;
mod diff_config;
mod diff_render;
mod error;
mod fmt;
mod live_render;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;

/// Ferret: a persistent span profiler. Analyze trace files of any size in
/// flat memory: native ferret files and ferret-io (Python) files alike.
#[derive(Parser)]
#[command(name = "ferret", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record a synthetic workload through the recorder, then analyze it.
    Demo(cmd::demo::Args),
    /// Per-name summary of a run (or, with --tree, its slowest call trees).
    Analyze(cmd::analyze::Args),
    /// List the runs of a file.
    Runs(cmd::runs::Args),
    /// Merged call tree of a run: every span grouped by call path.
    Calltree(cmd::calltree::Args),
    /// Export a run for other viewers and engines: speedscope, chrome,
    /// folded, svg, jsonl, otlp, parquet.
    Export(cmd::export::Args),
    /// Send runs to an OpenTelemetry receiver over OTLP/HTTP.
    Push(cmd::push::Args),
    /// Compare two runs (or groups of runs) per name and gate regressions (exit 1).
    Diff(cmd::diff::Args),
    /// Draw a flame graph SVG of a run (shorthand for `export --format svg`).
    Flamegraph(cmd::export::FlameArgs),
    /// List the stall reports of the recorders' watchdogs.
    #[command(long_about = cmd::stalls::LONG_ABOUT)]
    Stalls(cmd::stalls::Args),
    /// Print the open spans of the processes recording now (latest snapshot).
    #[command(long_about = cmd::dump::LONG_ABOUT)]
    Dump(cmd::dump::Args),
    /// Watch a file live (or replay a run): per-name rates and latencies
    /// over a sliding window, in-flight spans, live processes.
    Watch(cmd::watch::Args),
}

impl Command {
    /// The trace file the command reads or writes (`None` when it reads
    /// two: `diff` of two files names them in its own messages).
    fn db(&self) -> Option<&std::path::Path> {
        /// One file given: its path. Several (or a glob): the command's
        /// messages name the file themselves.
        fn one(files: &[String]) -> Option<&std::path::Path> {
            match files {
                [f] if !f.contains(['*', '?', '[']) => Some(std::path::Path::new(f)),
                _ => None,
            }
        }
        match self {
            Command::Demo(a) => Some(&a.db),
            Command::Analyze(a) => one(&a.db),
            Command::Runs(a) => one(&a.db),
            Command::Calltree(a) => one(&a.db),
            Command::Export(a) => one(&a.db),
            Command::Push(a) => one(&a.db),
            Command::Flamegraph(a) => Some(&a.db),
            Command::Watch(a) => Some(&a.db),
            Command::Diff(a) if a.candidate.is_none() => Some(&a.base),
            Command::Diff(_) => None,
            Command::Stalls(a) => Some(&a.db),
            Command::Dump(a) => Some(&a.db),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let db = cli.command.db().map(std::path::Path::to_path_buf);
    let r = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Runs(a) => cmd::runs::run(a),
        Command::Calltree(a) => cmd::calltree::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Push(a) => cmd::push::run(a),
        Command::Flamegraph(a) => cmd::export::run_flame(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Stalls(a) => cmd::stalls::run(a),
        Command::Dump(a) => cmd::dump::run(a),
        Command::Watch(a) => cmd::watch::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(CliError::Regression) => ExitCode::from(1),
        Err(e) => {
            match &e {
                CliError::File(_) => match &db {
                    Some(db) => eprintln!("ferret: {}: {e}", db.display()),
                    None => eprintln!("ferret: {e}"),
                },
                _ => eprintln!("ferret: {e}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}
