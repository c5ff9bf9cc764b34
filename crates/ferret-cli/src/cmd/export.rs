//! `ferret export` and `ferret flamegraph`.

use super::open_store;
use crate::error::{CliError, CliResult};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use ferret_analyze::analysis::Query;
use ferret_analyze::export::{self, Format};
use ferret_analyze::store::Store;
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
    /// Trace file (native or ferret-io). With --partition-dir: any number
    /// of files or globs, each exported to its own partition.
    #[arg(required = true, value_name = "DB")]
    pub db: Vec<String>,
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
    /// folded, svg: frames kept per stack. Deeper frames fold into one
    /// marker frame `[deeper than N: cut by --max-depth]` that carries their
    /// self time, so output stays linear in spans on very deep chains.
    #[arg(long, default_value_t = ferret_analyze::analysis::DEFAULT_FOLD_DEPTH, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |v| v as usize))]
    pub max_depth: usize,
    /// Print the span count and rate on stderr when done.
    #[arg(long)]
    pub stats: bool,
    /// otlp: the resources' service.name (default: the run label, else the
    /// file name).
    #[arg(long)]
    pub service_name: Option<String>,
    /// Clock of durations: wall, or busy (time running on a thread) for
    /// folded, svg and speedscope (written as one sampled profile of self
    /// busy time per call path). The other formats keep wall time.
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: super::ClockArg,
    /// parquet: write DIR/host=H/run=R/part-N.parquet instead of -o, so
    /// that a fleet's files land in one queryable tree.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub partition_dir: Option<PathBuf>,
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
    /// folded, svg: frames kept per stack. Deeper frames fold into one
    /// marker frame `[deeper than N: cut by --max-depth]` that carries their
    /// self time, so output stays linear in spans on very deep chains.
    #[arg(long, default_value_t = ferret_analyze::analysis::DEFAULT_FOLD_DEPTH, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |v| v as usize))]
    pub max_depth: usize,
    /// ferret-io files: the table-name namespace.
    #[arg(long, default_value = ferret_analyze::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Clock of the self times: wall (start to end) or busy (time running
    /// on a thread: entered tracing spans, polled futures; sync spans count
    /// their wall time).
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: super::ClockArg,
}

pub fn run(a: Args) -> CliResult {
    if !a.frame_tags.is_empty() && a.format != Format::Speedscope {
        return Err(CliError::user(
            "--frame-tags applies to --format speedscope only",
        ));
    }
    if a.service_name.is_some() && a.format != Format::Otlp {
        return Err(CliError::user(
            "--service-name applies to --format otlp only",
        ));
    }
    let files = super::expand_inputs(&a.db)?;
    let opts = export::Options {
        query: Query {
            run: a.run.clone(),
            clock: a.clock.into(),
            ..Query::default()
        },
        frame_tags: a.frame_tags.clone(),
        max_depth: Some(a.max_depth),
        service_name: a.service_name.clone(),
    };
    let t = Instant::now();
    let spans = if let Some(dir) = &a.partition_dir {
        if a.format != Format::Parquet {
            return Err(CliError::user(
                "--partition-dir applies to --format parquet only",
            ));
        }
        let mut spans = 0;
        for f in &files {
            let store = open_store(f, Some(&a.namespace))?;
            let out = partition_path(&store, dir, &opts.query)?;
            spans += write_output(&out, |w| export::write(&store, &opts, a.format, w))?.spans;
            eprintln!("wrote {}", out.display());
        }
        spans
    } else {
        if files.len() > 1 {
            return Err(CliError::user(
                "export reads one file (several only with --format parquet --partition-dir)",
            ));
        }
        let store = open_store(&files[0], Some(&a.namespace))?;
        write_output(&a.output, |w| export::write(&store, &opts, a.format, w))?.spans
    };
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
            clock: a.clock.into(),
            ..Query::default()
        },
        frame_tags: Vec::new(),
        max_depth: Some(a.max_depth),
        ..export::Options::default()
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

/// A partition directory name's value: the characters a file system and
/// Hive-style partition discovery take as they are, others as `_`.
fn partition_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if v.is_empty() {
        "unknown".into()
    } else {
        v
    }
}

/// `DIR/host=H/run=R/part-N.parquet` with the first N not taken.
fn partition_path(store: &Store, dir: &Path, q: &Query) -> CliResult<PathBuf> {
    let sel = ferret_analyze::analysis::select(store, q)?;
    let info = match sel.counters {
        Some(c) => Some(c),
        None => store.runs()?.into_iter().find(|r| r.run_id == sel.run),
    };
    let host = info.and_then(|i| i.host).unwrap_or_default();
    let leaf = dir
        .join(format!("host={}", partition_value(&host)))
        .join(format!("run={}", partition_value(&sel.run)));
    std::fs::create_dir_all(&leaf)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", leaf.display())))?;
    let mut n = 0;
    loop {
        let p = leaf.join(format!("part-{n}.parquet"));
        if !p.exists() {
            return Ok(p);
        }
        n += 1;
    }
}
