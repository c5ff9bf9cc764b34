//! Ferret's own table of the open tracing spans it records, keyed by the
//! tracing span id.
//!
//! `tracing-subscriber`'s extensions would also hold per-span state, but
//! each access costs a slab lookup with a reference count, a lock, and a
//! type-keyed map lookup; the state is boxed on insert and copied in and
//! out. Here every callback costs one hash of the id and one uncontended
//! lock of one of [`SHARDS`] shards, and the state stays in place while the
//! span is open.
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

/// One shard, on its own cache line.
#[repr(align(64))]
struct Shard<T>(Mutex<FxHashMap<u64, T>>);

thread_local! {
    /// Whether this thread holds a shard of some table.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Open spans' state by tracing span id.
pub(super) struct Table<T> {
    shards: Box<[Shard<T>]>,
}

/// A held shard; it clears the thread's mark when dropped.
struct Held<'a, T>(MutexGuard<'a, FxHashMap<u64, T>>);

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
                .map(|_| Shard(Mutex::new(FxHashMap::default())))
                .collect(),
        }
    }

    /// The shard of `id`, locked; `None` if this thread holds one already
    /// (a callback nested in user code run under a shard's lock).
    fn shard(&self, id: u64) -> Option<Held<'_, T>> {
        if HOLDING.try_with(|h| h.replace(true)).unwrap_or(true) {
            return None;
        }
        // Fibonacci hashing: span ids differ in low and high bits alike.
        let i = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize;
        let m = self.shards[i]
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
        s.0.get_mut(&id).map(f)
    }

    /// Takes the state of span `id` out of the table.
    pub(super) fn remove(&self, id: u64) -> Option<T> {
        self.shard(id)?.0.remove(&id)
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
