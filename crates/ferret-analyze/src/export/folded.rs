//! Folded stacks (`root;child;leaf <self-ns>`), as flamegraph.pl and inferno
//! read them. Memory: the distinct call paths.

use super::Options;
use crate::analysis::{fold_paths, FoldedPath};
use crate::error::Result;
use crate::store::Store;
use std::io::Write;

/// The folded lines of a run and the number of spans read.
pub fn lines(store: &Store, run: &str) -> Result<(Vec<String>, u64)> {
    let (paths, n) = fold_paths(store, run)?;
    Ok((paths.iter().map(line).collect(), n))
}

fn line(p: &FoldedPath) -> String {
    format!("{} {}", p.joined(), p.self_ns)
}

/// Writes the run as folded stacks; returns the spans read.
pub fn write(store: &Store, opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let (paths, n) = fold_paths(store, opts.run)?;
    for p in &paths {
        writeln!(w, "{}", line(p))?;
    }
    Ok(n)
}
