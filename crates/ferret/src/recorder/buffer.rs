//! Finished spans on their way to the writer: the raw record, the per-thread
//! buffer (an asymmetric lock so that `flush()` on one thread can drain
//! the buffers of all others), and the batch handed over the bounded queue.

use ferret_format::{Status, TagValue};
use std::borrow::Cow;
use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Rarely present parts of a span: a status other than ok, and tags.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extra {
    pub status: Status,
    /// Keys are usually literals: `Cow` avoids an allocation per tag.
    pub tags: Vec<(Cow<'static, str>, TagValue)>,
    /// The tags were published for readers of open spans (they must be
    /// forgotten when the span ends).
    pub published: bool,
}

/// A finished span's status and tags, encoded by the recording thread as a
/// block stores them, so that the writer copies bytes instead of following
/// the pointers of [`Extra`] (each a cache miss on the writer's core).
/// Small tails (most) live inline: one allocation, one pointer to follow.
#[derive(Debug)]
pub(crate) enum Sealed {
    Inline {
        flags: u8,
        len: u8,
        buf: [u8; SEALED_INLINE],
    },
    Heap {
        flags: u8,
        bytes: Box<[u8]>,
    },
}

/// Tail bytes kept inline (the box then takes 64 bytes).
const SEALED_INLINE: usize = 54;

impl Sealed {
    /// Encodes `extra` (a status other than ok, and tags).
    pub(crate) fn seal(extra: &Extra) -> Box<Sealed> {
        let mut bytes = Vec::with_capacity(SEALED_INLINE);
        let flags = ferret_format::codec::encode_tail(&extra.status, &extra.tags, &mut bytes);
        Sealed::boxed(flags, bytes)
    }

    /// Boxes an encoded tail: inline when it fits, else on the heap (a
    /// `Vec` moves there without a copy; a borrowed slice is copied).
    pub(crate) fn boxed<B: AsRef<[u8]> + Into<Box<[u8]>>>(flags: u8, bytes: B) -> Box<Sealed> {
        let b = bytes.as_ref();
        Box::new(if b.len() <= SEALED_INLINE {
            let mut buf = [0; SEALED_INLINE];
            buf[..b.len()].copy_from_slice(b);
            Sealed::Inline {
                flags,
                len: b.len() as u8,
                buf,
            }
        } else {
            Sealed::Heap {
                flags,
                bytes: bytes.into(),
            }
        })
    }

    /// Boxes a tail of exactly `len` bytes that `write` writes: into the
    /// inline buffer when it fits, else into a heap slice of that size (no
    /// scratch vector).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn written(flags: u8, len: usize, write: impl FnOnce(&mut [u8])) -> Box<Sealed> {
        if len <= SEALED_INLINE {
            let mut buf = [0; SEALED_INLINE];
            write(&mut buf[..len]);
            Box::new(Sealed::Inline {
                flags,
                len: len as u8,
                buf,
            })
        } else {
            let mut bytes = vec![0; len].into_boxed_slice();
            write(&mut bytes);
            Box::new(Sealed::Heap { flags, bytes })
        }
    }

    /// Boxes the tail that `encode` writes into a thread-local scratch
    /// buffer (returning the flag bits): no allocation but the box itself.
    /// The buffer is taken out of its cell for the call, so a nested call
    /// (or one during thread teardown) finds none and uses a fresh one.
    pub(crate) fn encoded(encode: impl FnOnce(&mut Vec<u8>) -> u8) -> Box<Sealed> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut out = SCRATCH.try_with(|s| s.take()).unwrap_or_default();
        out.clear();
        let flags = encode(&mut out);
        let sealed = Sealed::boxed(flags, out.as_slice());
        let _ = SCRATCH.try_with(|s| s.set(out));
        sealed
    }

    /// The flag bits and the bytes, for [`BlockEncoder::push_encoded`](ferret_format::codec::BlockEncoder).
    #[inline]
    pub(crate) fn tail(&self) -> (u8, &[u8]) {
        match self {
            Sealed::Inline { flags, len, buf } => (*flags, &buf[..*len as usize]),
            Sealed::Heap { flags, bytes } => (*flags, bytes),
        }
    }
}

/// One finished span as the hot path records it: ids, raw clock ticks, a
/// local path id. The writer turns it into the stored form.
#[derive(Debug)]
pub(crate) struct RawSpan {
    pub id: u64,
    pub parent: u64,
    pub trace: u64,
    /// Raw monotonic ticks at start.
    pub start: u64,
    pub dur_ns: u64,
    /// Total duration of direct children (for self time).
    pub child_ns: u64,
    /// Local (process) call-path id.
    pub path: u32,
    /// Local thread index.
    pub thread: u32,
    /// Status and tags, if not plain ok without tags.
    pub extra: Option<Box<Sealed>>,
}

/// A thread's buffer of finished spans.
///
/// Only the owning thread records into it ([`with`](Self::with)); other
/// threads (`flush()`) empty it with [`drain_all`](Self::drain_all). The two
/// sides exclude each other with an asymmetric lock where the OS allows: the
/// owner only stores `busy`, then loads `drain` (no locked instruction on the
/// hot path), and a drainer stores `drain`, then forces a full barrier on
/// every thread of the process with `membarrier(2)` before reading `busy` —
/// so either the drainer sees the owner busy and waits, or the owner sees the
/// drain request and steps aside. Without `membarrier`, both sides take a
/// spin lock (`busy` set by compare-and-swap).
pub(crate) struct ThreadBuf {
    /// Asymmetric mode: the owner is inside `with`. Fallback mode: the lock.
    busy: AtomicBool,
    /// Asymmetric mode: a drainer wants the buffer.
    drain: AtomicBool,
    /// Whether this buffer uses the asymmetric lock.
    asym: bool,
    spans: UnsafeCell<Vec<RawSpan>>,
    /// Raw ticks after which the buffer is handed over even if not full.
    deadline: UnsafeCell<u64>,
    /// Spans this thread skipped by sampling (written by the owning thread only).
    skipped: AtomicU64,
    /// Spans this thread skipped because the writer's queue was filling up
    /// (whole traces shed; written by the owning thread only).
    shed: AtomicU64,
}

// SAFETY: every access to the cells goes through `with` (owner) or
// `drain_all` (others), which exclude each other.
unsafe impl Sync for ThreadBuf {}
unsafe impl Send for ThreadBuf {}

/// Serializes drainers: each sets and clears `drain` flags.
static DRAINERS: Mutex<()> = Mutex::new(());

impl ThreadBuf {
    pub(crate) fn new(deadline: u64) -> ThreadBuf {
        ThreadBuf::with_mode(deadline, membarrier::available())
    }

    pub(crate) fn with_mode(deadline: u64, asym: bool) -> ThreadBuf {
        ThreadBuf {
            busy: AtomicBool::new(false),
            drain: AtomicBool::new(false),
            asym,
            spans: UnsafeCell::new(Vec::new()),
            deadline: UnsafeCell::new(deadline),
            skipped: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Runs `f` with the buffer held. Only the owning thread calls this.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Vec<RawSpan>, &mut u64) -> R) -> R {
        if self.asym {
            self.busy.store(true, Ordering::Relaxed);
            // With the drainer's membarrier, a full fence between the store
            // above and the load below.
            compiler_fence(Ordering::SeqCst);
            if self.drain.load(Ordering::Acquire) {
                self.wait_drainer();
            }
        } else {
            self.lock();
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _r = Release(&self.busy);
        // SAFETY: held until `_r` drops.
        unsafe { f(&mut *self.spans.get(), &mut *self.deadline.get()) }
    }

    /// Owner side, asymmetric mode: a drainer is at work; step aside until
    /// it is done, then take the buffer.
    #[cold]
    #[inline(never)]
    fn wait_drainer(&self) {
        loop {
            self.busy.store(false, Ordering::Release);
            let mut spins = 0u32;
            while self.drain.load(Ordering::Acquire) {
                backoff(&mut spins);
            }
            self.busy.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if !self.drain.load(Ordering::Acquire) {
                return;
            }
        }
    }

    fn lock(&self) {
        let mut spins = 0u32;
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff(&mut spins);
        }
    }

    /// Takes everything buffered in each of `bufs` (from any thread but
    /// their owners, which use `with`). The spans are moved into new
    /// vectors sized to fit; each owner keeps its buffer's allocation, so
    /// that a periodic drain does not make busy threads allocate again.
    pub(crate) fn drain_all(bufs: &[Arc<ThreadBuf>]) -> Vec<Vec<RawSpan>> {
        let _d = DRAINERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut asym = false;
        for b in bufs.iter().filter(|b| b.asym) {
            b.drain.store(true, Ordering::Relaxed);
            asym = true;
        }
        if asym {
            // One barrier for all: after it, every owner either shows busy
            // or will see its drain flag.
            membarrier::barrier();
        }
        let mut out = Vec::with_capacity(bufs.len());
        for b in bufs {
            if b.asym {
                let mut spins = 0u32;
                while b.busy.load(Ordering::Acquire) {
                    backoff(&mut spins);
                }
                // SAFETY: the owner is outside `with` and stays out until
                // `drain` is cleared.
                out.push(take_spans(unsafe { &mut *b.spans.get() }));
                b.drain.store(false, Ordering::Release);
            } else {
                b.lock();
                // SAFETY: the lock is held.
                out.push(take_spans(unsafe { &mut *b.spans.get() }));
                b.busy.store(false, Ordering::Release);
            }
        }
        out
    }

    /// Counts one span skipped by sampling. Only the owning thread calls
    /// this, so a plain load and store suffice (no locked instruction).
    #[inline]
    pub(crate) fn count_skip(&self) {
        let n = self.skipped.load(Ordering::Relaxed);
        self.skipped.store(n + 1, Ordering::Relaxed);
    }

    /// Spans this thread skipped so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Counts one span shed under queue pressure (owning thread only, as
    /// [`count_skip`](Self::count_skip)).
    #[inline]
    pub(crate) fn count_shed(&self) {
        let n = self.shed.load(Ordering::Relaxed);
        self.shed.store(n + 1, Ordering::Relaxed);
    }

    /// Spans this thread shed so far.
    pub(crate) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Takes everything buffered (owning thread only).
    #[cfg(test)]
    pub(crate) fn take(&self) -> Vec<RawSpan> {
        self.with(|v, _| std::mem::take(v))
    }
}

/// Moves the spans out of `v` into a vector of their size, leaving `v`
/// empty with its capacity.
fn take_spans(v: &mut Vec<RawSpan>) -> Vec<RawSpan> {
    let mut out = Vec::with_capacity(v.len());
    out.append(v);
    out
}

/// Spins a little, then yields: the other side may be descheduled.
#[inline]
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Process-wide memory barriers (`membarrier(2)`, private expedited).
mod membarrier {
    #[cfg(target_os = "linux")]
    mod imp {
        use std::sync::OnceLock;

        const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

        fn membarrier(cmd: libc::c_int) -> bool {
            // SAFETY: membarrier takes no pointers.
            unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    cmd,
                    0 as libc::c_uint,
                    0 as libc::c_int,
                ) == 0
            }
        }

        /// Registers the process once; true if expedited barriers work.
        pub(crate) fn available() -> bool {
            static OK: OnceLock<bool> = OnceLock::new();
            *OK.get_or_init(|| {
                std::env::var_os("FERRET_NO_MEMBARRIER").is_none()
                    && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED)
                    && membarrier(CMD_PRIVATE_EXPEDITED)
            })
        }

        pub(crate) fn barrier() {
            if !membarrier(CMD_PRIVATE_EXPEDITED) {
                // Registered at startup, so this does not fail; if it ever
                // did, owners would be unprotected: stop rather than race.
                std::process::abort();
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod imp {
        pub(crate) fn available() -> bool {
            false
        }

        pub(crate) fn barrier() {
            unreachable!("no asymmetric buffers without membarrier")
        }
    }

    pub(crate) use imp::{available, barrier};
}

/// Empties a batch. Unlike `clear`, it does not call the drop of each
/// span's `extra` when none has one (the common case).
pub(crate) fn empty(v: &mut Vec<RawSpan>) {
    if !empty_if_untagged(v) {
        v.clear();
    }
}

/// Empties a batch whose spans own nothing (no `extra`) without a drop
/// call per span; returns false, leaving the batch as it is, otherwise.
pub(crate) fn empty_if_untagged(v: &mut Vec<RawSpan>) -> bool {
    if v.iter().all(|s| s.extra.is_none()) {
        // SAFETY: 0 is within capacity, and the spans own nothing (forgetting
        // them would be safe anyway).
        unsafe { v.set_len(0) };
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn raw(id: u64) -> RawSpan {
        RawSpan {
            id,
            parent: 0,
            trace: id,
            start: 0,
            dur_ns: 0,
            child_ns: 0,
            path: 0,
            thread: 0,
            extra: None,
        }
    }

    /// The owner records while another thread drains: every span comes out
    /// exactly once.
    fn owner_and_drainer(asym: bool) {
        const N: u64 = 200_000;
        let buf = Arc::new(ThreadBuf::with_mode(0, asym));
        let done = Arc::new(AtomicBool::new(false));
        let owner = {
            let (buf, done) = (buf.clone(), done.clone());
            std::thread::spawn(move || {
                let mut own = Vec::new();
                for i in 0..N {
                    let full = buf.with(|v, _| {
                        v.push(raw(i));
                        (v.len() >= 512).then(|| std::mem::take(v))
                    });
                    own.extend(full.into_iter().flatten().map(|s| s.id));
                }
                own.extend(buf.take().into_iter().map(|s| s.id));
                done.store(true, Ordering::Release);
                own
            })
        };
        let mut drained = Vec::new();
        while !done.load(Ordering::Acquire) {
            for v in ThreadBuf::drain_all(std::slice::from_ref(&buf)) {
                drained.extend(v.into_iter().map(|s| s.id));
            }
        }
        let mut all = owner.join().unwrap();
        all.extend(drained);
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    }

    #[test]
    fn drain_races_owner_asymmetric() {
        if membarrier::available() {
            owner_and_drainer(true);
        }
    }

    #[test]
    fn drain_races_owner_spin_lock() {
        owner_and_drainer(false);
    }
}
