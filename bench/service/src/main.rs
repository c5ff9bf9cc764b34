//! Ferret's overhead inside a realistic service.
//!
//! ```text
//! cargo run --release -p ferret-service-bench -- --rounds 5
//! ```
//!
//! Each round runs every mode (none, native, layer, chrome) once, each in a
//! fresh process of this binary, in an order that rotates from round to
//! round; the table gives the medians over rounds and their ratios against
//! `none`. See `bench/service/README.md`.

mod alloc_count;
mod load;
mod probe;
mod report;
mod service;
mod trial;

use clap::Parser;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use trial::{Load, Mode};

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

/// Measures Ferret's overhead in an axum service under in-process load.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Interleaved rounds; each runs every mode once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measured requests per trial.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Warm-up requests before the measurement.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Client tasks sending requests at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Modes to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::None, Mode::Native, Mode::Layer, Mode::Chrome])]
    modes: Vec<Mode>,
    /// Where trials write their trace files (removed after each trial).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run the trials with this build of the benchmark instead of this one
    /// (to compare two builds of Ferret with the same driver).
    #[arg(long)]
    trial_exe: Option<PathBuf>,
    /// Print each trial's result line as it comes.
    #[arg(long)]
    verbose: bool,
    /// With --trial: write the trial's Ferret file here and keep it (to
    /// analyze it, e.g. `ferret flamegraph --clock busy`).
    #[arg(long, value_name = "FILE", requires = "trial")]
    keep_trace: Option<PathBuf>,
    /// Internal: run one trial in this process.
    #[arg(long, value_enum, hide = true)]
    trial: Option<Mode>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let load = Load {
        requests: args.requests.max(1),
        warmup: args.warmup,
        concurrency: args.concurrency.max(1),
    };
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Some(mode) = args.trial {
        return match trial::run(mode, load, &dir, args.keep_trace.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferret-service-bench: trial {}: {e}", mode.name());
                ExitCode::FAILURE
            }
        };
    }
    match drive(&args, load, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferret-service-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every round and prints the table.
fn drive(args: &Args, load: Load, dir: &std::path::Path) -> Result<(), String> {
    let exe = match &args.trial_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let mut modes = args.modes.clone();
    modes.dedup();
    let mut results = Vec::new();
    for round in 0..args.rounds.max(1) {
        // Rotate the order every round and reverse it every other round,
        // so that no mode always runs right after the same other one (a
        // trial's file writes are still being flushed when the next starts).
        let k = round % modes.len();
        let mut order: Vec<Mode> = modes[k..].iter().chain(&modes[..k]).copied().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for mode in order {
            let out = Command::new(&exe)
                .arg("--trial")
                .arg(mode.name())
                .args(["--requests", &load.requests.to_string()])
                .args(["--warmup", &load.warmup.to_string()])
                .args(["--concurrency", &load.concurrency.to_string()])
                .arg("--dir")
                .arg(dir)
                .output()
                .map_err(|e| format!("starting a trial: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .ok_or_else(|| {
                    format!(
                        "trial {} (round {}) gave no result: {}",
                        mode.name(),
                        round + 1,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                })?;
            // Write back what the trial left in the page cache before the next.
            // SAFETY: sync has no preconditions.
            unsafe { libc::sync() };
            if args.verbose {
                eprintln!("round {} {line}", round + 1);
            }
            let r: report::Trial =
                serde_json::from_str(line).map_err(|e| format!("bad result line: {e}"))?;
            if r.failures > 0 {
                return Err(format!(
                    "trial {}: {} requests failed",
                    mode.name(),
                    r.failures
                ));
            }
            results.push(r);
        }
    }
    print!("{}", report::table(&results, &modes, load, args.rounds));
    Ok(())
}
