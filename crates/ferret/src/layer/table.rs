//! Ferret's own table of the open tracing spans it records, keyed by the
//! tracing span id.
//!
//! `tracing-subscriber`'s extensions would also hold per-span state, but
//! each access costs a slab lookup with a reference count, a lock, and a
//! type-keyed map lookup; the state is boxed on insert and copied in and
//! out. Here every callback costs one uncontended lock of one of
//! [`SHARDS`] shards and an index into its vector by the id's slot
//! address (a hash map lookup only for ids that do not fit there), and the
//! state stays in place while the span is open.
//!
//! Spans made on one thread go to one shard (see [`shard_of`]): each thread
//! then mostly locks shards no other thread touches, and the shards' cache
//! lines stay in its core's cache. With the shard picked by a hash of the
//! whole id, two threads recording at once traded lines on almost every
//! callback, and FerretLayer cost 50–65% more CPU per span on each of two
//! threads than on one (`examples/layer_threads.rs`; 27–28% since).
//!
//! A shard's lock is held while field values are formatted, which runs
//! user code (`Debug` impls). Tracing activity inside that code would come
//! back here on the same thread; rather than deadlock, a thread that holds
//! a shard skips the table: such nested spans are not recorded.

use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards: enough that threads working on different spans rarely meet.
const SHARDS: usize = 64;

/// Bits 38 to 50 of `id − 1` in a span id of `tracing_subscriber`'s
/// `Registry`: the id is a `sharded_slab` key plus one, and these bits
/// are the index of the slab shard, which is the thread that created the
/// span (38 address bits below them, the generation above them, with the
/// slab's default configuration).
const THREAD_SHIFT: u32 = 38;
const THREAD_MASK: u64 = (1 << 13) - 1;

/// The thread bits of a registry's span id (see [`THREAD_SHIFT`]).
fn thread_of(id: u64) -> u64 {
    (id.wrapping_sub(1) >> THREAD_SHIFT) & THREAD_MASK
}

/// The shard of span `id`: by the thread bits of a registry's id, so that
/// a thread's spans share a shard. Any id has one shard, so the table is
/// right whatever the ids mean; under another id scheme (ids below
/// 2^38), every span would share shard 0: right, but one lock for all.
fn shard_of(id: u64) -> usize {
    // Fibonacci hashing: spreads consecutive thread numbers.
    (thread_of(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize
}

/// Slot addresses below this are kept in a shard's vector. An entry takes
/// 16 bytes, and a vector grows to the highest address its threads have
/// used (a thread's slab reuses freed slots first, so that is about the
/// most spans it had open at once): 1 MB per shard at most.
const DENSE_MAX: usize = 1 << 16;

/// The slot address of a registry id (its low 38 bits): small and dense,
/// since a thread's slab reuses freed slots first.
fn addr_of(id: u64) -> usize {
    (id.wrapping_sub(1) & ((1 << THREAD_SHIFT) - 1)) as usize
}

/// One shard's spans: by slot address in a vector (an index and a compare,
/// where a hash map hashed and probed), and in a map for the ids whose
/// slot holds another id (threads that share the shard) or whose address
/// is too large (other id schemes). Each id is in one place at most.
struct ShardMap<T> {
    dense: Vec<Option<(u64, T)>>,
    overflow: FxHashMap<u64, T>,
}

impl<T> ShardMap<T> {
    fn insert(&mut self, id: u64, v: T) {
        let a = addr_of(id);
        if a < DENSE_MAX {
            if a >= self.dense.len() {
                let len = (a + 1).next_power_of_two().clamp(64, DENSE_MAX);
                self.dense.resize_with(len, || None);
            }
            match &mut self.dense[a] {
                Some((other, _)) if *other != id => {}
                slot => {
                    *slot = Some((id, v));
                    if !self.overflow.is_empty() {
                        self.overflow.remove(&id);
                    }
                    return;
                }
            }
        }
        self.overflow.insert(id, v);
    }

    #[inline]
    fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        if let Some(Some((other, v))) = self.dense.get_mut(addr_of(id)) {
            if *other == id {
                return Some(v);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get_mut(&id)
    }

    fn remove(&mut self, id: u64) -> Option<T> {
        if let Some(slot) = self.dense.get_mut(addr_of(id)) {
            if matches!(slot, Some((other, _)) if *other == id) {
                return slot.take().map(|(_, v)| v);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.remove(&id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.dense.iter().flatten().count() + self.overflow.len()
    }
}

/// One shard, on its own cache line.
#[repr(align(64))]
struct Shard<T>(Mutex<ShardMap<T>>);

thread_local! {
    /// Whether this thread holds a shard of some table.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Open spans' state by tracing span id.
pub(super) struct Table<T> {
    shards: Box<[Shard<T>]>,
}

/// A held shard; it clears the thread's mark when dropped.
struct Held<'a, T>(MutexGuard<'a, ShardMap<T>>);

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        let _ = HOLDING.try_with(|h| h.set(false));
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub(super) fn new() -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| {
                    Shard(Mutex::new(ShardMap {
                        dense: Vec::new(),
                        overflow: FxHashMap::default(),
                    }))
                })
                .collect(),
        }
    }

    /// The shard of `id`, locked; `None` if this thread holds one already
    /// (a callback nested in user code run under a shard's lock).
    fn shard(&self, id: u64) -> Option<Held<'_, T>> {
        if HOLDING.try_with(|h| h.replace(true)).unwrap_or(true) {
            return None;
        }
        let m = self.shards[shard_of(id)]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(Held(m))
    }

    /// Stores `v` as the state of span `id`; false if it was not stored
    /// (nested in user code, see the module docs).
    pub(super) fn insert(&self, id: u64, v: T) -> bool {
        match self.shard(id) {
            Some(mut s) => {
                s.0.insert(id, v);
                true
            }
            None => false,
        }
    }

    /// Calls `f` on the state of span `id`, if there is one, with its
    /// shard held.
    #[inline]
    pub(super) fn with<R>(&self, id: u64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut s = self.shard(id)?;
        s.0.get_mut(id).map(f)
    }

    /// Takes the state of span `id` out of the table.
    pub(super) fn remove(&self, id: u64) -> Option<T> {
        self.shard(id)?.0.remove(id)
    }

    /// How many spans the table holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_update_remove() {
        let t = Table::new();
        for id in 1..=1000u64 {
            assert!(t.insert(id << 20 | id, id));
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.with(7 << 20 | 7, |v| std::mem::replace(v, 70)), Some(7));
        assert_eq!(t.remove(7 << 20 | 7), Some(70));
        assert_eq!(t.remove(7 << 20 | 7), None);
        assert_eq!(t.with(7 << 20 | 7, |v| *v), None);
        assert_eq!(t.len(), 999);
    }

    /// The shard map against a hash map, under inserts, replacements,
    /// lookups and removals of ids that share slot addresses (two threads
    /// on one shard, several generations of a slot), ids with addresses
    /// beyond the vector, and small sequential ids.
    #[test]
    fn shard_map_matches_a_hash_map() {
        let mut m = ShardMap {
            dense: Vec::new(),
            overflow: FxHashMap::default(),
        };
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..200_000u64 {
            let r = next();
            let addr = match r % 4 {
                0 => r >> 8 & 0xF,
                1 => r >> 8 & 0x3FF,
                2 => DENSE_MAX as u64 - 2 + (r >> 8 & 3),
                _ => r >> 8 & ((1 << THREAD_SHIFT) - 1),
            };
            let id = ((r >> 40 & 3) << 51 | (r >> 44 & 1) << THREAD_SHIFT | addr) + 1;
            match next() % 5 {
                0 | 1 => {
                    m.insert(id, step);
                    model.insert(id, step);
                }
                2 => assert_eq!(m.remove(id), model.remove(&id), "remove {id:x}"),
                _ => assert_eq!(
                    m.get_mut(id).copied(),
                    model.get(&id).copied(),
                    "get {id:x}"
                ),
            }
        }
        assert_eq!(m.len(), model.len());
        for (id, v) in model {
            assert_eq!(m.remove(id), Some(v));
        }
        assert_eq!(m.len(), 0);
        assert!(m.dense.len() <= DENSE_MAX);
    }

    /// Registry ids made on one thread share a shard, whatever their slot
    /// and generation; eight threads have eight shards.
    #[test]
    fn shards_follow_the_creating_thread() {
        let id = |thread: u64, slot: u64, generation: u64| {
            (generation << 51 | thread << THREAD_SHIFT | slot) + 1
        };
        for thread in 1..=8u64 {
            let s = shard_of(id(thread, 0, 0));
            for slot in [1, 31, 32, 5000, (1 << 38) - 1] {
                for generation in [0, 1, 4000] {
                    assert_eq!(shard_of(id(thread, slot, generation)), s);
                }
            }
        }
        let threads: std::collections::HashSet<usize> =
            (1..=8u64).map(|t| shard_of(id(t, 0, 0))).collect();
        assert_eq!(threads.len(), 8, "eight threads, eight shards");
        // Thread 0 too, and ids without thread bits: one shard.
        assert!((0..1000u64).all(|slot| shard_of(id(0, slot, 3)) == shard_of(1)));
    }

    /// The registry's ids carry the creating thread where [`shard_of`]
    /// reads it: spans made on one thread have one shard, and spans made
    /// on two spawned threads differ in those bits.
    #[test]
    fn registry_ids_carry_the_thread() {
        let registry = std::sync::Arc::new(tracing_subscriber::registry());
        let spans_on_a_thread = || {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let d = tracing::Dispatch::from(registry);
                tracing::dispatcher::with_default(&d, || {
                    let spans: Vec<tracing::Span> =
                        (0..100).map(|i| tracing::info_span!("s", i)).collect();
                    let ids: Vec<u64> = spans.iter().map(|s| s.id().unwrap().into_u64()).collect();
                    std::mem::forget(spans);
                    ids
                })
            })
            .join()
            .unwrap()
        };
        let (a, b) = (spans_on_a_thread(), spans_on_a_thread());
        for ids in [&a, &b] {
            assert!(ids.iter().all(|&id| thread_of(id) == thread_of(ids[0])));
            assert!(ids.iter().all(|&id| shard_of(id) == shard_of(ids[0])));
        }
        assert_ne!(thread_of(a[0]), thread_of(b[0]), "{:x} {:x}", a[0], b[0]);
    }

    /// A use of the table nested in a callback that holds a shard is
    /// skipped instead of deadlocking, whichever shard it wants; the
    /// thread can use the table again afterwards.
    #[test]
    fn nested_use_is_skipped() {
        let t = Table::new();
        for id in 1..=200u64 {
            t.insert(id, id);
        }
        let nested = t.with(1, |_| {
            (1..=200u64).all(|id| t.with(id, |v| *v).is_none() && !t.insert(1000 + id, 0))
                && t.remove(2).is_none()
        });
        assert_eq!(nested, Some(true));
        assert_eq!(t.with(2, |v| *v), Some(2));
        assert_eq!(t.len(), 200);
    }
}
