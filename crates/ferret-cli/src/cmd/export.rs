//! `ferret export` and `ferret flamegraph`.

use crate::error::{CliError, CliResult};
use std::path::PathBuf;

/// Export a run.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
}

/// Flame graph SVG of a run.
#[derive(clap::Args)]
pub struct FlameArgs {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
}

pub fn run(_a: Args) -> CliResult {
    Err(CliError::user("export is not implemented yet"))
}

pub fn run_flame(_a: FlameArgs) -> CliResult {
    Err(CliError::user("flamegraph is not implemented yet"))
}
