//! Drawing `ferret watch`'s screen from plain data (a [`Header`], a
//! [`Snapshot`] and the UI state), so that it can be tested on ratatui's
//! `TestBackend`.

use crate::fmt::{dur, term_safe};
use ferret_analyze::live::{Header, InFlightRow, NameRow, Snapshot};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// The pane that Up/Down scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The per-name table.
    #[default]
    Names,
    /// The in-flight spans.
    InFlight,
}

/// What the keys do right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// The main screen.
    #[default]
    Normal,
    /// Typing a filter (applied as typed).
    Filter,
    /// The key help.
    Help,
    /// Picking a run: (run id, description) and the selected line.
    Runs {
        /// The file's runs, newest first.
        runs: Vec<(String, String)>,
        /// Selected line.
        selected: usize,
    },
}

/// UI state that is not the view model's.
#[derive(Debug, Clone, Default)]
pub struct Ui {
    /// The focused pane.
    pub focus: Pane,
    /// First row shown of the names table.
    pub names_offset: usize,
    /// First row shown of the in-flight pane.
    pub inflight_offset: usize,
    /// Key mode.
    pub mode: Mode,
    /// A message for the footer (e.g. a failed run switch).
    pub message: Option<String>,
}

/// The keys, as `?` shows them.
pub const KEYS: [(&str, &str); 9] = [
    ("q", "quit"),
    ("space", "pause / resume the display"),
    ("s", "cycle the sort: self, rate, p99, max, errors, name"),
    ("/", "filter names (Enter keeps, Esc clears)"),
    ("w", "cycle the window: 1s, 5s, 10s, 30s, 60s"),
    ("Tab", "switch pane (Up/Down, PgUp/PgDn scroll it)"),
    ("r", "pick a run"),
    ("?", "this help (any key closes)"),
    ("Ctrl-C", "quit"),
];

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.1}k", r / 1e3)
    } else if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// The cells of one per-name row: name, rate/s, p50, p95, p99, max,
/// errors, self %.
pub fn row_cells(r: &NameRow) -> Vec<String> {
    vec![
        term_safe(&r.name).into_owned(),
        rate(r.rate),
        dur(r.p50_ns as f64),
        dur(r.p95_ns as f64),
        dur(r.p99_ns as f64),
        dur(r.max_ns as f64),
        r.errors.to_string(),
        format!("{:.1}", r.self_pct),
    ]
}

/// One in-flight span as a line: open time, pid/thread, busy or idle, stack.
pub fn inflight_line(r: &InFlightRow) -> String {
    let thread = if r.thread.is_empty() {
        "(no thread)".to_owned()
    } else {
        term_safe(&r.thread).into_owned()
    };
    let stack: Vec<String> = r.stack.iter().map(|s| term_safe(s).into_owned()).collect();
    format!(
        "{:>9}  {}  pid {} {}  {}{}",
        dur(r.open_ns as f64),
        if r.busy { "busy" } else { "idle" },
        r.pid,
        thread,
        stack.join(" > "),
        if r.stalled { "  STALLED" } else { "" }
    )
}

/// The header as text lines (also printed by `--once`).
pub fn header_lines(h: &Header, s: &Snapshot) -> Vec<String> {
    let mode = match (h.replay_speed, h.replay_done, s.paused) {
        (_, _, true) => "PAUSED".to_owned(),
        (Some(_), true, _) => "REPLAY (done)".to_owned(),
        (Some(x), false, _) => format!("REPLAY {x}x"),
        (None, _, _) => "LIVE".to_owned(),
    };
    let mut l1 = format!(
        "{}  ({})  run {}  {mode}",
        term_safe(&h.file.display().to_string()),
        h.format.as_str(),
        term_safe(&h.run)
    );
    if h.format == ferret_analyze::store::FileKind::FerretIo {
        l1.push_str("  (ferret-io: no processes or counters recorded)");
    }
    let procs = if h.processes.is_empty() {
        "none live".to_owned()
    } else {
        h.processes
            .iter()
            .map(|p| {
                format!(
                    "pid {} ({} ago{})",
                    p.pid,
                    dur(p.heartbeat_age_ns as f64),
                    if p.stale { ", stale" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut l2 = format!(
        "processes: {procs}   spans/s {}   window {}s",
        rate(s.spans_per_sec),
        s.window_ns / 1_000_000_000
    );
    if let Some(c) = &h.counters {
        l2.push_str(&format!(
            "   accepted {}  dropped {}  shed {}",
            c.accepted, c.dropped, c.shed
        ));
    }
    let mut l3 = format!(
        "sort {}   names {}/{}",
        s.sort.as_str(),
        s.rows.len(),
        s.names_total
    );
    if !s.filter.is_empty() {
        l3.push_str(&format!("   filter '{}'", term_safe(&s.filter)));
    }
    if h.skipped_rows > 0 {
        l3.push_str(&format!("   skipped rows {}", h.skipped_rows));
    }
    if h.late > 0 {
        l3.push_str(&format!("   late spans {}", h.late));
    }
    vec![l1, l2, l3]
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, ui: &Ui, h: &Header, s: &Snapshot) {
    let area = f.area();
    let inflight_h = (s.inflight.len() as u16 + 2).clamp(3, (area.height / 3).max(3));
    let [head, names, inflight, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(inflight_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let lines: Vec<Line> = header_lines(h, s)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                Line::from(l).bold()
            } else {
                Line::from(l)
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines), head);
    draw_names(f, ui, s, names);
    draw_inflight(f, ui, s, inflight);
    let footer = match (&ui.mode, &ui.message) {
        (Mode::Filter, _) => Line::from(vec![
            Span::raw("filter: ").bold(),
            Span::raw(term_safe(&s.filter).into_owned()),
            Span::raw("_  (Enter keeps, Esc clears)").dim(),
        ]),
        (_, Some(m)) => Line::from(term_safe(m).into_owned()).red(),
        _ => Line::from("q quit  space pause  s sort  / filter  w window  Tab pane  r run  ? help")
            .dim(),
    };
    f.render_widget(Paragraph::new(footer), foot);
    match &ui.mode {
        Mode::Help => draw_help(f, area),
        Mode::Runs { runs, selected } => draw_runs(f, area, runs, *selected),
        _ => {}
    }
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let b = Block::bordered().title(title);
    if focused {
        b.border_style(Style::new().fg(Color::Cyan))
    } else {
        b
    }
}

fn draw_names(f: &mut Frame, ui: &Ui, s: &Snapshot, area: Rect) {
    let header = Row::new(
        [
            "name", "rate/s", "p50", "p95", "p99", "max", "errors", "self %",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| cell(h.to_owned(), i).add_modifier(Modifier::BOLD)),
    );
    let offset = ui.names_offset.min(s.rows.len().saturating_sub(1));
    let name_w = s
        .rows
        .iter()
        .map(|r| term_safe(&r.name).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(12, 60) as u16;
    let rows = s.rows.iter().skip(offset).map(|r| {
        let cells = row_cells(r)
            .into_iter()
            .enumerate()
            .map(|(i, c)| cell(c, i));
        let row = Row::new(cells);
        if r.errors > 0 {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(name_w),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    let title = format!(
        " spans over the last {}s, sorted by {} ",
        s.window_ns / 1_000_000_000,
        s.sort.as_str()
    );
    let t = Table::new(rows, widths)
        .header(header)
        .block(pane_block(title, ui.focus == Pane::Names));
    f.render_widget(t, area);
}

/// A table cell: the name left-aligned, numbers right-aligned.
fn cell(text: String, column: usize) -> Cell<'static> {
    if column == 0 {
        Cell::from(text)
    } else {
        Cell::from(Line::from(text).right_aligned())
    }
}

fn draw_inflight(f: &mut Frame, ui: &Ui, s: &Snapshot, area: Rect) {
    let title = format!(" in flight: {} (longest open first) ", s.inflight.len());
    let lines: Vec<Line> = if s.inflight.is_empty() {
        vec![
            Line::from("no open spans published (the recorder publishes them with live state on)")
                .dim(),
        ]
    } else {
        s.inflight
            .iter()
            .skip(ui.inflight_offset.min(s.inflight.len().saturating_sub(1)))
            .map(|r| {
                let l = Line::from(inflight_line(r));
                if r.stalled {
                    l.style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
                } else {
                    l
                }
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines).block(pane_block(title, ui.focus == Pane::InFlight)),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_help(f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::raw(format!("{k:>7}  ")).bold(),
                Span::raw(*what),
            ])
        })
        .collect();
    let r = centered(area, 64, KEYS.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" keys "))
            .wrap(Wrap { trim: false }),
        r,
    );
}

fn draw_runs(f: &mut Frame, area: Rect, runs: &[(String, String)], selected: usize) {
    let r = centered(area, 72, (runs.len() as u16 + 2).min(area.height));
    let visible = r.height.saturating_sub(2) as usize;
    let first = selected.saturating_sub(visible.saturating_sub(1));
    let lines: Vec<Line> = runs
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, (id, what))| {
            let l = Line::from(format!("{}  {}", term_safe(id), term_safe(what)));
            if i == selected {
                l.reversed()
            } else {
                l
            }
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" runs (Enter picks, Esc cancels) ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_analyze::live::{LiveSort, ProcessRow};
    use ferret_analyze::store::FileKind;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn header() -> Header {
        Header {
            file: "svc.db".into(),
            format: FileKind::Native,
            run: "r1".into(),
            processes: vec![ProcessRow {
                pid: 4251,
                host: None,
                heartbeat_age_ns: 300_000_000,
                stale: false,
            }],
            counters: None,
            skipped_rows: 0,
            late: 0,
            replay_speed: None,
            replay_done: false,
        }
    }

    fn snapshot() -> Snapshot {
        let row = |name: &str, rate: f64, errors: u64| NameRow {
            name: name.into(),
            count: (rate * 10.0) as u64,
            rate,
            p50_ns: 1_200,
            p95_ns: 3_400,
            p99_ns: 5_600,
            max_ns: 2_000_000,
            errors,
            self_ns: 1,
            self_pct: 12.5,
        };
        Snapshot {
            now_ns: 0,
            window_ns: 10_000_000_000,
            spans_per_sec: 1_250_000.0,
            spans: 12_500_000,
            names_total: 2,
            rows: vec![row("db.query", 1_000_000.0, 3), row("render", 250_000.0, 0)],
            inflight: vec![InFlightRow {
                pid: 4251,
                thread: "worker-1".into(),
                name: "db.query".into(),
                stack: vec!["handle_request".into(), "db.query".into()],
                start_ns: 0,
                open_ns: 12_400_000_000,
                busy: true,
                stalled: true,
            }],
            sort: LiveSort::SelfTime,
            filter: String::new(),
            paused: false,
        }
    }

    fn screen(ui: &Ui, h: &Header, s: &Snapshot) -> (Vec<String>, ratatui::buffer::Buffer) {
        let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
        t.draw(|f| draw(f, ui, h, s)).unwrap();
        let buf = t.backend().buffer().clone();
        let lines = (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect::<String>()
            })
            .collect();
        (lines, buf)
    }

    #[test]
    fn main_screen_shows_header_rows_and_inflight() {
        let (lines, buf) = screen(&Ui::default(), &header(), &snapshot());
        let all = lines.join("\n");
        assert!(
            lines[0].contains("svc.db") && lines[0].contains("run r1") && lines[0].contains("LIVE")
        );
        assert!(lines[1].contains("pid 4251 (300.00ms ago)"), "{}", lines[1]);
        assert!(lines[1].contains("spans/s 1.25M"));
        let q = lines
            .iter()
            .find(|l| l.contains("db.query") && l.contains("1.00M"))
            .expect(&all);
        for cell in ["1.20µs", "3.40µs", "5.60µs", "2.00ms", "12.5"] {
            assert!(q.contains(cell), "{cell} in {q}");
        }
        assert!(all.contains("render"));
        let (y, stalled) = lines
            .iter()
            .enumerate()
            .find(|(_, l)| l.contains("handle_request > db.query"))
            .expect(&all);
        assert!(
            stalled.contains("12.400s")
                && stalled.contains("worker-1")
                && stalled.contains("STALLED")
        );
        // The stalled span is red.
        let x = stalled.find("handle_request").unwrap() as u16;
        assert_eq!(buf[(x, y as u16)].fg, Color::Red);
        assert!(lines[23].contains("q quit") && lines[23].contains("? help"));
    }

    #[test]
    fn help_overlay_lists_every_key() {
        let ui = Ui {
            mode: Mode::Help,
            ..Ui::default()
        };
        let (lines, _) = screen(&ui, &header(), &snapshot());
        let all = lines.join("\n");
        for (k, what) in KEYS {
            assert!(
                all.contains(k) && all.contains(&what[..20.min(what.len())]),
                "{k}: {all}"
            );
        }
    }

    #[test]
    fn filter_prompt_and_paused_mark() {
        let mut s = snapshot();
        s.filter = "db".into();
        s.paused = true;
        let ui = Ui {
            mode: Mode::Filter,
            ..Ui::default()
        };
        let (lines, _) = screen(&ui, &header(), &s);
        assert!(lines[0].contains("PAUSED"));
        assert!(lines[2].contains("filter 'db'"));
        assert!(lines[23].starts_with("filter: db_"), "{}", lines[23]);
    }

    #[test]
    fn run_picker_highlights_the_selection() {
        let ui = Ui {
            mode: Mode::Runs {
                runs: vec![
                    ("r2".into(), "latest".into()),
                    ("r1".into(), "older".into()),
                ],
                selected: 1,
            },
            ..Ui::default()
        };
        let (lines, buf) = screen(&ui, &header(), &snapshot());
        let (y, l) = lines
            .iter()
            .enumerate()
            .find(|(_, l)| l.contains("r1  older"))
            .unwrap();
        let x = l.find("r1  older").unwrap() as u16;
        assert!(buf[(x, y as u16)].modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn control_characters_in_names_are_escaped() {
        let mut s = snapshot();
        s.rows[0].name = "evil\x1b[2Jname".into();
        let (lines, _) = screen(&Ui::default(), &header(), &s);
        assert!(lines.join("\n").contains("evil\\x1b[2Jname"));
    }
}
