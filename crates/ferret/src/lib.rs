//! Ferret: a persistent span profiler.
//!
//! Record spans from sync, async and multi-threaded code into one SQLite
//! file, cheaply enough to leave on in production; read them back as a lazy
//! stream and analyze them in memory that does not grow with span count.
//!
//! ```no_run
//! let profiler = ferret::Profiler::open("ferret.db").unwrap();
//! profiler.install();
//! {
//!     let _g = ferret::span("parse");
//!     ferret::measure("tokenize", || { /* work */ });
//! }
//! profiler.close().unwrap();
//! ```
#![warn(missing_docs)]

mod clock;
mod error;
pub mod guide;
mod intern;
mod recorder;

pub use error::{Error, Result, StorageError};
pub use intern::Name;
#[cfg(feature = "tracing")]
mod layer;

/// The `#[ferret::measure]` attribute: records every call of a function as a
/// span. See [the macro's documentation](macro@measure).
pub use ferret_macros::measure;
#[cfg(feature = "tracing")]
pub use layer::FerretLayer;
pub use recorder::future::{InSpan, InSpanExt, RecordErr};
pub use recorder::span::{
    current, measure, span, start, start_root, start_with_parent, Entered, SpanContext, SpanGuard,
    SpanHandle,
};

/// Support code for `#[ferret::measure]`; not a public API.
#[doc(hidden)]
pub mod __private {
    /// True while a profiler is installed (lets dynamic names skip `format!`).
    #[inline]
    pub fn active() -> bool {
        crate::recorder::context::ACTIVE.load(std::sync::atomic::Ordering::Relaxed)
    }
}
pub use ferret_format::{Status, TagValue, Tags};
pub use recorder::{
    random_run_id, Profiler, ProfilerBuilder, RecorderStats, Stall, StallFrame, StallKind,
};

/// Persists on SIGTERM and SIGINT (opt-in): when either arrives, the
/// installed profiler is closed (its spans committed, its process marked as
/// cleanly ended, within its close timeout) and the process then terminates
/// as the signal's default action would. Without it, those signals kill the
/// process like SIGKILL: spans that ended within the last flush interval
/// are lost (see the README's "What a crash can lose").
///
/// Call it once, early (it starts a thread that waits for the signals); a
/// program with signal handlers of its own should call
/// [`Profiler::close`] from them instead.
#[cfg(unix)]
pub fn flush_on_signals() -> Result<()> {
    recorder::signals::flush_on_signals()
}
