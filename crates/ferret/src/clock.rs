//! The recorder's clock: a TSC-backed monotonic clock (quanta) read on the hot
//! path as raw ticks, anchored once to the wall clock so that the writer can
//! turn ticks into nanoseconds since the UNIX epoch.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// The process-wide monotonic clock.
#[inline]
pub(crate) fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Raw ticks of the monotonic clock: the cheapest timestamp there is.
#[inline]
pub(crate) fn now_raw() -> u64 {
    clock().raw()
}

/// Nanoseconds between two raw readings (0 if `end` precedes `start`).
#[inline]
pub(crate) fn delta_ns(start: u64, end: u64) -> u64 {
    if end <= start {
        0
    } else {
        clock().delta_as_nanos(start, end)
    }
}

/// Current wall-clock time in nanoseconds since the UNIX epoch.
pub(crate) fn wall_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A pairing of one raw monotonic reading with the wall clock, taken once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anchor {
    raw: u64,
    wall_ns: i64,
}

impl Anchor {
    pub(crate) fn now() -> Anchor {
        let raw = now_raw();
        Anchor {
            raw,
            wall_ns: wall_now_ns(),
        }
    }

    /// Wall-clock nanoseconds for a raw reading.
    #[inline]
    pub(crate) fn wall_ns(&self, raw: u64) -> i64 {
        if raw >= self.raw {
            self.wall_ns + delta_ns(self.raw, raw) as i64
        } else {
            self.wall_ns - delta_ns(raw, self.raw) as i64
        }
    }
}
