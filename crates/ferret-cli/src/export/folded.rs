//! Folded stacks (`root;child;leaf <self-ns>`), as flamegraph.pl and inferno
//! read them. Memory: the distinct call paths. Stacks deeper than
//! `--max-depth` frames are cut (see [`ferret::analysis::paths`]).

use super::Options;
use crate::error::CliResult;
use ferret::analysis::{fold_paths, FoldOptions};
use ferret::store::Store;
use std::io::Write;

/// The folded lines of a run and the number of spans read.
pub fn lines(store: &Store, opts: &Options) -> CliResult<(Vec<String>, u64)> {
    let (paths, n) = fold_paths(store, opts.run, &fold_options(opts))?;
    Ok((
        paths
            .into_iter()
            .map(|p| format!("{} {}", p.stack, p.self_ns))
            .collect(),
        n,
    ))
}

fn fold_options(opts: &Options) -> FoldOptions {
    FoldOptions {
        max_depth: opts.max_depth.max(1),
    }
}

pub fn write(store: &Store, opts: &Options, w: &mut dyn Write) -> CliResult<u64> {
    let (paths, n) = fold_paths(store, opts.run, &fold_options(opts))?;
    for p in &paths {
        writeln!(w, "{} {}", p.stack, p.self_ns)?;
    }
    Ok(n)
}
