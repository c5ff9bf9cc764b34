//! Flame graph SVG, drawn by inferno from the folded stacks. Memory: the
//! distinct call paths.

use super::{folded, Options};
use crate::error::{CliError, CliResult};
use ferret::store::Store;
use inferno::flamegraph;
use std::io::Write;

pub fn write(store: &Store, opts: &Options, w: &mut dyn Write) -> CliResult<u64> {
    let (lines, n) = folded::lines(store, opts)?;
    if lines.is_empty() {
        return Err(CliError::user(format!(
            "run {} has no span with self time to draw",
            opts.run
        )));
    }
    let mut o = flamegraph::Options::default();
    o.title = format!("ferret run {}", opts.run);
    o.subtitle = Some(format!("{n} spans; width = self time"));
    o.count_name = "ns".to_owned();
    o.name_type = "Span:".to_owned();
    flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), w)
        .map_err(|e| CliError::Internal(format!("flame graph: {e}")))?;
    Ok(n)
}
