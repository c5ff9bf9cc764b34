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
    /// folded, svg: frames kept per stack; deeper frames fold into one
    /// marker frame.
    pub max_depth: usize,
}

/// Writes `run` of `store` as `format` to `out` (`-` = stdout); returns the
/// number of spans read.
///
/// A file is written to a temporary file in the same directory and renamed
/// over `out` only when the export succeeded: a failing export leaves an
/// existing `out` as it was.
pub fn export(store: &Store, opts: &Options, format: Format, out: &Path) -> CliResult<u64> {
    if out.as_os_str() == "-" {
        let mut w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        let n = write_format(store, opts, format, &mut w)?;
        w.flush()?;
        return Ok(n);
    }
    let cannot =
        |e: &dyn std::fmt::Display| CliError::user(format!("cannot write {}: {e}", out.display()));
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if out.is_dir() {
        return Err(cannot(&"is a directory"));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".ferret-export-")
        .tempfile_in(dir)
        .map_err(|e| cannot(&e))?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp);
    let n = write_format(store, opts, format, &mut w)?;
    let tmp = w.into_inner().map_err(|e| cannot(&e.into_error()))?;
    tmp.as_file().sync_data().map_err(|e| cannot(&e))?;
    // A temporary file is private (0600); the export gets the mode of the
    // file it replaces, or the usual 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| cannot(&e))?;
    }
    tmp.persist(out).map_err(|e| cannot(&e.error))?;
    Ok(n)
}

fn write_format(
    store: &Store,
    opts: &Options,
    format: Format,
    w: &mut dyn Write,
) -> CliResult<u64> {
    Ok(match format {
        Format::Jsonl => jsonl::write(store, opts, w)?,
        Format::Chrome => chrome::write(store, opts, w)?,
        Format::Folded => folded::write(store, opts, w)?,
        Format::Svg => svg::write(store, opts, w)?,
        Format::Speedscope => speedscope::write(store, opts, w)?,
    })
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
