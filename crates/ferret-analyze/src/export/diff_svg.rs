//! Differential flame graph SVG of two sides of a comparison, drawn by
//! inferno from two-column folded stacks: width = candidate self time, red
//! = slower, blue = faster than the base. Memory: the distinct call paths.

use crate::error::{Error, Result};
use inferno::flamegraph;
use std::io::Write;

/// Draws `(path, base ns, candidate ns)` rows (see
/// [`diff_paths`](crate::analysis::diff::diff_paths)) as a differential
/// flame graph with this title.
pub fn write(paths: &[(String, f64, f64)], title: &str, w: &mut dyn Write) -> Result<()> {
    if paths.is_empty() {
        return Err(Error::Invalid(
            "no span with self time to draw on either side".into(),
        ));
    }
    let lines: Vec<String> = paths
        .iter()
        .map(|(p, b, c)| format!("{p} {} {}", b.round() as u64, c.round() as u64))
        .collect();
    let mut o = flamegraph::Options::default();
    o.title = title.to_owned();
    o.subtitle =
        Some("width = candidate self time; red = slower, blue = faster than the base".into());
    o.count_name = "ns".to_owned();
    o.name_type = "Span:".to_owned();
    flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), w)
        .map_err(|e| Error::Io(std::io::Error::other(format!("flame graph: {e}"))))
}
