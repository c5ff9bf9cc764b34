//! One module per subcommand; shared helpers for opening files and choosing runs.

pub mod analyze;
pub mod calltree;
pub mod demo;
pub mod diff;
pub mod export;
pub mod runs;
pub mod tree;

use crate::error::CliResult;
use ferret_analyze::store::{OpenOptions, Store};
use std::path::Path;

/// Opens a trace file for reading (native or ferret-io).
pub fn open_store(path: &Path, namespace: Option<&str>) -> CliResult<Store> {
    Ok(Store::open_with(
        path,
        &OpenOptions {
            namespace: namespace.map(str::to_owned),
        },
    )?)
}

/// The run to analyze: the one asked for (checked), or the latest.
/// Returns the run id and whether it was chosen by default.
pub fn pick_run(store: &Store, run: Option<&str>) -> CliResult<(String, bool)> {
    match run {
        Some(r) => {
            store.check_run(r)?;
            Ok((r.to_owned(), false))
        }
        None => Ok((store.latest_run()?, true)),
    }
}
