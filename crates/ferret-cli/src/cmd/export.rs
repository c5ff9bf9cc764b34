//! `ferret export` and `ferret flamegraph`.

use super::open_store;
use crate::error::{CliError, CliResult};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use ferret_analyze::analysis::Query;
use ferret_analyze::export::{self, Format};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--format`: the library's export formats, with their help lines.
fn format_parser() -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::ALL.map(|f| PossibleValue::new(f.name()).help(f.about())))
        .map(|s| s.parse::<Format>().expect("clap checked the value"))
}

/// Export a run.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_parser = format_parser())]
    pub format: Format,
    /// Output file; `-` writes to stdout.
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: PathBuf,
    /// speedscope: tag keys whose values join the frame names, comma
    /// separated (e.g. `table,route`). Each distinct value makes a new frame.
    #[arg(long, value_delimiter = ',', value_name = "KEYS")]
    pub frame_tags: Vec<String>,
    /// ferret-io files: the table-name namespace.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Print the span count and rate on stderr when done.
    #[arg(long)]
    pub stats: bool,
}

/// Flame graph SVG of a run.
#[derive(clap::Args)]
pub struct FlameArgs {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Output file; `-` writes to stdout.
    #[arg(short = 'o', long = "output", default_value = "flame.svg")]
    pub output: PathBuf,
    /// ferret-io files: the table-name namespace.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

pub fn run(a: Args) -> CliResult {
    if !a.frame_tags.is_empty() && a.format != Format::Speedscope {
        return Err(CliError::user(
            "--frame-tags applies to --format speedscope only",
        ));
    }
    let store = open_store(&a.db, Some(&a.namespace))?;
    let t = Instant::now();
    let opts = export::Options {
        query: Query {
            run: a.run.clone(),
            ..Query::default()
        },
        frame_tags: a.frame_tags.clone(),
    };
    let spans = write_output(&a.output, |w| export::write(&store, &opts, a.format, w))?.spans;
    if a.stats {
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "exported {spans} spans as {} in {secs:.2} s ({:.0} spans/s)",
            a.format.name(),
            spans as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

pub fn run_flame(a: FlameArgs) -> CliResult {
    let store = open_store(&a.db, Some(&a.namespace))?;
    let opts = export::Options {
        query: Query {
            run: a.run.clone(),
            ..Query::default()
        },
        frame_tags: Vec::new(),
    };
    write_output(&a.output, |w| export::write(&store, &opts, Format::Svg, w))?;
    if a.output.as_os_str() != "-" {
        eprintln!("wrote {}", a.output.display());
    }
    Ok(())
}

/// Runs `write` on `out` (`-` = stdout). A file is written to a temporary
/// file beside it and renamed into place only when `write` succeeds, so a
/// failed export never truncates or half-writes an existing file.
pub fn write_output<T>(
    out: &Path,
    write: impl FnOnce(&mut dyn Write) -> ferret_analyze::Result<T>,
) -> CliResult<T> {
    if out.as_os_str() == "-" {
        let mut w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        let v = write(&mut w)?;
        w.flush()?;
        return Ok(v);
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = |e: io::Error| CliError::user(format!("cannot create {}: {e}", out.display()));
    let tmp = tempfile::Builder::new()
        .prefix(".ferret-export-")
        .tempfile_in(dir)
        .map_err(cannot)?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp);
    let v = write(&mut w)?;
    let tmp = w.into_inner().map_err(|e| cannot(e.into_error()))?;
    // Temporary files are private (0600); an export is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(cannot)?;
    }
    tmp.persist(out).map_err(|e| cannot(e.error))?;
    Ok(v)
}
