//! Exporters: each streams a run into one file format.
//!
//! | format | module | memory bound |
//! | --- | --- | --- |
//! | jsonl | [`jsonl`] | constant |
//! | chrome | [`chrome`] | threads and processes of the run |
//! | folded, svg | [`folded`], [`svg`] | distinct call paths |
//! | speedscope | [`speedscope`] | a sort chunk + distinct frames + open lanes |

pub mod chrome;
pub mod extsort;
pub mod folded;
pub mod jsonl;
pub mod speedscope;
pub mod svg;

use crate::error::{CliError, CliResult};
use ferret::store::Store;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Output formats of `ferret export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// speedscope evented profiles (one per thread and overlap lane).
    Speedscope,
    /// Chrome / Perfetto Trace Event Format JSON (`X` events).
    Chrome,
    /// Folded stacks: `root;child;leaf <self-ns>`.
    Folded,
    /// Flame graph SVG (inferno).
    Svg,
    /// One span per line, every field.
    Jsonl,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope",
            Format::Chrome => "chrome",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Jsonl => "jsonl",
        }
    }
}

/// What to export.
pub struct Options<'a> {
    /// Run id.
    pub run: &'a str,
    /// speedscope: tag keys appended to frame names.
    pub frame_tags: &'a [String],
}

/// Writes `run` of `store` as `format` to `out` (`-` = stdout); returns the
/// number of spans read.
pub fn export(store: &Store, opts: &Options, format: Format, out: &Path) -> CliResult<u64> {
    let mut w: Box<dyn Write> = if out.as_os_str() == "-" {
        Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock()))
    } else {
        let f = File::create(out)
            .map_err(|e| CliError::user(format!("cannot create {}: {e}", out.display())))?;
        Box::new(BufWriter::with_capacity(1 << 20, f))
    };
    let n = match format {
        Format::Jsonl => jsonl::write(store, opts, &mut w)?,
        Format::Chrome => chrome::write(store, opts, &mut w)?,
        Format::Folded => folded::write(store, opts, &mut w)?,
        Format::Svg => svg::write(store, opts, &mut w)?,
        Format::Speedscope => speedscope::write(store, opts, &mut w)?,
    };
    w.flush()?;
    Ok(n)
}

/// Time origin for formats that want small relative times: the run's first
/// span start when the file records it, else 0 (times stay epoch-based).
pub fn origin_ns(store: &Store, run: &str) -> CliResult<i64> {
    Ok(store
        .run_counters(run)?
        .map(|r| r.first_start_ns)
        .filter(|&t| t > 0)
        .unwrap_or(0))
}

/// Writes `ns` as microseconds with three decimals (exact, no float).
pub fn write_us(w: &mut dyn Write, ns: i64) -> io::Result<()> {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    write!(w, "{sign}{}.{:03}", a / 1000, a % 1000)
}
