//! Exporters: each streams a run into one file format.
//!
//! | format | module | memory bound |
//! | --- | --- | --- |
//! | jsonl | [`jsonl`] | constant |
//! | chrome | [`chrome`] | threads and processes of the run |
//! | folded, svg | [`folded`], [`svg`] | distinct call paths |
//! | differential svg (`ferret diff`) | [`diff_svg`] | distinct call paths of both sides |
//! | speedscope | [`speedscope`] | a sort chunk + distinct frames + open lanes |

pub mod chrome;
pub mod diff_svg;
mod extsort;
pub mod folded;
pub mod jsonl;
pub mod speedscope;
pub mod svg;

use crate::error::{Error, Result};
use crate::store::Store;
use std::io::{self, Write};

/// The export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 5] = [
        Format::Speedscope,
        Format::Chrome,
        Format::Folded,
        Format::Svg,
        Format::Jsonl,
    ];

    /// The format's name, as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope",
            Format::Chrome => "chrome",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Jsonl => "jsonl",
        }
    }

    /// One line on what the format is for.
    pub fn about(&self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope evented profiles (one per thread and overlap lane)",
            Format::Chrome => "Chrome / Perfetto Trace Event Format JSON (X events)",
            Format::Folded => "folded stacks: root;child;leaf <self-ns>",
            Format::Svg => "flame graph SVG (inferno)",
            Format::Jsonl => "one span per line, every field",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::Invalid(format!("unknown export format '{s}'")))
    }
}

/// What to export.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Run id.
    pub run: &'a str,
    /// speedscope: tag keys appended to frame names.
    pub frame_tags: &'a [String],
}

/// Writes `run` of `store` as `format` to `w`; returns the number of spans
/// read. `w` is written in many small pieces: give it a buffered writer.
pub fn write(store: &Store, opts: &Options, format: Format, w: &mut dyn Write) -> Result<u64> {
    let n = match format {
        Format::Jsonl => jsonl::write(store, opts, w)?,
        Format::Chrome => chrome::write(store, opts, w)?,
        Format::Folded => folded::write(store, opts, w)?,
        Format::Svg => svg::write(store, opts, w)?,
        Format::Speedscope => speedscope::write(store, opts, w)?,
    };
    w.flush()?;
    Ok(n)
}

/// Time origin for formats that want small relative times: the run's first
/// span start when the file records it, else 0 (times stay epoch-based).
pub fn origin_ns(store: &Store, run: &str) -> Result<i64> {
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
