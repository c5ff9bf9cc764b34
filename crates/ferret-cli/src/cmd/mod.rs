//! One module per subcommand: each parses its arguments into a library
//! request, calls one library function and renders the result.

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
