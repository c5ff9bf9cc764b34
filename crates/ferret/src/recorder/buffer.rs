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

/// Something that can write a finished span's status and tags, as a block
/// stores them, at the end of its batch's [`tails`](Batch::tails): the
/// flag bits as one byte, then the bytes after the span's fixed fields; or
/// nothing at all for a plain ok span without tags. Called at most once,
/// on the recording thread, so that the writer copies bytes instead of
/// following pointers (each a cache miss on the writer's core).
pub(crate) trait WriteTail {
    /// Appends the tail to `out`, or nothing.
    fn write_tail(&mut self, out: &mut Vec<u8>);
}

/// No status, no tags.
#[cfg(test)]
pub(crate) struct NoTail;

#[cfg(test)]
impl WriteTail for NoTail {
    #[inline(always)]
    fn write_tail(&mut self, _out: &mut Vec<u8>) {}
}

/// Appends the tail of `status` and `tags` to `out` as [`WriteTail`]
/// lays it out (the flag byte, then the bytes), or nothing for a plain ok
/// span without tags.
pub(crate) fn append_tail(
    status: &Status,
    tags: &[(impl AsRef<str>, TagValue)],
    out: &mut Vec<u8>,
) {
    let at = out.len();
    out.push(0);
    let flags = ferret_format::codec::encode_tail(status, tags, out);
    if flags == 0 && out.len() == at + 1 {
        out.truncate(at);
    } else {
        out[at] = flags;
    }
}

impl WriteTail for Extra {
    fn write_tail(&mut self, out: &mut Vec<u8>) {
        append_tail(&self.status, &self.tags, out);
    }
}

impl WriteTail for Option<Box<Extra>> {
    #[inline]
    fn write_tail(&mut self, out: &mut Vec<u8>) {
        if let Some(e) = self {
            e.write_tail(out);
        }
    }
}

/// Where a span's tail lies in its batch's [`tails`](Batch::tails): the
/// flag byte at `off`, `len` bytes in all (0: no tail).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TailRef {
    off: u32,
    len: u32,
}

/// Tail bytes after which a thread hands its buffer over even if it holds
/// fewer spans than a batch (so that huge tags do not grow it without
/// bound); also what a recycled batch keeps of a tail buffer that grew
/// past twice this. A batch of 1,024 spans with a tower-http request's
/// tags takes about 100 KB; the pool of recycled batches then holds at
/// most 64 × 256 KB of tail room.
pub(crate) const TAILS_HANDOVER: usize = 128 << 10;

/// Finished spans on their way to the writer, with their tails' bytes
/// (one buffer for all: no allocation per span).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub spans: Vec<RawSpan>,
    /// The tails of the spans that have one, in the order they came (see
    /// [`WriteTail`]).
    pub tails: Vec<u8>,
}

impl Batch {
    /// An empty batch with room for `n` spans.
    pub(crate) fn with_capacity(n: usize) -> Batch {
        Batch {
            spans: Vec::with_capacity(n),
            tails: Vec::new(),
        }
    }

    /// A batch of one span.
    pub(crate) fn one(span: RawSpan, tail: &mut impl WriteTail) -> Batch {
        let mut b = Batch::with_capacity(1);
        b.push(span, tail);
        b
    }

    /// Spans held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when it holds no span.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Empties it, keeping its room (spans are plain data: no drop per span).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.spans.clear();
        self.tails.clear();
    }

    /// Adds `span` with the tail `tail` writes (its `tail` field is set here).
    #[inline]
    pub(crate) fn push(&mut self, mut span: RawSpan, tail: &mut impl WriteTail) {
        let off = self.tails.len();
        tail.write_tail(&mut self.tails);
        let len = self.tails.len() - off;
        span.tail = match (u32::try_from(off), u32::try_from(len)) {
            _ if len == 0 => TailRef::default(),
            (Ok(off), Ok(len)) => TailRef { off, len },
            // Past 4 GB of tails (never, with TAILS_HANDOVER): recorded
            // without its tags rather than with another span's.
            _ => {
                self.tails.truncate(off);
                TailRef::default()
            }
        };
        self.spans.push(span);
    }

    /// The flag bits and tail bytes of `span`, one of this batch's spans.
    #[inline]
    pub(crate) fn tail(&self, span: &RawSpan) -> (u8, &[u8]) {
        let TailRef { off, len } = span.tail;
        match self.tails.get(off as usize..off as usize + len as usize) {
            Some([flags, bytes @ ..]) => (*flags, bytes),
            _ => (0, &[]),
        }
    }

    /// Moves the spans (and tails) out into a batch of their size, leaving
    /// this one empty with its capacity.
    pub(crate) fn take_exact(&mut self) -> Batch {
        let mut out = Batch {
            spans: Vec::with_capacity(self.spans.len()),
            tails: Vec::with_capacity(self.tails.len()),
        };
        out.append(self);
        out
    }

    /// Moves every span of `from` (and its tail) to the end of this batch.
    pub(crate) fn append(&mut self, from: &mut Batch) {
        let base = self.tails.len();
        self.tails.append(&mut from.tails);
        let start = self.spans.len();
        self.spans.append(&mut from.spans);
        if base != 0 {
            for s in &mut self.spans[start..] {
                if s.tail.len != 0 {
                    // Past 4 GB (never in practice: both buffers are
                    // bounded by TAILS_HANDOVER): without its tags.
                    s.tail = u32::try_from(base + s.tail.off as usize)
                        .map_or(TailRef::default(), |off| TailRef { off, ..s.tail });
                }
            }
        }
    }
}

/// One finished span as the hot path records it: ids, raw clock ticks, a
/// local path id. The writer turns it into the stored form.
#[derive(Debug, Clone, Copy)]
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
    /// Its status and tags in its batch, if not plain ok without tags.
    pub tail: TailRef,
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
    spans: UnsafeCell<Batch>,
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
            spans: UnsafeCell::new(Batch::default()),
            deadline: UnsafeCell::new(deadline),
            skipped: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Runs `f` with the buffer held. Only the owning thread calls this.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Batch, &mut u64) -> R) -> R {
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
    pub(crate) fn drain_all(bufs: &[Arc<ThreadBuf>]) -> Vec<Batch> {
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
                out.push(unsafe { &mut *b.spans.get() }.take_exact());
                b.drain.store(false, Ordering::Release);
            } else {
                b.lock();
                // SAFETY: the lock is held.
                out.push(unsafe { &mut *b.spans.get() }.take_exact());
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
    pub(crate) fn take(&self) -> Batch {
        self.with(|v, _| std::mem::take(v))
    }
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
            tail: TailRef::default(),
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
                        v.push(raw(i), &mut NoTail);
                        (v.len() >= 512).then(|| std::mem::take(v))
                    });
                    own.extend(full.into_iter().flat_map(|b| b.spans).map(|s| s.id));
                }
                own.extend(buf.take().spans.into_iter().map(|s| s.id));
                done.store(true, Ordering::Release);
                own
            })
        };
        let mut drained = Vec::new();
        while !done.load(Ordering::Acquire) {
            for v in ThreadBuf::drain_all(std::slice::from_ref(&buf)) {
                drained.extend(v.spans.into_iter().map(|s| s.id));
            }
        }
        let mut all = owner.join().unwrap();
        all.extend(drained);
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    }

    /// Writes `bytes` as a tail (flag byte first), or nothing when empty.
    struct Bytes(&'static [u8]);

    impl WriteTail for Bytes {
        fn write_tail(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.0);
        }
    }

    #[test]
    fn each_span_keeps_its_own_tail_through_pushes_and_appends() {
        let tails: [&'static [u8]; 4] = [b"", b"\x40abc", b"\x01", b"\x42xy"];
        let mut a = Batch::default();
        let mut b = Batch::default();
        for i in 0..40u64 {
            let t = tails[i as usize % 4];
            let into = if i < 25 { &mut a } else { &mut b };
            into.push(raw(i), &mut Bytes(t));
        }
        // Appending rebases the second batch's tails after the first's.
        a.append(&mut b);
        assert!(b.is_empty() && b.tails.is_empty());
        assert_eq!(a.len(), 40);
        for (i, s) in a.spans.iter().enumerate() {
            assert_eq!(s.id, i as u64);
            let t = tails[i % 4];
            let want = match t {
                [] => (0, &[][..]),
                [f, rest @ ..] => (*f, rest),
            };
            assert_eq!(a.tail(s), want, "span {i}");
        }
        a.clear();
        assert!(a.is_empty() && a.tails.is_empty());
    }

    #[test]
    fn extra_without_status_or_tags_writes_no_tail() {
        let mut out = vec![7];
        Extra::default().write_tail(&mut out);
        assert_eq!(out, [7]);
        let mut e = Extra {
            status: Status::Error,
            ..Extra::default()
        };
        e.write_tail(&mut out);
        assert_eq!(out, [7, 1], "the flag byte alone: error, no tags");
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
