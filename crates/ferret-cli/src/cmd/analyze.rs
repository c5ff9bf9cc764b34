//! `ferret analyze`.
use crate::error::{CliError, CliResult};
use std::path::PathBuf;

/// Analyze.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file.
    pub db: PathBuf,
}

pub fn run(_a: Args) -> CliResult {
    Err(CliError::user("analyze: todo"))
}
