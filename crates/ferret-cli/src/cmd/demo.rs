//! `ferret demo`.
use crate::error::{CliError, CliResult};

/// Demo.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> CliResult {
    Err(CliError::user("demo: todo"))
}
