//! Renderers of a [`DiffReport`]: table (colored with anstyle), JSON,
//! markdown, JUnit XML and a differential flame graph SVG.

use crate::error::CliResult;
use crate::fmt::{dur, Align, Table};
use anstyle::{AnsiColor, Style};
use ferret_analyze::analysis::diff::{
    DiffReport, DiffRow, Metric, MetricTest, Outcome, RowStats, Verdict,
};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write;

fn paint(s: &str, style: Style) -> String {
    format!("{style}{s}{style:#}")
}

const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const DIM: Style = Style::new().dimmed();

fn pct(r: f64) -> String {
    if r.abs() >= 10.0 {
        format!("{:+.0}×", r + 1.0)
    } else {
        format!("{:+.1}%", r * 100.0)
    }
}

fn test_of(row: &DiffRow, m: Metric) -> Option<&MetricTest> {
    row.tests.iter().find(|t| t.metric == m)
}

/// A metric's change, colored by the gate's outcome; `~` marks noise.
fn change_cell(row: &DiffRow, m: Metric, change: Option<f64>) -> String {
    let Some(c) = change else {
        return String::new();
    };
    match test_of(row, m).map(|t| t.outcome) {
        Some(Outcome::Regressed) => paint(&pct(c), RED),
        Some(Outcome::Improved) => paint(&pct(c), GREEN),
        Some(_) => paint(&format!("~{}", pct(c)), DIM),
        None => paint(&pct(c), DIM),
    }
}

fn opt_dur(v: Option<f64>) -> String {
    v.map_or("-".into(), dur)
}

fn cpr(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// `base→cand` of one figure.
fn pair(row: &DiffRow, f: impl Fn(&RowStats) -> String) -> String {
    match (&row.base, &row.candidate) {
        (Some(b), Some(c)) => format!("{}→{}", f(b), f(c)),
        (Some(b), None) => format!("{}→", f(b)),
        (None, Some(c)) => format!("→{}", f(c)),
        (None, None) => String::new(),
    }
}

fn verdict_cell(v: Verdict) -> String {
    match v {
        Verdict::Regressed => paint("regressed", RED),
        Verdict::Improved => paint("improved", GREEN),
        Verdict::New => paint("new", CYAN),
        Verdict::Gone => paint("gone", YELLOW),
        Verdict::Same => paint("~", DIM),
    }
}

/// Rows to show: every changed row, and `limit` unchanged ones (0 = all).
fn shown(r: &DiffReport, limit: usize) -> (Vec<&DiffRow>, usize) {
    let mut same = 0;
    let mut hidden = 0;
    let rows = r
        .rows
        .iter()
        .filter(|row| {
            if row.verdict != Verdict::Same {
                return true;
            }
            same += 1;
            let keep = limit == 0 || same <= limit;
            hidden += (!keep) as usize;
            keep
        })
        .collect();
    (rows, hidden)
}

fn side_line(s: &ferret_analyze::analysis::diff::SideInfo) -> String {
    format!(
        "{} run {} ({}, {} spans)",
        s.file,
        s.run_ids.join(", "),
        s.format.as_str(),
        s.spans
    )
}

fn gate_line(r: &DiffReport) -> String {
    format!(
        "gate: ≥{:.0}% and ≥{} change, significant at FDR {} ({}, by {}, {} clock)",
        r.threshold * 100.0,
        dur(r.min_abs_ns),
        r.alpha,
        match r.method {
            ferret_analyze::analysis::diff::Method::Bootstrap => "bootstrap over histogram buckets",
            ferret_analyze::analysis::diff::Method::RankTest => "rank test over runs",
        },
        r.by.as_str(),
        match r.clock {
            ferret_analyze::analysis::diff::Clock::Wall => "wall",
            ferret_analyze::analysis::diff::Clock::Busy => "busy",
        }
    )
}

fn outcome_line(r: &DiffReport) -> String {
    let mut parts = vec![
        format!("{} regressed", r.regressions),
        format!("{} improved", r.improvements),
        format!("{} new", r.new),
        format!("{} gone", r.gone),
        format!(
            "{} unchanged",
            r.rows.len() - r.regressions - r.improvements - r.new - r.gone
        ),
    ];
    if r.excluded > 0 {
        parts.push(format!("{} excluded", r.excluded));
    }
    parts.join(" · ")
}

/// The colored table (colors are stripped by the caller when not on a TTY).
pub fn table(r: &DiffReport, limit: usize) -> String {
    let mut t = Table::new(&[
        ("Name", Align::Left),
        ("Verdict", Align::Left),
        ("Count", Align::Right),
        ("Calls/root", Align::Right),
        ("", Align::Right),
        ("p50", Align::Right),
        ("", Align::Right),
        ("p95", Align::Right),
        ("", Align::Right),
        ("p99", Align::Right),
        ("", Align::Right),
        ("Total", Align::Right),
        ("", Align::Right),
        ("Self", Align::Right),
        ("", Align::Right),
    ]);
    let (rows, hidden) = shown(r, limit);
    for row in rows {
        let c = &row.change;
        let plain = |v: Option<f64>| v.map_or(String::new(), |v| paint(&pct(v), DIM));
        t.row(vec![
            row.name.clone(),
            verdict_cell(row.verdict),
            pair(row, |s| s.count.to_string()),
            pair(row, |s| cpr(s.calls_per_root)),
            change_cell(row, Metric::CallsPerRoot, c.calls_per_root),
            pair(row, |s| opt_dur(s.p50_ns)),
            change_cell(row, Metric::P50, c.p50),
            pair(row, |s| opt_dur(s.p95_ns)),
            change_cell(row, Metric::P95, c.p95),
            pair(row, |s| opt_dur(s.p99_ns)),
            change_cell(row, Metric::P99, c.p99),
            pair(row, |s| dur(s.total_ns as f64)),
            plain(c.total),
            pair(row, |s| dur(s.self_ns as f64)),
            plain(c.self_time),
        ]);
    }
    let mut out = String::new();
    let _ = writeln!(out, "base:      {}", side_line(&r.base));
    let _ = writeln!(out, "candidate: {}", side_line(&r.candidate));
    let _ = writeln!(out, "{}", paint(&gate_line(r), DIM));
    out.push_str(&t.render(true));
    if hidden > 0 {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!("  … {hidden} more unchanged rows (--limit 0 shows all)"),
                DIM
            )
        );
    }
    let summary = outcome_line(r);
    let _ = writeln!(
        out,
        "{}",
        if r.failed {
            paint(&format!("FAIL: {summary}"), RED)
        } else {
            paint(&format!("ok: {summary}"), GREEN)
        }
    );
    out
}

fn secs(ns: Option<f64>) -> Value {
    ns.map_or(Value::Null, |v| json!(v / 1e9))
}

fn side_json(s: &ferret_analyze::analysis::diff::SideInfo) -> Value {
    json!({
        "file": s.file,
        "run_ids": s.run_ids,
        "format": s.format.as_str(),
        "spans": s.spans,
        "roots": s.roots,
        "skipped_rows": s.skipped_rows,
    })
}

fn stats_json(s: Option<&RowStats>) -> Value {
    match s {
        Some(s) => json!({
            "count": s.count,
            "calls_per_root": s.calls_per_root,
            "p50_s": secs(s.p50_ns),
            "p95_s": secs(s.p95_ns),
            "p99_s": secs(s.p99_ns),
            "total_s": s.total_ns as f64 / 1e9,
            "self_s": s.self_ns as f64 / 1e9,
        }),
        None => json!({
            "count": 0, "calls_per_root": 0.0, "p50_s": null, "p95_s": null,
            "p99_s": null, "total_s": 0.0, "self_s": 0.0,
        }),
    }
}

/// The JSON document (schema in the README and docs/diff.md).
pub fn json(r: &DiffReport) -> Value {
    json!({
        "base": side_json(&r.base),
        "candidate": side_json(&r.candidate),
        "by": r.by.as_str(),
        "clock": r.clock,
        "method": r.method,
        "threshold": r.threshold,
        "min_abs_s": r.min_abs_ns / 1e9,
        "alpha": r.alpha,
        "regressions": r.regressions,
        "improvements": r.improvements,
        "new": r.new,
        "gone": r.gone,
        "excluded": r.excluded,
        "failed": r.failed,
        "rows": r.rows.iter().map(|row| json!({
            "name": row.name,
            "verdict": row.verdict.as_str(),
            "base": stats_json(row.base.as_ref()),
            "candidate": stats_json(row.candidate.as_ref()),
            "change": {
                "p50": row.change.p50,
                "p95": row.change.p95,
                "p99": row.change.p99,
                "calls_per_root": row.change.calls_per_root,
                "count": row.change.count,
                "total": row.change.total,
                "self": row.change.self_time,
            },
            "flagged": row.flagged().map(|t| t.metric.as_str()).collect::<Vec<_>>(),
            "tests": row.tests.iter().map(|t| json!({
                "metric": t.metric.as_str(),
                "change": t.change,
                "p_value": t.p_value,
                "q_value": t.q_value,
                "ci": t.ci.map(|(a, b)| [a, b]),
                "outcome": t.outcome,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}

fn md_change(row: &DiffRow, m: Metric, change: Option<f64>) -> String {
    let Some(c) = change else {
        return String::new();
    };
    match test_of(row, m).map(|t| t.outcome) {
        Some(Outcome::Regressed) | Some(Outcome::Improved) => format!(" **{}**", pct(c)),
        _ => format!(" ~{}", pct(c)),
    }
}

/// Markdown for a pull-request comment or `$GITHUB_STEP_SUMMARY`.
pub fn markdown(r: &DiffReport, limit: usize) -> String {
    let mut o = String::new();
    let head = if r.failed {
        format!("### ❌ ferret diff: {}", outcome_line(r))
    } else {
        format!("### ✅ ferret diff: {}", outcome_line(r))
    };
    let _ = writeln!(o, "{head}\n");
    let _ = writeln!(o, "- base: `{}`", md_escape(&side_line(&r.base)));
    let _ = writeln!(o, "- candidate: `{}`", md_escape(&side_line(&r.candidate)));
    let _ = writeln!(o, "- {}\n", md_escape(&gate_line(r)));
    let _ = writeln!(
        o,
        "| Name | Verdict | Count | Calls/root | p50 | p95 | p99 | Total | Self |"
    );
    let _ = writeln!(o, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
    let (rows, hidden) = shown(r, limit);
    for row in rows {
        let c = &row.change;
        let verdict = match row.verdict {
            Verdict::Regressed | Verdict::Improved => {
                let ms: Vec<&str> = row.flagged().map(|t| t.metric.as_str()).collect();
                format!("**{}** ({})", row.verdict.as_str(), ms.join(", "))
            }
            v => v.as_str().to_owned(),
        };
        let plain = |v: Option<f64>| v.map_or(String::new(), |v| format!(" {}", pct(v)));
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {}{} | {}{} | {}{} | {}{} | {}{} | {}{} |",
            md_escape(&row.name),
            verdict,
            pair(row, |s| s.count.to_string()),
            pair(row, |s| cpr(s.calls_per_root)),
            md_change(row, Metric::CallsPerRoot, c.calls_per_root),
            pair(row, |s| opt_dur(s.p50_ns)),
            md_change(row, Metric::P50, c.p50),
            pair(row, |s| opt_dur(s.p95_ns)),
            md_change(row, Metric::P95, c.p95),
            pair(row, |s| opt_dur(s.p99_ns)),
            md_change(row, Metric::P99, c.p99),
            pair(row, |s| dur(s.total_ns as f64)),
            plain(c.total),
            pair(row, |s| dur(s.self_ns as f64)),
            plain(c.self_time),
        );
    }
    if hidden > 0 {
        let _ = writeln!(o, "\n{hidden} more unchanged rows not shown.");
    }
    let _ = writeln!(
        o,
        "\n`~` marks a change that is noise (too small, too few samples, or not significant)."
    );
    o
}

fn xml(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn failure_text(row: &DiffRow) -> String {
    row.flagged()
        .map(|t| {
            let (b, c) = match t.metric {
                Metric::P50 => (
                    row.base.as_ref().and_then(|s| s.p50_ns),
                    row.candidate.as_ref().and_then(|s| s.p50_ns),
                ),
                Metric::P95 => (
                    row.base.as_ref().and_then(|s| s.p95_ns),
                    row.candidate.as_ref().and_then(|s| s.p95_ns),
                ),
                Metric::P99 => (
                    row.base.as_ref().and_then(|s| s.p99_ns),
                    row.candidate.as_ref().and_then(|s| s.p99_ns),
                ),
                Metric::CallsPerRoot => (None, None),
            };
            let values = match (b, c, t.metric) {
                (_, _, Metric::CallsPerRoot) => format!(
                    "{} → {}",
                    cpr(row.base.as_ref().and_then(|s| s.calls_per_root)),
                    cpr(row.candidate.as_ref().and_then(|s| s.calls_per_root))
                ),
                (b, c, _) => format!("{} → {}", opt_dur(b), opt_dur(c)),
            };
            format!(
                "{} {} ({values}, q = {:.2e})",
                t.metric.as_str(),
                t.change.map_or("?".into(), pct),
                t.q_value.unwrap_or(f64::NAN)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// JUnit XML: one test case per row, a failure per regression (and per new
/// or gone name when those fail the gate).
pub fn junit(r: &DiffReport) -> String {
    let failures = r.rows.iter().filter(|row| is_failure(r, row)).count();
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let suite = format!(
        "ferret diff {} → {}",
        r.base.run_ids.join(","),
        r.candidate.run_ids.join(",")
    );
    let _ = writeln!(
        o,
        r#"<testsuites name="ferret diff" tests="{}" failures="{failures}">"#,
        r.rows.len()
    );
    let _ = writeln!(
        o,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0">"#,
        xml(&suite),
        r.rows.len()
    );
    for row in &r.rows {
        let _ = write!(
            o,
            r#"    <testcase classname="ferret.diff" name="{}""#,
            xml(&row.name)
        );
        if is_failure(r, row) {
            let msg = match row.verdict {
                Verdict::Regressed => format!("regressed: {}", failure_text(row)),
                v => format!("{} name", v.as_str()),
            };
            let _ = writeln!(o, ">");
            let _ = writeln!(
                o,
                r#"      <failure message="{}" type="{}">{}</failure>"#,
                xml(&msg),
                row.verdict.as_str(),
                xml(&msg)
            );
            let _ = writeln!(o, "    </testcase>");
        } else {
            let _ = writeln!(o, "/>");
        }
    }
    let _ = writeln!(o, "  </testsuite>\n</testsuites>");
    o
}

fn is_failure(r: &DiffReport, row: &DiffRow) -> bool {
    match row.verdict {
        Verdict::Regressed => true,
        Verdict::New => r.fail_on_new,
        Verdict::Gone => r.fail_on_gone,
        _ => false,
    }
}

/// Differential flame graph of self time per call path: width = candidate,
/// red = slower, blue = faster.
pub fn svg(r: &DiffReport, paths: &[(String, f64, f64)], w: &mut dyn Write) -> CliResult {
    let title = format!(
        "ferret diff {} → {}",
        r.base.run_ids.join(","),
        r.candidate.run_ids.join(",")
    );
    Ok(ferret_analyze::export::diff_svg::write(paths, &title, w)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_analyze::analysis::diff::{compare, DiffOptions, RunData, SideData};
    use ferret_analyze::store::FileKind;

    /// A fixed report: db.query 30% slower, cache.get unchanged, one new
    /// and one gone name.
    fn report() -> DiffReport {
        let side = |file: &str, run: &str, slow: f64, names: &[&str]| {
            let mut r = RunData::new(run);
            r.roots = 500;
            for (k, name) in names.iter().enumerate() {
                let s = r.key(name);
                for i in 0..1000u64 {
                    let base = 100_000.0 * (k + 1) as f64 * (1.0 + (i % 100) as f64 / 100.0);
                    let f = if *name == "db.query" { slow } else { 1.0 };
                    let v = (base * f) as u64;
                    s.record(v, v / 2);
                }
                r.spans += 1000;
            }
            let mut sd = SideData::new(file, FileKind::Native);
            sd.add_run(r);
            sd
        };
        compare(
            &side("base.db", "r1", 1.0, &["db.query", "cache.get", "old|name"]),
            &side("cand.db", "r2", 1.3, &["db.query", "cache.get", "fresh"]),
            &DiffOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(markdown(&report(), 20));
    }

    #[test]
    fn table_marks_noise_and_colors_regressions() {
        let t = table(&report(), 20);
        assert!(t.contains("\x1b["), "styled");
        let plain = anstream::adapter::strip_str(&t).to_string();
        assert!(
            plain.contains("db.query") && plain.contains("regressed"),
            "{plain}"
        );
        assert!(plain.contains("~+0.0%"), "noise marked: {plain}");
        assert!(plain.contains("FAIL: 1 regressed"), "{plain}");
    }

    #[test]
    fn json_has_the_documented_schema() {
        let v = json(&report());
        for k in ["base", "candidate", "by", "regressions", "rows"] {
            assert!(!v[k].is_null(), "{k}");
        }
        for k in ["file", "run_ids", "format", "spans"] {
            assert!(!v["base"][k].is_null(), "base.{k}");
        }
        let row = &v["rows"][0];
        assert_eq!(row["name"], "db.query");
        assert_eq!(row["verdict"], "regressed");
        for k in ["p50", "p95", "p99", "calls_per_root"] {
            assert!(row["change"][k].is_number(), "change.{k}");
        }
        assert!((row["change"]["p50"].as_f64().unwrap() - 0.3).abs() < 0.02);
    }
}
