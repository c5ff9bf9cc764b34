//! One module per subcommand: each parses its arguments into a library
//! request, calls one library function and renders the result.

pub mod analyze;
pub mod calltree;
pub mod demo;
pub mod diff;
pub mod export;
pub mod push;
pub mod runs;
pub mod tree;
pub mod watch;

use crate::error::CliResult;
use ferret_analyze::analysis::Clock;

/// `--clock`: the clock durations and self times are on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, clap::ValueEnum)]
pub enum ClockArg {
    /// Wall-clock durations: from start to end.
    #[default]
    Wall,
    /// Busy time: the time a span was running on a thread (entered tracing
    /// spans, polled futures; sync spans count their wall time).
    Busy,
}

impl From<ClockArg> for Clock {
    fn from(c: ClockArg) -> Clock {
        match c {
            ClockArg::Wall => Clock::Wall,
            ClockArg::Busy => Clock::Busy,
        }
    }
}

/// `"clock":"busy",` on the busy clock; nothing on the wall clock (the
/// documented schema stays as it was).
pub fn clock_field(clock: Clock) -> &'static str {
    match clock {
        Clock::Wall => "",
        Clock::Busy => "\"clock\":\"busy\",",
    }
}

/// What stderr headers add for a clock: nothing for wall, ` (busy clock)`.
pub fn clock_note(c: Clock) -> &'static str {
    match c {
        Clock::Wall => "",
        Clock::Busy => " (busy clock)",
    }
}
use ferret_analyze::store::{OpenOptions, Store};
use std::path::Path;

/// Opens a trace file for reading (native or ferret-io).
pub fn open_store(path: &Path, namespace: Option<&str>) -> CliResult<Store> {
    Ok(Store::open_with(
        path,
        &OpenOptions {
            namespace: namespace.map(str::to_owned),
        },
    )?)
}

/// Expands the trace-file arguments: a pattern with `*`, `?` or `[` is a
/// glob (sorted matches; none is an error), anything else a path.
pub fn expand_inputs(args: &[String]) -> CliResult<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if !a.contains(['*', '?', '[']) {
            out.push(std::path::PathBuf::from(a));
            continue;
        }
        let paths = glob::glob(a)
            .map_err(|e| crate::error::CliError::user(format!("bad glob '{a}': {e}")))?;
        let mut found: Vec<_> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(crate::error::CliError::user(format!(
                "no file matches '{a}'"
            )));
        }
        found.sort();
        out.append(&mut found);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// Opens every file (the first failure, naming its file, is the error).
pub fn open_stores(paths: &[std::path::PathBuf], namespace: &str) -> CliResult<Vec<Store>> {
    paths
        .iter()
        .map(|p| open_store(p, Some(namespace)))
        .collect()
}

/// "run R (latest)" for one run; "3 runs (each file's latest): a, b, c"
/// for a comma-separated list (fleet reports), the ids cut after 3.
pub fn describe_runs(run_ids: &str, latest: bool) -> String {
    let ids: Vec<&str> = run_ids.split(',').collect();
    if ids.len() == 1 {
        let how = if latest { " (latest)" } else { "" };
        return format!("run {run_ids}{how}");
    }
    let how = if latest { " (each file's latest)" } else { "" };
    let shown = ids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    let more = if ids.len() > 3 { ", …" } else { "" };
    format!("{} runs{how}: {shown}{more}", ids.len())
}

/// Parses `--threads N`: a whole number of at least 1.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{s}': expected a whole number of threads, at least 1"
        )),
    }
}
