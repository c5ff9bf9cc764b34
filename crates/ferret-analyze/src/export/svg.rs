//! Flame graph SVG, drawn by inferno from the folded stacks. Memory: the
//! distinct call paths.

use super::{folded, Options};
use crate::analysis::query::Selection;
use crate::error::{Error, Result};
use crate::store::Store;
use inferno::flamegraph;
use std::io::Write;

/// Draws the run as a flame graph SVG (width = self time); returns the spans read.
pub fn write(store: &Store, sel: &Selection, opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let (lines, n, shift) = folded::lines(store, sel, opts)?;
    if lines.is_empty() {
        return Err(Error::Invalid(format!(
            "run {} has no span with self time to draw",
            sel.run
        )));
    }
    let mut o = flamegraph::Options::default();
    o.title = match sel.clock {
        crate::analysis::Clock::Wall => format!("ferret run {}", sel.run),
        c => format!("ferret run {} ({} clock)", sel.run, c.name()),
    };
    o.subtitle = Some(if shift == 0 {
        format!("{n} spans; width = self time")
    } else {
        format!(
            "{n} spans; width = self time (in units of 2^{shift} ns: the file's times overflow)"
        )
    });
    o.count_name = "ns".to_owned();
    o.name_type = "Span:".to_owned();
    flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), w)
        .map_err(|e| Error::Io(std::io::Error::other(format!("flame graph: {e}"))))?;
    Ok(n)
}
