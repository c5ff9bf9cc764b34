//! [`BusyFloorLayer`]: the least a `tracing` layer that records spans
//! with their busy time can do, to measure FerretLayer against what no
//! such layer can go below (`examples/layer_cost.rs`, and the service
//! benchmark's `busy-floor` mode).

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Start, entered-since and busy time of an open span (raw clock).
type Times = [u64; 3];

/// Shards of the table, by the thread bits of registry ids.
const SHARDS: usize = 64;

/// Finished spans a thread keeps before it drops them (a stand-in for
/// handing them to a writer).
const BUFFER: usize = 4096;

/// The cheapest layer that records spans with their busy time: a sharded
/// table of each open span's start, entered-since and busy time, a clock
/// read in every callback, and a 32-byte record per closed span (id,
/// start, end, busy) into a thread-local buffer that is dropped when
/// full. No names, fields, parents or nesting, and nothing is written:
/// whatever FerretLayer does costs at least this.
pub struct BusyFloorLayer {
    open: Vec<Mutex<FxHashMap<u64, Times>>>,
}

impl Default for BusyFloorLayer {
    fn default() -> Self {
        BusyFloorLayer {
            open: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl BusyFloorLayer {
    fn shard(&self, id: &Id) -> MutexGuard<'_, FxHashMap<u64, Times>> {
        let i = (id.into_u64() >> 38) as usize % SHARDS;
        self.open[i].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

thread_local! {
    /// Finished spans: id, start, end, busy.
    static DONE: RefCell<Vec<[u64; 4]>> = const { RefCell::new(Vec::new()) };
}

/// The raw clock FerretLayer reads too (the TSC where it is usable).
fn now() -> u64 {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new).raw()
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for BusyFloorLayer {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        self.shard(id).insert(id.into_u64(), [now(), 0, 0]);
    }

    fn on_enter(&self, id: &Id, _: Context<'_, S>) {
        if let Some(t) = self.shard(id).get_mut(&id.into_u64()) {
            t[1] = now();
        }
    }

    fn on_exit(&self, id: &Id, _: Context<'_, S>) {
        if let Some(t) = self.shard(id).get_mut(&id.into_u64()) {
            t[2] += now().saturating_sub(t[1]);
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let Some(t) = self.shard(&id).remove(&id.into_u64()) else {
            return;
        };
        let end = now();
        let _ = DONE.try_with(|d| {
            let mut d = d.borrow_mut();
            if d.len() == BUFFER {
                std::hint::black_box(&*d);
                d.clear();
            }
            d.push([id.into_u64(), t[0], end, t[2]]);
        });
    }
}
