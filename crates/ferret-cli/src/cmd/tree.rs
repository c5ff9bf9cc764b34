//! `ferret analyze --tree`: the slowest call trees of a run.

use super::analyze::Args;
use crate::error::{CliError, CliResult};
use ferret::store::Store;

pub fn run(_store: &Store, _run: &str, _by_default: bool, _a: &Args) -> CliResult {
    Err(CliError::user("--tree is not implemented yet"))
}
