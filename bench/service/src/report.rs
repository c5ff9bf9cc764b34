//! Medians over rounds, ratios against `none`, and the printed table.

use crate::trial::{Load, Mode};
use serde::Deserialize;
use std::fmt::Write;

/// One trial's result line.
#[derive(Debug, Deserialize)]
pub struct Trial {
    pub mode: String,
    pub requests: u64,
    pub failures: u64,
    pub server_errors: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us_per_req: f64,
    pub allocs_per_req: f64,
    pub peak_rss_mb: f64,
    pub spans: u64,
    pub spans_dropped: u64,
    pub writer_cpu_share: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians of one mode's trials.
struct Summary {
    rps: f64,
    rps_min: f64,
    rps_max: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    allocs: f64,
    rss: f64,
    spans_per_req: f64,
    spans_per_s: f64,
    writer: f64,
    dropped: u64,
    errors: f64,
}

fn summarize(trials: &[&Trial]) -> Summary {
    let m = |f: fn(&Trial) -> f64| median(trials.iter().map(|t| f(t)).collect());
    let rps: Vec<f64> = trials.iter().map(|t| t.rps).collect();
    Summary {
        rps: m(|t| t.rps),
        rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
        rps_max: rps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        p50: m(|t| t.p50_us),
        p99: m(|t| t.p99_us),
        cpu: m(|t| t.cpu_us_per_req),
        allocs: m(|t| t.allocs_per_req),
        rss: m(|t| t.peak_rss_mb),
        spans_per_req: m(|t| t.spans as f64 / t.requests as f64),
        spans_per_s: m(|t| t.spans as f64 / t.requests as f64 * t.rps),
        writer: m(|t| t.writer_cpu_share),
        dropped: trials.iter().map(|t| t.spans_dropped).sum(),
        errors: m(|t| t.server_errors as f64 / t.requests as f64),
    }
}

fn pct(x: f64, base: f64) -> String {
    if base.is_finite() && base > 0.0 && x.is_finite() {
        format!("{:+.1}%", (x / base - 1.0) * 100.0)
    } else {
        "-".into()
    }
}

/// The table of medians, with each mode's ratios against `none`.
pub fn table(trials: &[Trial], modes: &[Mode], load: Load, rounds: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "service bench: {} requests (+{} warm-up) at concurrency {}, {} interleaved rounds; medians",
        load.requests, load.warmup, load.concurrency, rounds
    );
    let sums: Vec<(Mode, Summary)> = modes
        .iter()
        .map(|&m| {
            let ts: Vec<&Trial> = trials.iter().filter(|t| t.mode == m.name()).collect();
            (m, summarize(&ts))
        })
        .collect();
    let base = sums.iter().find(|(m, _)| *m == Mode::None).map(|(_, s)| s);
    let b = |f: fn(&Summary) -> f64| base.map_or(f64::NAN, f);
    let _ = writeln!(
        s,
        "{:<7} {:>8} {:>7} {:>15} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>9} {:>7} {:>7}",
        "mode",
        "req/s",
        "Δ",
        "req/s min–max",
        "p50 µs",
        "p99 µs",
        "Δ p99",
        "CPU/req",
        "Δ CPU",
        "allocs",
        "RSS MB",
        "Δ MB",
        "spans/req",
        "spans/s",
        "writer",
        "errors"
    );
    for (m, x) in &sums {
        let _ = writeln!(
            s,
            "{:<7} {:>8.0} {:>7} {:>15} {:>7.0} {:>7.0} {:>7} {:>6.1}µs {:>7} {:>7.1} {:>8.1} {:>7} {:>9.2} {:>9.0} {:>6.2}% {:>6.1}%",
            m.name(),
            x.rps,
            pct(x.rps, b(|s| s.rps)),
            format!("{:.0}–{:.0}", x.rps_min, x.rps_max),
            x.p50,
            x.p99,
            pct(x.p99, b(|s| s.p99)),
            x.cpu,
            pct(x.cpu, b(|s| s.cpu)),
            x.allocs,
            x.rss,
            if base.is_some() {
                format!("{:+.1}", x.rss - b(|s| s.rss))
            } else {
                "-".into()
            },
            x.spans_per_req,
            x.spans_per_s,
            x.writer * 100.0,
            x.errors * 100.0,
        );
    }
    let dropped: u64 = sums.iter().map(|(_, x)| x.dropped).sum();
    let _ = writeln!(
        s,
        "Δ: against `none` (median of each mode's trials); allocs: allocations per request; writer: the ferret-writer thread's share of process CPU; spans dropped by the recorder: {dropped}"
    );
    s
}
