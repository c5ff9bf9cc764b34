//! A recording thread's open spans, published for other threads to read.
//!
//! The owning thread keeps its real stack (`Local::stack`) to itself; it
//! mirrors each push into a fixed array of atomic slots here, and each pop
//! into a length. The monitor thread reads the mirror without stopping the
//! owner, seqlock style:
//!
//! - owner, push at depth `k`: `gen += 1` (relaxed), release fence, slot `k`
//!   (relaxed stores), `len = k + 1` (release);
//! - owner, pop: `len = k` (release) only — the slots below stay as they were;
//! - reader: `g1 = gen` (acquire), `n = len` (acquire), slots `0..n`
//!   (relaxed), acquire fence, `g2 = gen`; the read is good if `g1 == g2`.
//!
//! A slot the reader sees through `len` was completely written before that
//! `len` store (release/acquire); a push that starts while the reader reads
//! bumps `gen` before it writes anything (release fence paired with the
//! reader's acquire fence), so a torn slot is always detected. Pops need no
//! bump: the slots below the new top do not change, and the reader then
//! returns the stack as it was when it loaded `len`.
//!
//! On x86-64 every one of these operations is a plain `mov`: a push costs
//! the owner one counter store, five slot stores and a length store; a pop,
//! one store. Nothing waits for anything.

use ferret_format::TagValue;
use std::borrow::Cow;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Tags of open spans, by span id.
type TagTable = Vec<(u64, Vec<(Cow<'static, str>, TagValue)>)>;

/// Open spans mirrored per thread; deeper ones are counted, not shown.
pub(crate) const DEPTH: usize = 64;

/// `flags` bit: the frame belongs to a skipped (sampled out, shed) trace.
pub(crate) const SKIPPED: u64 = 1 << 32;
/// `flags` bit: pushed by entering a handle (`SpanHandle::enter`, a polled
/// `in_span` future, a tracing span): the span is not this thread's own.
pub(crate) const ENTERED: u64 = 1 << 33;
/// `flags` bit: the slot's `parent` and `trace` are written. A guard's
/// frame leaves them out (two stores fewer on the hot path): its parent is
/// the frame below it, and its trace that frame's (or itself, at the root).
const EXPLICIT: u64 = 1 << 34;

#[derive(Default)]
struct Slot {
    id: AtomicU64,
    parent: AtomicU64,
    trace: AtomicU64,
    /// Raw clock ticks at start.
    start: AtomicU64,
    /// Local path id in the low 32 bits, flags above.
    path_flags: AtomicU64,
}

/// One open span as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFrame {
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    pub start: u64,
    pub path: u32,
    pub entered: bool,
}

/// What the owner writes for one frame.
#[derive(Clone, Copy)]
pub(crate) struct Pushed {
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    pub start: u64,
    pub path: u32,
    pub flags: u64,
}

/// The published stack of one thread.
pub(crate) struct LiveStack {
    /// The thread's index in its profiler (`ferret_threads.idx`).
    pub thread: u32,
    gen: AtomicU64,
    len: AtomicUsize,
    /// Inline, so that a push reaches its slot without another pointer.
    slots: [Slot; DEPTH],
    /// Tags set on this thread's open guards (`SpanGuard::tag`): copied
    /// here under a lock, off the span hot path (spans without tags never
    /// touch it).
    tags: Mutex<TagTable>,
}

impl LiveStack {
    pub(crate) fn new(thread: u32) -> LiveStack {
        LiveStack {
            thread,
            gen: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            slots: std::array::from_fn(|_| Slot::default()),
            tags: Mutex::new(Vec::new()),
        }
    }

    /// Owner: span `id` now has these tags.
    pub(crate) fn publish_tags(&self, id: u64, tags: &[(Cow<'static, str>, TagValue)]) {
        let mut t = super::lock(&self.tags);
        match t.iter_mut().find(|(i, _)| *i == id) {
            Some(e) => e.1 = tags.to_vec(),
            None => t.push((id, tags.to_vec())),
        }
    }

    /// Owner: span `id` ended.
    pub(crate) fn forget_tags(&self, id: u64) {
        let mut t = super::lock(&self.tags);
        if let Some(pos) = t.iter().position(|(i, _)| *i == id) {
            t.swap_remove(pos);
        }
    }

    /// Any thread: the published tags.
    pub(crate) fn tags(&self) -> TagTable {
        super::lock(&self.tags).clone()
    }

    /// Owner: the frame at depth `pos` was removed (an out-of-order end):
    /// the frames above move down one slot.
    pub(crate) fn remove(&self, pos: usize, len_before: usize) {
        let top = len_before.min(DEPTH);
        // The frames that move down keep their parent and trace, written
        // out: the frame below them changes.
        let raw: Vec<RawSlot> = self.slots[..top]
            .iter()
            .map(|s| RawSlot {
                id: s.id.load(Ordering::Relaxed),
                parent: s.parent.load(Ordering::Relaxed),
                trace: s.trace.load(Ordering::Relaxed),
                start: s.start.load(Ordering::Relaxed),
                path_flags: s.path_flags.load(Ordering::Relaxed),
            })
            .collect();
        let res = resolve(&raw);
        let g = self.gen.load(Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for j in pos..top.saturating_sub(1) {
            let (s, r, f) = (&self.slots[j], &raw[j + 1], &res[j + 1].frame);
            s.id.store(r.id, Ordering::Relaxed);
            s.parent.store(f.parent, Ordering::Relaxed);
            s.trace.store(f.trace, Ordering::Relaxed);
            s.start.store(r.start, Ordering::Relaxed);
            s.path_flags
                .store(r.path_flags | EXPLICIT, Ordering::Relaxed);
        }
        if len_before > DEPTH {
            // The frame that would move into the last slot is not mirrored.
            self.slots[DEPTH - 1]
                .path_flags
                .store(SKIPPED, Ordering::Relaxed);
        }
        self.len
            .store(len_before.saturating_sub(1), Ordering::Release);
    }

    /// Owner: a frame pushed at depth `k` (the stack's length before).
    /// The parent and trace of a frame that is not `ENTERED` are not
    /// stored: they follow from the frame below.
    #[inline(always)]
    pub(crate) fn push(&self, k: usize, f: Pushed) {
        if let Some(s) = self.slots.get(k) {
            let g = self.gen.load(Ordering::Relaxed);
            self.gen.store(g.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            s.id.store(f.id, Ordering::Relaxed);
            s.start.store(f.start, Ordering::Relaxed);
            let mut flags = f.flags;
            if flags & ENTERED != 0 {
                s.parent.store(f.parent, Ordering::Relaxed);
                s.trace.store(f.trace, Ordering::Relaxed);
                flags |= EXPLICIT;
            }
            s.path_flags.store(f.path as u64 | flags, Ordering::Relaxed);
        }
        self.len.store(k + 1, Ordering::Release);
    }

    /// Owner: the stack is now `k` frames deep (after pops).
    #[inline(always)]
    pub(crate) fn truncate(&self, k: usize) {
        self.len.store(k, Ordering::Release);
    }

    /// Any thread: the open frames, outermost first, and the true depth
    /// (more than the frames returned when deeper than [`DEPTH`]). `None`
    /// when the owner kept changing its stack during every attempt.
    pub(crate) fn read(&self, out: &mut Vec<OpenFrame>) -> Option<usize> {
        let mut raw = Vec::with_capacity(8);
        for attempt in 0..200u32 {
            raw.clear();
            let g1 = self.gen.load(Ordering::Acquire);
            let n = self.len.load(Ordering::Acquire);
            for s in self.slots.iter().take(n) {
                raw.push(RawSlot {
                    id: s.id.load(Ordering::Relaxed),
                    parent: s.parent.load(Ordering::Relaxed),
                    trace: s.trace.load(Ordering::Relaxed),
                    start: s.start.load(Ordering::Relaxed),
                    path_flags: s.path_flags.load(Ordering::Relaxed),
                });
            }
            fence(Ordering::Acquire);
            if self.gen.load(Ordering::Relaxed) == g1 {
                out.clear();
                out.extend(
                    resolve(&raw)
                        .into_iter()
                        .filter(|f| !f.skipped)
                        .map(|f| f.frame),
                );
                return Some(n);
            }
            if attempt > 16 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        out.clear();
        None
    }
}

/// A slot as loaded.
#[derive(Clone, Copy)]
struct RawSlot {
    id: u64,
    parent: u64,
    trace: u64,
    start: u64,
    path_flags: u64,
}

struct Resolved {
    frame: OpenFrame,
    skipped: bool,
}

/// Fills in the parent and trace that guards' slots leave out.
fn resolve(raw: &[RawSlot]) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = Vec::with_capacity(raw.len());
    for r in raw {
        let (parent, trace) = if r.path_flags & EXPLICIT != 0 {
            (r.parent, r.trace)
        } else {
            match out.last() {
                Some(p) => (p.frame.id, p.frame.trace),
                None => (0, r.id),
            }
        };
        out.push(Resolved {
            frame: OpenFrame {
                id: r.id,
                parent,
                trace,
                start: r.start,
                path: r.path_flags as u32,
                entered: r.path_flags & ENTERED != 0,
            },
            skipped: r.path_flags & SKIPPED != 0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn frame(id: u64, parent: u64) -> Pushed {
        Pushed {
            id,
            parent,
            trace: 7,
            start: id * 10,
            path: id as u32,
            flags: 0,
        }
    }

    #[test]
    fn push_pop_read() {
        let s = LiveStack::new(3);
        let mut out = Vec::new();
        assert_eq!(s.read(&mut out), Some(0));
        s.push(0, frame(1, 0));
        s.push(1, frame(2, 1));
        assert_eq!(s.read(&mut out), Some(2));
        assert_eq!(out.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2]);
        // A guard's parent and trace follow from the frame below.
        assert_eq!((out[0].parent, out[0].trace), (0, 1));
        assert_eq!((out[1].parent, out[1].trace), (1, 1));
        s.truncate(1);
        s.push(
            1,
            Pushed {
                flags: SKIPPED,
                ..frame(0, 0)
            },
        );
        s.push(
            2,
            Pushed {
                flags: ENTERED,
                ..frame(9, 5)
            },
        );
        assert_eq!(s.read(&mut out), Some(3));
        assert_eq!(out.len(), 2, "skipped frames are not shown");
        assert!(out[1].entered);
        assert_eq!(out[1].start, 90);
        assert_eq!((out[1].parent, out[1].trace), (5, 7));
    }

    /// An out-of-order end: the frames above move down and keep their
    /// parent and trace.
    #[test]
    fn remove_keeps_parents() {
        let s = LiveStack::new(0);
        for k in 0..4u64 {
            s.push(k as usize, frame(k + 1, k));
        }
        s.remove(1, 4);
        let mut out = Vec::new();
        assert_eq!(s.read(&mut out), Some(3));
        let v: Vec<_> = out.iter().map(|f| (f.id, f.parent, f.trace)).collect();
        assert_eq!(v, [(1, 0, 1), (3, 2, 1), (4, 3, 1)]);
    }

    #[test]
    fn deeper_than_the_mirror() {
        let s = LiveStack::new(0);
        for k in 0..DEPTH + 10 {
            s.push(k, frame(k as u64 + 1, k as u64));
        }
        let mut out = Vec::new();
        assert_eq!(s.read(&mut out), Some(DEPTH + 10));
        assert_eq!(out.len(), DEPTH);
    }

    /// A reader racing an owner that pushes and pops all the time never
    /// sees a torn frame or a stack that did not exist: each frame's
    /// fields agree with its id, and each frame is its predecessor's child.
    #[test]
    fn reader_never_sees_a_torn_stack() {
        let s = Arc::new(LiveStack::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let owner = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = 1u64;
                let mut stack: Vec<u64> = Vec::new();
                let mut x = 12345u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if stack.len() < 6 && (!x.is_multiple_of(3) || stack.is_empty()) {
                        let parent = stack.last().copied().unwrap_or(0);
                        s.push(stack.len(), frame(next, parent));
                        stack.push(next);
                        next += 1;
                    } else {
                        stack.pop();
                        s.truncate(stack.len());
                    }
                }
            })
        };
        let mut out = Vec::new();
        let mut good = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline {
            if s.read(&mut out).is_some() {
                good += 1;
                let mut parent = 0;
                for f in &out {
                    assert_eq!(f.parent, parent, "{out:?}");
                    assert_eq!(f.start, f.id * 10);
                    assert_eq!(f.path, f.id as u32);
                    parent = f.id;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        owner.join().unwrap();
        assert!(good > 0);
    }
}
