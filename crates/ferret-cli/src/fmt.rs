//! Presentation helpers shared by the commands: durations with units,
//! colors (only on a TTY, never with NO_COLOR), aligned tables.

use ferret_analyze::analysis::TimeBound;

use std::io::IsTerminal;

/// Whether to color stdout: a TTY and no `NO_COLOR`.
pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether stderr is a TTY (for progress bars).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A duration in ns with a unit chosen for its size: `812ns`, `12.3µs`, `4.56ms`, `1.234s`.
pub fn dur(ns: f64) -> String {
    let a = ns.abs();
    if a < 1e3 {
        format!("{ns:.0}ns")
    } else if a < 1e6 {
        format!("{:.2}µs", ns / 1e3)
    } else if a < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.3}s", ns / 1e9)
    }
}

/// ANSI styles.
#[derive(Clone, Copy)]
pub enum Style {
    Bold,
    Dim,
    Red,
    Yellow,
}

/// Wraps `s` in an ANSI style when `on`.
pub fn paint(s: &str, style: Style, on: bool) -> String {
    if !on {
        return s.to_owned();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Dim => "2",
        Style::Red => "31",
        Style::Yellow => "33",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// Color for a duration relative to the largest one shown: red for the
/// heaviest, yellow for the middle, plain below.
pub fn heat(ns: f64, max: f64) -> Option<Style> {
    if max <= 0.0 {
        return None;
    }
    let r = ns / max;
    if r >= 0.5 {
        Some(Style::Red)
    } else if r >= 0.1 {
        Some(Style::Yellow)
    } else {
        None
    }
}

/// Column alignment.
#[derive(Clone, Copy, PartialEq)]
pub enum Align {
    Left,
    Right,
}

/// A plain aligned text table. Cells may carry ANSI codes (width ignores them).
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

fn visible_width(s: &str) -> usize {
    let mut w = 0;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if c == 'm' {
                esc = false;
            }
        } else if c == '\x1b' {
            esc = true;
        } else {
            w += 1;
        }
    }
    w
}

impl Table {
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table {
            headers: headers.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, color: bool) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| visible_width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(visible_width(c));
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<String>, out: &mut String| {
            let mut parts = vec![];
            for (i, c) in cells.iter().enumerate().take(n) {
                let pad = widths[i].saturating_sub(visible_width(c));
                let cell = match self.headers[i].1 {
                    Align::Left if i + 1 == n => c.clone(),
                    Align::Left => format!("{c}{}", " ".repeat(pad)),
                    Align::Right => format!("{}{c}", " ".repeat(pad)),
                };
                parts.push(cell);
            }
            out.push_str("  ");
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        let head: Vec<String> = self
            .headers
            .iter()
            .map(|(h, _)| paint(h, Style::Bold, color))
            .collect();
        line(head, &mut out);
        let total: usize = widths.iter().sum::<usize>() + 2 * n;
        out.push_str(&paint(
            &format!(" {}\n", "─".repeat(total)),
            Style::Dim,
            color,
        ));
        for r in &self.rows {
            line(r.clone(), &mut out);
        }
        out
    }
}

/// Parses a time for --since/--until: RFC 3339-like `2026-11-26T10:00:00Z`
/// (UTC), UNIX seconds (`1795711277.5`), or an offset from the run's start
/// such as `+1.5s`, `+200ms`.
pub fn parse_time(s: &str) -> Result<TimeBound, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('+') {
        return Ok(TimeBound::FromRunStart(parse_offset(rest)?));
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() {
            return Ok(TimeBound::UnixNs((secs * 1e9) as i64));
        }
    }
    parse_rfc3339(s).map(TimeBound::UnixNs).ok_or_else(|| {
        format!("bad time '{s}': use UNIX seconds, +OFFSET (e.g. +2s, +150ms) from the run start, or YYYY-MM-DDTHH:MM:SS[.frac]Z")
    })
}

/// A duration such as `50us`, `1.5ms`, `2s` (a bare number is seconds), in ns.
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    parse_offset(s.trim())
}

fn parse_offset(s: &str) -> Result<i64, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e9)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e9)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600e9)
    } else {
        (s, 1e9)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad offset '+{s}': expected e.g. +2s, +150ms, +1m"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad offset '+{s}'"));
    }
    Ok((v * mult) as i64)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS[.frac][Z]
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: i64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut ns = ((days * 86400) + hh * 3600 + mm * 60 + ss) * 1_000_000_000;
    if let Some(f) = frac {
        let digits: String = f.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
            return None;
        }
        let scale = 10i64.pow(9 - digits.len() as u32);
        ns += digits.parse::<i64>().ok()? * scale;
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_units() {
        assert_eq!(dur(812.0), "812ns");
        assert_eq!(dur(12_300.0), "12.30µs");
        assert_eq!(dur(4_560_000.0), "4.56ms");
        assert_eq!(dur(1_234_000_000.0), "1.234s");
    }

    #[test]
    fn times_parse() {
        use TimeBound::{FromRunStart, UnixNs};
        assert_eq!(parse_time("+2s").unwrap(), FromRunStart(2_000_000_000));
        assert_eq!(parse_time("+150ms").unwrap(), FromRunStart(150_000_000));
        assert_eq!(parse_time("1.5").unwrap(), UnixNs(1_500_000_000));
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z").unwrap(),
            UnixNs(86_400_000_000_000)
        );
        assert_eq!(
            parse_time("2026-11-26T20:00:00.5Z").unwrap(),
            UnixNs(1_795_723_200_500_000_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("+-3s").is_err());
    }
}

/// A UTC timestamp `YYYY-MM-DD HH:MM:SS.mmm` for ns since the epoch.
pub fn utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod utc_tests {
    #[test]
    fn utc_formats() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            super::utc(1_795_723_200_500_000_000),
            "2026-11-26 20:00:00.500"
        );
    }
}
