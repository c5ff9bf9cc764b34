//! The sliding window: a ring of per-second cells per name.
//!
//! A span lands in the second its end falls in. Each slot of the ring holds
//! one second: per name a count, an error count, the self time, the largest
//! duration and a [`LatencySketch`] (exact for a few values, then an
//! HdrHistogram). A window's statistics merge the slots of its seconds, so
//! memory grows with names × ring seconds, never with spans.

use crate::analysis::LatencySketch;
use crate::store::tail::TailSpan;

const NS: i64 = 1_000_000_000;

/// One name's statistics in one second.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cell {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) self_ns: u64,
    pub(crate) max_ns: u64,
    pub(crate) sketch: LatencySketch,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The second held (end_ns / 1e9), `i64::MIN` when empty.
    sec: i64,
    /// Cells by name id.
    cells: Vec<Option<Box<Cell>>>,
}

impl Slot {
    fn reset(&mut self, sec: i64) {
        self.sec = sec;
        for c in &mut self.cells {
            *c = None;
        }
    }
}

/// A ring of `capacity` one-second slots; see the module docs.
#[derive(Debug, Clone)]
pub struct Ring {
    slots: Vec<Slot>,
    /// The newest second seen (the ring's head).
    head: i64,
    /// Spans that ended before the ring's oldest second when they arrived.
    pub late: u64,
}

/// A window's merged statistics for one name id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) self_ns: u64,
    pub(crate) max_ns: u64,
    pub(crate) sketch: LatencySketch,
}

impl Ring {
    /// A ring holding the last `capacity` seconds (at least 1).
    pub fn new(capacity: u32) -> Ring {
        let slots = (0..capacity.max(1))
            .map(|_| Slot {
                sec: i64::MIN,
                cells: Vec::new(),
            })
            .collect();
        Ring {
            slots,
            head: i64::MIN,
            late: 0,
        }
    }

    /// Seconds the ring holds.
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Adds a span under name id `name`.
    #[inline]
    pub fn add(&mut self, s: &TailSpan) {
        let sec = s.end_ns().div_euclid(NS);
        let cap = self.slots.len() as i64;
        if sec > self.head {
            self.head = sec;
        } else if sec <= self.head - cap {
            self.late += 1;
            return;
        }
        let slot = &mut self.slots[sec.rem_euclid(cap) as usize];
        if slot.sec != sec {
            slot.reset(sec);
        }
        let i = s.name as usize;
        if i >= slot.cells.len() {
            slot.cells.resize_with(i + 1, || None);
        }
        let c = slot.cells[i].get_or_insert_with(Box::default);
        c.count += 1;
        c.errors += s.error as u64;
        if let Some(d) = s.dur_ns {
            c.max_ns = c.max_ns.max(d);
            c.sketch.add(d);
        }
        c.self_ns = c.self_ns.saturating_add(s.self_ns.unwrap_or(0));
    }

    /// Merges the seconds `first_sec..=last_sec` per name id.
    pub(crate) fn merge(&self, first_sec: i64, last_sec: i64) -> Vec<Option<Merged>> {
        let mut out: Vec<Option<Merged>> = Vec::new();
        for slot in &self.slots {
            if slot.sec < first_sec || slot.sec > last_sec {
                continue;
            }
            if out.len() < slot.cells.len() {
                out.resize_with(slot.cells.len(), || None);
            }
            for (i, c) in slot.cells.iter().enumerate() {
                let Some(c) = c else { continue };
                let m = out[i].get_or_insert_with(Merged::default);
                m.count += c.count;
                m.errors += c.errors;
                m.self_ns = m.self_ns.saturating_add(c.self_ns);
                m.max_ns = m.max_ns.max(c.max_ns);
                m.sketch.merge(&c.sketch);
            }
        }
        out
    }

    /// Spans counted in the seconds `first_sec..=last_sec`.
    pub fn count(&self, first_sec: i64, last_sec: i64) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.sec >= first_sec && s.sec <= last_sec)
            .flat_map(|s| s.cells.iter().flatten())
            .map(|c| c.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: u32, end_s: f64, dur_ns: u64) -> TailSpan {
        let end = (end_s * 1e9) as i64;
        TailSpan {
            name,
            start_ns: end - dur_ns as i64,
            dur_ns: Some(dur_ns),
            self_ns: Some(dur_ns / 2),
            error: false,
        }
    }

    #[test]
    fn old_seconds_are_overwritten_and_late_spans_counted() {
        let mut r = Ring::new(3);
        r.add(&span(0, 10.5, 100));
        r.add(&span(0, 11.5, 100));
        r.add(&span(0, 12.5, 100));
        assert_eq!(r.count(10, 12), 3);
        r.add(&span(0, 13.5, 100)); // second 10 leaves the ring
        assert_eq!(r.count(10, 13), 3);
        r.add(&span(0, 10.9, 100)); // too old now
        assert_eq!(r.late, 1);
        r.add(&span(1, 11.2, 100)); // late but still in the ring
        assert_eq!(r.count(11, 11), 2);
    }

    #[test]
    fn merge_sums_counts_and_keeps_the_max() {
        let mut r = Ring::new(10);
        for i in 0..100u64 {
            r.add(&span(2, 5.0 + (i % 3) as f64, 1000 + i));
        }
        let m = r.merge(5, 7);
        let m = m[2].as_ref().unwrap();
        assert_eq!(m.count, 100);
        assert_eq!(m.max_ns, 1099);
        assert_eq!(m.self_ns, (1000..1100u64).map(|d| d / 2).sum::<u64>());
        assert!(r.merge(8, 9).iter().all(Option::is_none));
    }
}
