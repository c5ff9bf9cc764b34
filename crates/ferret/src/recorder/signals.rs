//! Opt-in persistence on SIGTERM and SIGINT: a thread waits for either
//! signal, closes the installed profiler (its spans are committed and its
//! process marked as cleanly ended, within the close timeout), then lets the
//! signal take its default course (the process terminates as it would have).

use super::context;
use crate::error::{Error, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::OnceLock;

/// Installs the handler once; later calls return the first call's result.
pub(crate) fn flush_on_signals() -> Result<()> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mut signals =
            signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(|e| e.to_string())?;
        std::thread::Builder::new()
            .name("ferret-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    if let Some(inner) = context::take_installed() {
                        inner.stop();
                    }
                    // Terminate the way the signal would have.
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                    std::process::exit(128 + sig);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .clone()
    .map_err(|e| Error::Invalid(format!("ferret: cannot handle SIGTERM/SIGINT: {e}")))
}
