//! The recorder's clock: a TSC-backed monotonic clock (quanta) read on the hot
//! path as raw ticks, anchored once to the wall clock so that the writer can
//! turn ticks into nanoseconds since the UNIX epoch.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// The process-wide monotonic clock.
#[inline]
pub(crate) fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// How raw readings are taken: not yet decided, the TSC read inline, or
/// through quanta (which is not inlined across crates).
const MODE_UNKNOWN: u8 = 0;
const MODE_TSC: u8 = 1;
const MODE_QUANTA: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);
/// Nanoseconds per raw tick, fixed point with 32 fractional bits.
static NS_PER_TICK_Q32: AtomicU64 = AtomicU64::new(0);

/// Decides the mode and the scale once, from quanta's own calibration.
#[cold]
fn init() -> u8 {
    let c = clock();
    // quanta scales a delta as (delta * factor) >> shift: this is its scale
    // in Q32 (and exactly 1.0 when its raw readings are already nanoseconds).
    let q32 = c.delta_as_nanos(0, 1 << 32).max(1);
    NS_PER_TICK_Q32.store(q32, Ordering::Relaxed);
    let mode = if quanta_reads_tsc(c) {
        MODE_TSC
    } else {
        MODE_QUANTA
    };
    MODE.store(mode, Ordering::Release);
    mode
}

/// True when quanta's raw reading is the TSC itself (its counter source is
/// `rdtsc`): then reading the TSC inline gives identical values, cheaper.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn quanta_reads_tsc(c: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let a = unsafe { core::arch::x86_64::_rdtsc() };
        let q = c.raw();
        let b = unsafe { core::arch::x86_64::_rdtsc() };
        a <= q && q <= b && b - a < 1_000_000
    })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn quanta_reads_tsc(_: &quanta::Clock) -> bool {
    false
}

#[inline]
fn mode() -> u8 {
    match MODE.load(Ordering::Acquire) {
        MODE_UNKNOWN => init(),
        m => m,
    }
}

/// Raw ticks of the monotonic clock: the cheapest timestamp there is.
#[inline]
pub(crate) fn now_raw() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if mode() == MODE_TSC {
        // SAFETY: rdtsc has no preconditions on x86_64.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    raw_slow()
}

#[inline(never)]
fn raw_slow() -> u64 {
    mode();
    clock().raw()
}

#[inline]
fn scale() -> u64 {
    let s = NS_PER_TICK_Q32.load(Ordering::Relaxed);
    if s == 0 {
        init();
        NS_PER_TICK_Q32.load(Ordering::Relaxed)
    } else {
        s
    }
}

/// Nanoseconds between two raw readings (0 if `end` precedes `start`).
#[inline]
pub(crate) fn delta_ns(start: u64, end: u64) -> u64 {
    if end <= start {
        0
    } else {
        (((end - start) as u128 * scale() as u128) >> 32) as u64
    }
}

/// Raw ticks in `ns` nanoseconds (saturating).
pub(crate) fn ns_to_raw(ns: u64) -> u64 {
    let t = ((ns as u128) << 32) / scale() as u128;
    t.min(u64::MAX as u128) as u64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ticks_scale_to_wall_time() {
        let a = now_raw();
        let t = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now_raw();
        let real = t.elapsed().as_nanos() as i64;
        let measured = delta_ns(a, b) as i64;
        assert!((measured - real).abs() < 5_000_000, "{measured} vs {real}");
        assert_eq!(delta_ns(b, a), 0);
        // Same scale as quanta's own conversion.
        let q = clock().delta_as_nanos(a, b) as i64;
        assert!(
            (measured - q).abs() <= 1 + q / 1_000_000,
            "{measured} vs {q}"
        );
    }

    #[test]
    fn ns_to_raw_inverts_delta_ns() {
        for ns in [0u64, 1_000, 200_000_000, 3_600_000_000_000] {
            let back = delta_ns(1, 1 + ns_to_raw(ns));
            assert!(
                back.abs_diff(ns) <= 2 + ns / 1_000_000_000,
                "{ns} -> {back}"
            );
        }
        assert_eq!(ns_to_raw(u64::MAX).max(1), ns_to_raw(u64::MAX));
    }
}
