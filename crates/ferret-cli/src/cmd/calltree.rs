//! `ferret calltree`: every span of a run merged by call path.

use crate::error::{CliError, CliResult};
use std::path::PathBuf;

/// Merged call tree of a run.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
}

pub fn run(_a: Args) -> CliResult {
    Err(CliError::user("calltree is not implemented yet"))
}
