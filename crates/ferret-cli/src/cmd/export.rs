//! `ferret export` and `ferret flamegraph`.

use super::{open_store, pick_run};
use crate::error::{CliError, CliResult};
use crate::export::{self, Format};
use std::path::PathBuf;
use std::time::Instant;

/// Export a run.
#[derive(clap::Args)]
pub struct Args {
    /// Trace file (native or ferret-io).
    pub db: PathBuf,
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file; `-` writes to stdout.
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: PathBuf,
    /// speedscope: tag keys whose values join the frame names, comma
    /// separated (e.g. `table,route`). Each distinct value makes a new frame.
    #[arg(long, value_delimiter = ',', value_name = "KEYS")]
    pub frame_tags: Vec<String>,
    /// ferret-io files: the table-name namespace.
    #[arg(long, default_value = ferret::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// folded, svg: frames kept per stack. Deeper frames fold into one
    /// marker frame `[deeper than N: cut by --max-depth]` that carries their
    /// self time, so output stays linear in spans on very deep chains.
    #[arg(long, default_value_t = ferret::analysis::DEFAULT_FOLD_DEPTH, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |v| v as usize))]
    pub max_depth: usize,
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
    /// folded, svg: frames kept per stack. Deeper frames fold into one
    /// marker frame `[deeper than N: cut by --max-depth]` that carries their
    /// self time, so output stays linear in spans on very deep chains.
    #[arg(long, default_value_t = ferret::analysis::DEFAULT_FOLD_DEPTH, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |v| v as usize))]
    pub max_depth: usize,
    /// ferret-io files: the table-name namespace.
    #[arg(long, default_value = ferret::store::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

pub fn run(a: Args) -> CliResult {
    if !a.frame_tags.is_empty() && a.format != Format::Speedscope {
        return Err(CliError::user(
            "--frame-tags applies to --format speedscope only",
        ));
    }
    let store = open_store(&a.db, Some(&a.namespace))?;
    let (run, _) = pick_run(&store, a.run.as_deref())?;
    let t = Instant::now();
    let opts = export::Options {
        run: &run,
        frame_tags: &a.frame_tags,
        max_depth: a.max_depth,
    };
    let spans = export::export(&store, &opts, a.format, &a.output)?;
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
    let (run, _) = pick_run(&store, a.run.as_deref())?;
    let opts = export::Options {
        run: &run,
        frame_tags: &[],
        max_depth: a.max_depth,
    };
    export::export(&store, &opts, Format::Svg, &a.output)?;
    if a.output.as_os_str() != "-" {
        eprintln!("wrote {}", a.output.display());
    }
    Ok(())
}
