//! `ferret runs`: one line per run.
use crate::error::{CliError, CliResult};
use std::path::PathBuf;

/// List runs.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file.
    pub db: PathBuf,
}

pub fn run(_a: Args) -> CliResult {
    Err(CliError::user("runs: todo"))
}
