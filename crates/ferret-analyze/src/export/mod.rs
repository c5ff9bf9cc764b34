//! Exporters: each streams a run into one file format.
//!
//! | format | module | memory bound |
//! | --- | --- | --- |
//! | jsonl | [`jsonl`] | constant |
//! | chrome | [`chrome`] | threads and processes of the run |
//! | folded, svg | [`folded`], [`svg`] | distinct call paths |
//! | differential svg (`ferret diff`) | [`diff_svg`] | distinct call paths of both sides |
//! | speedscope | [`speedscope`] | a sort chunk + distinct frames + open lanes |
//! | otlp | [`otlp`] | one line (≤ 4 MiB) + processes and threads |
//! | parquet | [`parquet`](mod@self::parquet) | one row group + call paths (+ open spans, ferret-io) |

pub mod chrome;
pub mod diff_svg;
mod extsort;
pub mod folded;
pub mod jsonl;
pub mod otlp;
pub mod parquet;
pub mod speedscope;
pub mod svg;

use crate::analysis::query::{select, Clock, Query, Selection};
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
    /// OTLP/JSON lines: one `TracesData` per line (≤ 4 MiB).
    Otlp,
    /// Parquet, one row per span (flat schema for Spark and DuckDB).
    Parquet,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 7] = [
        Format::Speedscope,
        Format::Chrome,
        Format::Folded,
        Format::Svg,
        Format::Jsonl,
        Format::Otlp,
        Format::Parquet,
    ];

    /// The format's name, as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope",
            Format::Chrome => "chrome",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Jsonl => "jsonl",
            Format::Otlp => "otlp",
            Format::Parquet => "parquet",
        }
    }

    /// True when the format can carry durations on the busy clock: the
    /// flame-graph formats (folded, svg, speedscope as a sampled profile).
    /// The others place spans on a timeline or export every field of a
    /// span as recorded, so they keep wall time.
    pub fn has_busy_clock(&self) -> bool {
        matches!(self, Format::Folded | Format::Svg | Format::Speedscope)
    }

    /// One line on what the format is for.
    pub fn about(&self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope evented profiles (one per thread and overlap lane)",
            Format::Chrome => "Chrome / Perfetto Trace Event Format JSON (X events)",
            Format::Folded => "folded stacks: root;child;leaf <self-ns>",
            Format::Svg => "flame graph SVG (inferno)",
            Format::Jsonl => "one span per line, every field",
            Format::Otlp => {
                "OpenTelemetry OTLP/JSON lines (one TracesData per line, at most 4 MiB)"
            }
            Format::Parquet => "Parquet, one row per span (for Spark, DuckDB, pandas)",
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
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The run and time window.
    pub query: Query,
    /// speedscope: tag keys appended to frame names.
    pub frame_tags: Vec<String>,
    /// folded, svg: frames kept per stack (`None`:
    /// [`DEFAULT_FOLD_DEPTH`](crate::analysis::DEFAULT_FOLD_DEPTH)); deeper
    /// frames fold into one marker frame that carries their self time.
    pub max_depth: Option<usize>,
    /// otlp: the resources' `service.name` (default: the run label, else
    /// the file name).
    pub service_name: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The run exported.
    pub run: String,
    /// Spans read.
    pub spans: u64,
}

/// Writes the run `opts.query` selects as `format` to `w`. `w` is written
/// in many small pieces: give it a buffered writer.
pub fn write(store: &Store, opts: &Options, format: Format, w: &mut dyn Write) -> Result<Exported> {
    if opts.query.clock == Clock::Busy && !format.has_busy_clock() {
        return Err(Error::Invalid(format!(
            "--clock busy: the {} export keeps wall time (spans on a timeline, or every field \
             as recorded; busy time stays in the tags busy_ns and self_busy_ns); \
             use folded, svg or speedscope for busy time",
            format.name()
        )));
    }
    let sel = select(store, &opts.query)?;
    let spans = match format {
        Format::Jsonl => jsonl::write(store, &sel, opts, w)?,
        Format::Chrome => chrome::write(store, &sel, opts, w)?,
        Format::Folded => folded::write(store, &sel, opts, w)?,
        Format::Svg => svg::write(store, &sel, opts, w)?,
        Format::Speedscope => speedscope::write(store, &sel, opts, w)?,
        Format::Otlp => otlp::write_json_lines(
            store,
            &sel,
            &otlp::OtlpOptions {
                service_name: opts.service_name.clone(),
                ..otlp::OtlpOptions::default()
            },
            w,
        )?,
        Format::Parquet => self::parquet::write(store, &sel, opts, w)?,
    };
    w.flush()?;
    Ok(Exported {
        run: sel.run,
        spans,
    })
}

/// Time origin for formats that want small relative times: the run's first
/// span start when the file records it, else 0 (times stay epoch-based).
fn origin_ns(sel: &Selection) -> i64 {
    sel.counters
        .as_ref()
        .map(|r| r.first_start_ns)
        .filter(|&t| t > 0)
        .unwrap_or(0)
}

/// Writes `ns` as microseconds with three decimals (exact, no float).
fn write_us(w: &mut dyn Write, ns: i64) -> io::Result<()> {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    write!(w, "{sign}{}.{:03}", a / 1000, a % 1000)
}
