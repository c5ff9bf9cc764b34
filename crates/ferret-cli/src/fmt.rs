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

/// `s` safe to print on a terminal: control characters (ESC, BEL, NUL,
/// DEL, C1, ...) become visible escapes (`\x1b`, `\u{9b}`), so that a span
/// name cannot move the cursor, recolor or retitle the user's terminal.
pub fn term_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let v = c as u32;
            if v < 0x80 {
                out.push_str(&format!("\\x{v:02x}"));
            } else {
                out.push_str(&format!("\\u{{{v:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The styles the commands use (rendered by `anstyle`).
#[derive(Clone, Copy)]
pub enum Style {
    Bold,
    Dim,
    Red,
    Yellow,
}

impl Style {
    fn ansi(self) -> anstyle::Style {
        use anstyle::AnsiColor;
        match self {
            Style::Bold => anstyle::Style::new().bold(),
            Style::Dim => anstyle::Style::new().dimmed(),
            Style::Red => AnsiColor::Red.on_default(),
            Style::Yellow => AnsiColor::Yellow.on_default(),
        }
    }
}

/// Wraps `s` in an ANSI style when `on`.
pub fn paint(s: &str, style: Style, on: bool) -> String {
    if !on {
        return s.to_owned();
    }
    let st = style.ansi();
    format!("{st}{s}{st:#}")
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

/// A borderless aligned text table (laid out by `comfy-table`): a bold
/// header, a dim rule under it, columns two spaces apart. Cells may carry
/// ANSI styles; widths ignore them.
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

/// comfy-table's preset string: nothing drawn but the rule under the header.
const HEADER_RULE_ONLY: &str = "     ─             ";

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table {
            headers: headers.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: vec![],
        }
    }

    /// Appends a row (extra cells beyond the headers are ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, trailing spaces trimmed.
    pub fn render(&self, color: bool) -> String {
        use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement};
        let n = self.headers.len();
        let mut t = comfy_table::Table::new();
        t.load_preset(HEADER_RULE_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(
                self.headers
                    .iter()
                    .map(|(h, _)| paint(h, Style::Bold, color)),
            );
        for r in &self.rows {
            t.add_row(r.iter().take(n).cloned().collect::<Vec<_>>());
        }
        for (i, (_, align)) in self.headers.iter().enumerate() {
            if let Some(col) = t.column_mut(i) {
                col.set_cell_alignment(match align {
                    Align::Left => CellAlignment::Left,
                    Align::Right => CellAlignment::Right,
                });
                col.set_padding((if i == 0 { 2 } else { 1 }, 1));
                col.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        let mut out = String::new();
        for (i, line) in t.lines().enumerate() {
            let line = line.trim_end();
            if i == 1 && color {
                out.push_str(&paint(line, Style::Dim, true));
            } else {
                out.push_str(line);
            }
            out.push('\n');
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
    let bad = || format!("bad offset '+{s}': expected e.g. +2s, +150ms, +1.5m, +1h");
    // A bare number is seconds; anything else is a friendly duration
    // (`150ms`, `1.5s`, `2m`, `50us`) or ISO 8601 (`PT2S`), parsed by jiff.
    let ns = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() => secs * 1e9,
        Ok(_) => return Err(bad()),
        Err(_) => s
            .parse::<jiff::SignedDuration>()
            .map_err(|_| bad())?
            .as_nanos() as f64,
    };
    if !(0.0..=i64::MAX as f64).contains(&ns) {
        return Err(bad());
    }
    Ok(ns as i64)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]` with `Z` or a numeric offset; without
/// one, the time is read as UTC.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let ts = match s.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        Err(_) => s
            .parse::<jiff::civil::DateTime>()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp(),
    };
    i64::try_from(ts.as_nanosecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(term_safe("plain µs"), "plain µs");
        assert_eq!(
            term_safe("a\u{1b}[31mb\u{7}\0\u{9b}"),
            "a\\x1b[31mb\\x07\\x00\\u{9b}"
        );
    }

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
    match jiff::Timestamp::from_nanosecond(ns.into()) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Err(_) => format!("{ns}ns"),
    }
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

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_ignore_ansi_in_widths() {
        let mut t = Table::new(&[("name", Align::Left), ("count", Align::Right)]);
        t.row(vec![paint("a", Style::Red, true), "1".into()]);
        t.row(vec!["longer".into(), "12345".into()]);
        let plain = t.render(false);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[0], "  name    count");
        assert!(lines[1].trim().chars().all(|c| c == '─'), "{plain}");
        assert_eq!(lines[3], "  longer  12345");
        // The colored cell pads as if it had no escape codes.
        let colored = t.render(true);
        let row = colored.lines().nth(2).unwrap();
        assert!(row.contains("\x1b[31ma\x1b[0m"), "{row:?}");
        assert!(row.ends_with("      1"), "{row:?}");
    }

    #[test]
    fn offsets_and_local_less_times_parse() {
        assert_eq!(parse_duration_ns("1.5m").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration_ns("50us").unwrap(), 50_000);
        assert_eq!(parse_duration_ns("2").unwrap(), 2_000_000_000);
        assert!(parse_duration_ns("-2s").is_err());
        assert_eq!(
            parse_time("1970-01-02 00:00:00").unwrap(),
            TimeBound::UnixNs(86_400_000_000_000)
        );
        assert_eq!(
            parse_time("1970-01-02T02:00:00+02:00").unwrap(),
            TimeBound::UnixNs(86_400_000_000_000)
        );
    }
}
