//! Per-trace admission: a trace is kept or skipped when its root starts, so
//! that no span is ever recorded without its parent.
//!
//! - `max_traces_per_second`: a token bucket spent by roots.
//! - `max_spans_per_second`: a token bucket spent by every recorded span; a
//!   root is admitted only while the bucket has tokens, and the spans of an
//!   admitted trace may overdraw it (they are never cut off mid-trace), so the
//!   long-run rate stays at the budget.
//! - `sample_rate`: the probability that a root is admitted.
//!
//! Buckets start full and hold at most a tenth of a second of budget, so
//! over any window of T seconds at most `rate × (T + 0.1)` roots start, plus
//! the spans of traces already admitted (a long trace can overdraw the span
//! bucket; the debt delays the next admissions).

use crate::clock;
use std::cell::Cell;
use std::sync::Mutex;

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_raw: u64,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        // A tenth of a second of budget: enough to absorb jitter, small
        // enough that a burst cannot exceed the budget by more than that.
        let burst = (rate / 10.0).max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last_raw: clock::now_raw(),
        }
    }

    fn refill(&mut self, now: u64) {
        let dt = clock::delta_ns(self.last_raw, now) as f64 * 1e-9;
        if dt > 0.0 {
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last_raw = now;
        }
    }
}

/// Sampling configuration and state of one profiler.
pub(crate) struct Sampler {
    spans: Option<Mutex<Bucket>>,
    traces: Option<Mutex<Bucket>>,
    rate: Option<f64>,
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        u64::from_le_bytes(b) | 1
    });
}

fn uniform() -> f64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

impl Sampler {
    /// `None` when nothing limits recording.
    pub(crate) fn new(
        max_spans_per_second: Option<f64>,
        max_traces_per_second: Option<f64>,
        sample_rate: Option<f64>,
    ) -> Option<Sampler> {
        if max_spans_per_second.is_none()
            && max_traces_per_second.is_none()
            && sample_rate.is_none()
        {
            return None;
        }
        Some(Sampler {
            spans: max_spans_per_second.map(|r| Mutex::new(Bucket::new(r))),
            traces: max_traces_per_second.map(|r| Mutex::new(Bucket::new(r))),
            rate: sample_rate,
        })
    }

    /// Decides for a new span: `root` spans decide for their whole trace;
    /// non-root spans of admitted traces only spend span tokens.
    pub(crate) fn admit(&self, root: bool) -> bool {
        let now = clock::now_raw();
        if root {
            if let Some(p) = self.rate {
                if uniform() >= p {
                    return false;
                }
            }
            if let Some(b) = &self.spans {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.refill(now);
                if b.tokens < 1.0 {
                    return false;
                }
            }
            if let Some(b) = &self.traces {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.refill(now);
                if b.tokens < 1.0 {
                    return false;
                }
                b.tokens -= 1.0;
            }
        }
        if let Some(b) = &self.spans {
            let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
            b.refill(now);
            b.tokens -= 1.0;
        }
        true
    }
}
