//! The terminal loop: poll the file every 250 ms, redraw, handle keys. The
//! terminal is restored on every way out: a normal quit, an error (the
//! guard's drop, before `main` prints it) and a panic (ratatui's hook).

use super::render::{self, Mode, Pane, Ui};
use super::{now_ns, POLL};
use crate::error::CliResult;
use ferret_analyze::live::Watcher;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::time::Instant;

/// Restores the terminal when dropped.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    None,
    Quit,
    Redraw,
}

pub(super) fn run(w: &mut Watcher) -> CliResult {
    let mut term = ratatui::try_init()?;
    let _restore = Restore;
    let mut ui = Ui::default();
    let mut next_poll = Instant::now();
    let mut dirty = true;
    loop {
        if Instant::now() >= next_poll {
            w.poll(now_ns())?;
            next_poll = Instant::now() + POLL;
            dirty = true; // ages and the window move even without new spans
        }
        if dirty {
            let now = now_ns();
            let (h, s) = (w.header(now), w.snapshot(now));
            term.draw(|f| render::draw(f, &ui, &h, &s))?;
            dirty = false;
        }
        let wait = next_poll.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => match on_key(w, &mut ui, k) {
                    Action::Quit => return Ok(()),
                    Action::Redraw => dirty = true,
                    Action::None => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

/// Applies a key to the UI state and the view model.
pub(super) fn on_key(w: &mut Watcher, ui: &mut Ui, k: KeyEvent) -> Action {
    if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
        return Action::Quit;
    }
    ui.message = None;
    match &mut ui.mode {
        Mode::Help => {
            ui.mode = Mode::Normal;
            return Action::Redraw;
        }
        Mode::Filter => {
            let mut f = w.view().filter().to_owned();
            match k.code {
                KeyCode::Enter => ui.mode = Mode::Normal,
                KeyCode::Esc => {
                    f.clear();
                    ui.mode = Mode::Normal;
                }
                KeyCode::Backspace => {
                    f.pop();
                }
                KeyCode::Char(c) => f.push(c),
                _ => return Action::None,
            }
            w.view_mut().set_filter(&f);
            ui.names_offset = 0;
            return Action::Redraw;
        }
        Mode::Runs { runs, selected } => {
            match k.code {
                KeyCode::Up => *selected = selected.saturating_sub(1),
                KeyCode::Down => *selected = (*selected + 1).min(runs.len().saturating_sub(1)),
                KeyCode::Enter => {
                    let run = runs.get(*selected).map(|r| r.0.clone());
                    ui.mode = Mode::Normal;
                    if let Some(run) = run {
                        if let Err(e) = w.switch_run(&run, now_ns()) {
                            ui.message = Some(format!("cannot follow run {run}: {e}"));
                        }
                    }
                }
                KeyCode::Esc | KeyCode::Char('q') => ui.mode = Mode::Normal,
                _ => return Action::None,
            }
            return Action::Redraw;
        }
        Mode::Normal => {}
    }
    let step = |page: bool| if page { 10 } else { 1 };
    match k.code {
        KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
        KeyCode::Char(' ') => {
            let at = w.view_time(now_ns());
            w.view_mut().toggle_pause(at)
        }
        KeyCode::Char('s') => w.view_mut().cycle_sort(),
        KeyCode::Char('/') => ui.mode = Mode::Filter,
        KeyCode::Char('w') => w.view_mut().cycle_window(),
        KeyCode::Tab | KeyCode::BackTab => {
            ui.focus = match ui.focus {
                Pane::Names => Pane::InFlight,
                Pane::InFlight => Pane::Names,
            }
        }
        KeyCode::Char('?') | KeyCode::Char('h') => ui.mode = Mode::Help,
        KeyCode::Char('r') => match w.runs() {
            Ok(runs) => {
                let current = w.run().to_owned();
                let runs: Vec<(String, String)> = runs
                    .into_iter()
                    .rev()
                    .map(|r| {
                        let mut what = format!("{} spans", r.spans);
                        if let Some(l) = &r.label {
                            what.push_str(&format!("  {l}"));
                        }
                        if r.run_id == current {
                            what.push_str("  (watching)");
                        }
                        (r.run_id, what)
                    })
                    .collect();
                let selected = runs.iter().position(|r| r.0 == current).unwrap_or(0);
                ui.mode = Mode::Runs { runs, selected };
            }
            Err(e) => ui.message = Some(format!("cannot list runs: {e}")),
        },
        KeyCode::Up | KeyCode::PageUp | KeyCode::Down | KeyCode::PageDown => {
            let n = step(matches!(k.code, KeyCode::PageUp | KeyCode::PageDown));
            let off = match ui.focus {
                Pane::Names => &mut ui.names_offset,
                Pane::InFlight => &mut ui.inflight_offset,
            };
            *off = if matches!(k.code, KeyCode::Up | KeyCode::PageUp) {
                off.saturating_sub(n)
            } else {
                *off + n
            };
        }
        _ => return Action::None,
    }
    Action::Redraw
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_analyze::live::{LiveSort, WatchOptions};
    use ferret_testkit::{span, NativeFile};

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn watcher(dir: &std::path::Path) -> Watcher {
        let db = dir.join("k.db");
        NativeFile::new("r1")
            .span(span(1, 0, "alpha", now_ns(), 1_000, 0))
            .write(&db);
        Watcher::open(&db, WatchOptions::default(), now_ns()).unwrap()
    }

    #[test]
    fn keys_drive_the_view_model_and_the_ui() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watcher(dir.path());
        let mut ui = Ui::default();
        assert_eq!(
            on_key(&mut w, &mut ui, key(KeyCode::Char(' '))),
            Action::Redraw
        );
        assert!(w.view().paused());
        on_key(&mut w, &mut ui, key(KeyCode::Char(' ')));
        assert!(!w.view().paused());
        on_key(&mut w, &mut ui, key(KeyCode::Char('s')));
        assert_eq!(w.view().sort(), LiveSort::Rate);
        on_key(&mut w, &mut ui, key(KeyCode::Char('w')));
        assert_eq!(w.view().window_s(), 30);
        on_key(&mut w, &mut ui, key(KeyCode::Tab));
        assert_eq!(ui.focus, Pane::InFlight);
        on_key(&mut w, &mut ui, key(KeyCode::Down));
        assert_eq!((ui.inflight_offset, ui.names_offset), (1, 0));
        // The filter is applied as typed; Enter keeps it, Esc clears it.
        on_key(&mut w, &mut ui, key(KeyCode::Char('/')));
        assert_eq!(ui.mode, Mode::Filter);
        for c in "alq".chars() {
            on_key(&mut w, &mut ui, key(KeyCode::Char(c)));
        }
        assert_eq!(w.view().filter(), "alq", "q types, it does not quit");
        on_key(&mut w, &mut ui, key(KeyCode::Backspace));
        on_key(&mut w, &mut ui, key(KeyCode::Enter));
        assert_eq!((w.view().filter(), &ui.mode), ("al", &Mode::Normal));
        on_key(&mut w, &mut ui, key(KeyCode::Char('/')));
        on_key(&mut w, &mut ui, key(KeyCode::Esc));
        assert_eq!(w.view().filter(), "");
        // Help, closed by any key.
        on_key(&mut w, &mut ui, key(KeyCode::Char('?')));
        assert_eq!(ui.mode, Mode::Help);
        assert_eq!(
            on_key(&mut w, &mut ui, key(KeyCode::Char('q'))),
            Action::Redraw
        );
        assert_eq!(ui.mode, Mode::Normal);
        // The run picker lists the file's runs; Enter follows the one picked.
        on_key(&mut w, &mut ui, key(KeyCode::Char('r')));
        match &ui.mode {
            Mode::Runs { runs, selected } => {
                assert_eq!(runs[*selected].0, "r1");
                assert!(runs[*selected].1.contains("(watching)"));
            }
            m => panic!("{m:?}"),
        }
        on_key(&mut w, &mut ui, key(KeyCode::Enter));
        assert_eq!(
            (w.run(), &ui.mode, &ui.message),
            ("r1", &Mode::Normal, &None)
        );
        assert_eq!(
            w.view().sort(),
            LiveSort::Rate,
            "settings survive a run switch"
        );
        assert_eq!(
            on_key(&mut w, &mut ui, key(KeyCode::Char('q'))),
            Action::Quit
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        ui.mode = Mode::Filter;
        assert_eq!(on_key(&mut w, &mut ui, ctrl_c), Action::Quit);
    }
}
