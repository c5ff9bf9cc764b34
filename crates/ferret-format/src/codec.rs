//! The block codec: many spans per SQLite row, row-wise varint deltas.
//!
//! Layout (docs/FORMAT.md has the full description): a version byte, the
//! span count, then per span a flag byte followed by zigzag/LEB128 varints:
//! id delta, parent delta, trace delta, path id, start delta, duration,
//! children's duration, thread index, custom status text and tags, each
//! present only when its flag says so.

use crate::types::{Status, TagValue, Tags};

/// Version byte of the block encoding [`BlockEncoder`] writes: 2, columnar.
pub const BLOCK_VERSION: u8 = 2;

/// Version byte of the row-wise block encoding of files written before
/// the columnar one (still read; written only by [`BlockEncoderV1`]).
pub const BLOCK_VERSION_1: u8 = 1;

const ST_MASK: u8 = 0b11;
const ST_ERROR: u8 = 1;
const ST_CUSTOM: u8 = 2;
const F_PARENT: u8 = 1 << 2;
const F_TRACE: u8 = 1 << 3;
const F_CHILD: u8 = 1 << 4;
const F_THREAD: u8 = 1 << 5;
const F_TAGS: u8 = 1 << 6;

/// One span as stored: what the encoder takes and the decoder gives back
/// (with tags decoded only on request): the fixed [`SpanHead`] plus the
/// status and tags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockSpan {
    /// The fixed fields.
    pub head: SpanHead,
    /// Status.
    pub status: Status,
    /// Tags.
    pub tags: Tags,
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The status and tag bits of a span's flags.
fn tail_flags(status: &Status, tags: &[(impl AsRef<str>, TagValue)]) -> u8 {
    let mut flags = match status {
        Status::Ok => 0,
        Status::Error => ST_ERROR,
        Status::Custom(_) => ST_CUSTOM,
    };
    if !tags.is_empty() {
        flags |= F_TAGS;
    }
    flags
}

/// Writes what follows a span's fixed fields: a custom status, then tags.
fn write_tail(out: &mut Vec<u8>, status: &Status, tags: &[(impl AsRef<str>, TagValue)]) {
    if let Status::Custom(s) = status {
        put_str(out, s);
    }
    if !tags.is_empty() {
        put_varint(out, tags.len() as u64);
        for (k, v) in tags {
            put_str(out, k.as_ref());
            match v {
                TagValue::Str(s) => {
                    out.push(0);
                    put_str(out, s);
                }
                TagValue::I64(i) => {
                    out.push(1);
                    put_varint(out, zigzag(*i));
                }
                TagValue::U64(u) => {
                    out.push(2);
                    put_varint(out, *u);
                }
                TagValue::F64(f) => {
                    out.push(3);
                    out.extend_from_slice(&f.to_le_bytes());
                }
                TagValue::Bool(false) => out.push(4),
                TagValue::Bool(true) => out.push(5),
                TagValue::Null => out.push(6),
                TagValue::Json(s) => {
                    out.push(7);
                    put_str(out, s);
                }
            }
        }
    }
}

/// Encodes a span's status and tags as a block stores them: the flag bits
/// and the bytes after the fixed fields (appended to `out`).
pub fn encode_tail(status: &Status, tags: &[(impl AsRef<str>, TagValue)], out: &mut Vec<u8>) -> u8 {
    write_tail(out, status, tags);
    tail_flags(status, tags)
}

/// Room kept at the front of an encoder's buffer for the block's header
/// (the version byte and the count, a varint of at most 10 bytes), so
/// that [`BlockEncoder::block`] needs no second buffer.
const HEADER_ROOM: usize = 11;

/// The most bytes a span's flag byte and fixed fields take (7 varints).
const MAX_HEAD: usize = 1 + 7 * 10;

/// Writes `v` as a LEB128 varint at `p`, returning the byte after it.
///
/// # Safety
/// `p` must be valid for writing 10 bytes.
#[inline(always)]
unsafe fn put_varint_raw(mut p: *mut u8, mut v: u64) -> *mut u8 {
    // SAFETY: a u64 takes at most 10 bytes, which the caller provides.
    unsafe {
        while v >= 0x80 {
            p.write((v as u8) | 0x80);
            p = p.add(1);
            v >>= 7;
        }
        p.write(v as u8);
        p.add(1)
    }
}

/// Encodes spans into one row-wise block of version 1, the encoding of files
/// written before the columnar one ([`BlockEncoder`]): kept so that tests
/// can write old blocks and check that they still read. Same methods as
/// [`BlockEncoder`].
#[doc(hidden)]
pub struct BlockEncoderV1 {
    out: Vec<u8>,
    count: u64,
    prev_id: u64,
    prev_trace: u64,
    prev_start: i64,
    prev_thread: u32,
}

impl Default for BlockEncoderV1 {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockEncoderV1 {
    /// A new, empty block.
    pub fn new() -> BlockEncoderV1 {
        let mut out = Vec::with_capacity(64 * 1024);
        out.resize(HEADER_ROOM, 0);
        BlockEncoderV1 {
            out,
            count: 0,
            prev_id: 0,
            prev_trace: 0,
            prev_start: 0,
            prev_thread: 0,
        }
    }

    /// Empties the encoder for a new block, keeping its buffer.
    pub fn clear(&mut self) {
        self.out.truncate(HEADER_ROOM);
        self.count = 0;
        self.prev_id = 0;
        self.prev_trace = 0;
        self.prev_start = 0;
        self.prev_thread = 0;
    }

    /// Spans added so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when no span was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one span: its fixed fields, status and tags (`head.error`
    /// is ignored: the status decides).
    pub fn push(&mut self, head: &SpanHead, status: &Status, tags: &[(impl AsRef<str>, TagValue)]) {
        self.head(head, tail_flags(status, tags));
        write_tail(&mut self.out, status, tags);
    }

    /// Appends one [`BlockSpan`].
    pub fn push_span(&mut self, span: &BlockSpan) {
        self.push(&span.head, &span.status, &span.tags);
    }

    /// Appends one span whose status and tags were already encoded by
    /// [`encode_tail`] (as the recorder does on the recording thread):
    /// `tail` is its flag bits and bytes.
    #[inline]
    pub fn push_encoded(&mut self, head: &SpanHead, tail: (u8, &[u8])) {
        self.head(head, tail.0);
        // Most spans have no tail: no call to copy nothing.
        if !tail.1.is_empty() {
            self.out.extend_from_slice(tail.1);
        }
    }

    /// Writes a span's flags and fixed fields; `flags` holds the status and
    /// tag bits.
    #[inline]
    fn head(&mut self, h: &SpanHead, mut flags: u8) {
        let &SpanHead {
            id,
            parent,
            trace,
            path,
            start_ns,
            dur_ns,
            child_ns,
            thread,
            error: _,
        } = h;
        if parent != 0 {
            flags |= F_PARENT;
        }
        if trace != self.prev_trace {
            flags |= F_TRACE;
        }
        if child_ns != 0 {
            flags |= F_CHILD;
        }
        if thread != self.prev_thread {
            flags |= F_THREAD;
        }
        // The fixed part (at most 1 + 7 varints of 10 bytes) is written
        // straight into the buffer after one capacity check per span: no
        // bounds check per byte, no copy from a stack buffer.
        self.out.reserve(MAX_HEAD);
        let len = self.out.len();
        // SAFETY: `reserve` made room for MAX_HEAD bytes after `len`, and
        // at most MAX_HEAD are written (a flag byte and at most 7 varints
        // of at most 10 bytes each); `set_len` covers only written bytes.
        unsafe {
            let start = self.out.as_mut_ptr().add(len);
            start.write(flags);
            let mut p = start.add(1);
            p = put_varint_raw(p, zigzag(id.wrapping_sub(self.prev_id) as i64));
            if parent != 0 {
                p = put_varint_raw(p, zigzag(id.wrapping_sub(parent) as i64));
            }
            if trace != self.prev_trace {
                p = put_varint_raw(p, zigzag(trace.wrapping_sub(self.prev_trace) as i64));
            }
            p = put_varint_raw(p, path as u64);
            p = put_varint_raw(p, zigzag(start_ns.wrapping_sub(self.prev_start)));
            p = put_varint_raw(p, dur_ns);
            if child_ns != 0 {
                p = put_varint_raw(p, child_ns);
            }
            if thread != self.prev_thread {
                p = put_varint_raw(p, thread as u64);
            }
            self.out.set_len(len + p.offset_from(start) as usize);
        }
        self.prev_id = id;
        self.prev_trace = trace;
        self.prev_start = start_ns;
        self.prev_thread = thread;
        self.count += 1;
    }

    /// The finished block: version byte, count, span bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let start = self.put_header();
        self.out.drain(..start);
        self.out
    }

    /// The block so far, finished (version byte, count, span bytes), read
    /// in place: the encoder keeps its buffer, for [`clear`](Self::clear)
    /// and the next block.
    pub fn block(&mut self) -> &[u8] {
        let start = self.put_header();
        &self.out[start..]
    }

    /// Writes the header just before the span bytes; returns where it starts.
    fn put_header(&mut self) -> usize {
        let mut h = [0u8; HEADER_ROOM];
        h[0] = BLOCK_VERSION_1;
        // SAFETY: `h` has HEADER_ROOM - 1 = 10 bytes after the version
        // byte, room for any u64 varint; the end pointer stays within `h`.
        let n = unsafe {
            let base = h.as_mut_ptr();
            put_varint_raw(base.add(1), self.count).offset_from(base) as usize
        };
        let start = HEADER_ROOM - n;
        self.out[start..HEADER_ROOM].copy_from_slice(&h[..n]);
        start
    }
}

/// The column sections of a version-2 block that follow the flags, in
/// their order: id deltas, parents, trace deltas, paths, start deltas,
/// durations, children's totals, threads. The tails section comes last.
const COLS: usize = 8;
const C_ID: usize = 0;
const C_PARENT: usize = 1;
const C_TRACE: usize = 2;
const C_PATH: usize = 3;
const C_START: usize = 4;
const C_DUR: usize = 5;
const C_CHILD: usize = 6;
const C_THREAD: usize = 7;

/// The most bytes a block's header takes (the version byte, the count and,
/// in version 2, the eight section lengths, varints of at most 10 bytes):
/// the first bytes to read of a block to learn, with
/// [`head_prefix_len`], how much of it a reader of heads needs.
pub const BLOCK_HEADER_MAX: usize = 1 + 10 + COLS * 10;

/// Spans an encoder's columns take after one capacity check: each column
/// then has room for this many varints of the longest length.
const ROOM_SPANS: usize = 64;

/// Appends `v` as a LEB128 varint to `col` without a capacity check.
///
/// # Safety
/// `col` must have room for 10 more bytes.
#[inline(always)]
unsafe fn put_col(col: &mut Vec<u8>, v: u64) {
    // SAFETY: the caller provides room for a varint of the longest
    // length; `set_len` covers the bytes just written.
    unsafe {
        let len = col.len();
        let base = col.as_mut_ptr();
        let end = put_varint_raw(base.add(len), v);
        col.set_len(end.offset_from(base) as usize);
    }
}

/// Encodes spans into one columnar block (version 2, see docs/FORMAT.md):
/// each fixed field of every span in its own section, so that a reader
/// decodes only the columns it needs. Spans should be sorted by start for
/// the smallest output, but any order round-trips.
///
/// An encoder can be reused: [`block`](Self::block) gives the finished
/// block (assembled in a buffer the encoder keeps), and
/// [`clear`](Self::clear) starts the next one; the columns keep their
/// buffers, so a reused encoder allocates nothing in steady state.
pub struct BlockEncoder {
    flags: Vec<u8>,
    cols: [Vec<u8>; COLS],
    tails: Vec<u8>,
    out: Vec<u8>,
    /// Spans every column has room for without a capacity check.
    room: usize,
    prev_id: u64,
    prev_trace: u64,
    prev_start: i64,
    prev_thread: u32,
}

impl Default for BlockEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockEncoder {
    /// A new, empty block.
    pub fn new() -> BlockEncoder {
        BlockEncoder {
            flags: Vec::new(),
            cols: Default::default(),
            tails: Vec::new(),
            out: Vec::new(),
            room: 0,
            prev_id: 0,
            prev_trace: 0,
            prev_start: 0,
            prev_thread: 0,
        }
    }

    /// Empties the encoder for a new block, keeping its buffers.
    pub fn clear(&mut self) {
        // Room only grows when the columns shrink.
        self.flags.clear();
        for c in &mut self.cols {
            c.clear();
        }
        self.tails.clear();
        self.prev_id = 0;
        self.prev_trace = 0;
        self.prev_start = 0;
        self.prev_thread = 0;
    }

    /// Spans added so far.
    pub fn len(&self) -> u64 {
        self.flags.len() as u64
    }

    /// True when no span was added.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Appends one span: its fixed fields, status and tags (`head.error`
    /// is ignored: the status decides).
    pub fn push(&mut self, head: &SpanHead, status: &Status, tags: &[(impl AsRef<str>, TagValue)]) {
        self.head(head, tail_flags(status, tags));
        write_tail(&mut self.tails, status, tags);
    }

    /// Appends one [`BlockSpan`].
    pub fn push_span(&mut self, span: &BlockSpan) {
        self.push(&span.head, &span.status, &span.tags);
    }

    /// Appends one span whose status and tags were already encoded by
    /// [`encode_tail`] (as the recorder does on the recording thread):
    /// `tail` is its flag bits and bytes.
    #[inline]
    pub fn push_encoded(&mut self, head: &SpanHead, tail: (u8, &[u8])) {
        self.head(head, tail.0);
        // Most spans have no tail: no call to copy nothing.
        if !tail.1.is_empty() {
            self.tails.extend_from_slice(tail.1);
        }
    }

    /// Makes room in every column for [`ROOM_SPANS`] more spans.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        self.flags.reserve(ROOM_SPANS);
        for c in &mut self.cols {
            c.reserve(ROOM_SPANS * 10);
        }
        self.room = ROOM_SPANS;
    }

    /// Writes a span's flags and fixed fields into their columns; `flags`
    /// holds the status and tag bits.
    #[inline]
    fn head(&mut self, h: &SpanHead, mut flags: u8) {
        let &SpanHead {
            id,
            parent,
            trace,
            path,
            start_ns,
            dur_ns,
            child_ns,
            thread,
            error: _,
        } = h;
        if parent != 0 {
            flags |= F_PARENT;
        }
        if trace != self.prev_trace {
            flags |= F_TRACE;
        }
        if child_ns != 0 {
            flags |= F_CHILD;
        }
        if thread != self.prev_thread {
            flags |= F_THREAD;
        }
        if self.room == 0 {
            self.make_room();
        }
        self.room -= 1;
        // SAFETY: `room` was at least 1: every column has room for a
        // varint of the longest length, the flags for one byte.
        unsafe {
            let n = self.flags.len();
            self.flags.as_mut_ptr().add(n).write(flags);
            self.flags.set_len(n + 1);
            let c = &mut self.cols;
            put_col(&mut c[C_ID], zigzag(id.wrapping_sub(self.prev_id) as i64));
            if parent != 0 {
                put_col(&mut c[C_PARENT], zigzag(id.wrapping_sub(parent) as i64));
            }
            if trace != self.prev_trace {
                put_col(
                    &mut c[C_TRACE],
                    zigzag(trace.wrapping_sub(self.prev_trace) as i64),
                );
            }
            put_col(&mut c[C_PATH], path as u64);
            put_col(
                &mut c[C_START],
                zigzag(start_ns.wrapping_sub(self.prev_start)),
            );
            put_col(&mut c[C_DUR], dur_ns);
            if child_ns != 0 {
                put_col(&mut c[C_CHILD], child_ns);
            }
            if thread != self.prev_thread {
                put_col(&mut c[C_THREAD], thread as u64);
            }
        }
        self.prev_id = id;
        self.prev_trace = trace;
        self.prev_start = start_ns;
        self.prev_thread = thread;
    }

    /// The finished block: version byte, count, section lengths, flags,
    /// columns, tails.
    pub fn finish(mut self) -> Vec<u8> {
        self.block();
        self.out
    }

    /// The block so far, finished, read in place: the encoder keeps its
    /// buffers, for [`clear`](Self::clear) and the next block.
    pub fn block(&mut self) -> &[u8] {
        let out = &mut self.out;
        out.clear();
        let body =
            self.flags.len() + self.cols.iter().map(Vec::len).sum::<usize>() + self.tails.len();
        out.reserve(1 + 10 * (1 + COLS) + body);
        out.push(BLOCK_VERSION);
        put_varint(out, self.flags.len() as u64);
        for c in &self.cols {
            put_varint(out, c.len() as u64);
        }
        out.extend_from_slice(&self.flags);
        for c in &self.cols {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&self.tails);
        out
    }
}

/// Which fixed fields of a span a reader uses (see
/// [`BlockDecoder::for_each_head_of`]): a set of bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeadFields(u16);

impl HeadFields {
    /// No field.
    pub const NONE: HeadFields = HeadFields(0);
    /// [`SpanHead::id`].
    pub const ID: HeadFields = HeadFields(1);
    /// [`SpanHead::parent`].
    pub const PARENT: HeadFields = HeadFields(1 << 1);
    /// [`SpanHead::trace`].
    pub const TRACE: HeadFields = HeadFields(1 << 2);
    /// [`SpanHead::path`].
    pub const PATH: HeadFields = HeadFields(1 << 3);
    /// [`SpanHead::start_ns`].
    pub const START: HeadFields = HeadFields(1 << 4);
    /// [`SpanHead::dur_ns`].
    pub const DURATION: HeadFields = HeadFields(1 << 5);
    /// [`SpanHead::child_ns`].
    pub const CHILDREN: HeadFields = HeadFields(1 << 6);
    /// [`SpanHead::thread`].
    pub const THREAD: HeadFields = HeadFields(1 << 7);
    /// [`SpanHead::error`].
    pub const ERROR: HeadFields = HeadFields(1 << 8);
    /// Every field.
    pub const ALL: HeadFields = HeadFields((1 << 9) - 1);

    /// The fields of both sets.
    pub const fn union(self, other: HeadFields) -> HeadFields {
        HeadFields(self.0 | other.0)
    }

    /// True when every field of `other` is in `self`.
    pub const fn contains(self, other: HeadFields) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any field of `other` is in `self`.
    pub const fn intersects(self, other: HeadFields) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for HeadFields {
    type Output = HeadFields;
    fn bitor(self, other: HeadFields) -> HeadFields {
        self.union(other)
    }
}

/// The fields a version-2 block decodes only for a reader that asks for
/// them (the others cost nothing there).
const FULL_ONLY: HeadFields = HeadFields(
    HeadFields::ID.0 | HeadFields::PARENT.0 | HeadFields::TRACE.0 | HeadFields::THREAD.0,
);

/// Why a block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlock;

impl std::fmt::Display for CorruptBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("corrupt span block")
    }
}

/// The LEB128 value at `data[pos..]` and its length: one to three bytes
/// from one little-endian word, longer ones byte by byte; `None` when it
/// runs past the end or does not fit in 64 bits (the checks of
/// `BlockDecoder::varint`).
#[inline(always)]
fn varint_at(data: &[u8], pos: usize) -> Option<(u64, usize)> {
    if let Some(w) = data.get(pos..pos + 8) {
        let w = u64::from_le_bytes(w.try_into().ok()?);
        if w & 0x80 == 0 {
            return Some((w & 0x7f, 1));
        }
        if w & 0x8000 == 0 {
            return Some(((w & 0x7f) | ((w >> 1) & 0x3f80), 2));
        }
        if w & 0x80_0000 == 0 {
            return Some(((w & 0x7f) | ((w >> 1) & 0x3f80) | ((w >> 2) & 0x1f_c000), 3));
        }
    }
    varint_long(data, pos)
}

/// Any LEB128 value at `data[pos..]` and its length, byte by byte.
#[inline(never)]
fn varint_long(data: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let start = pos;
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *data.get(pos)?;
        pos += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some((v, pos - start));
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Bytes of a block a span's window holds: load offsets are masked to
/// `0..128`, and each load takes 8 bytes. A span's fixed fields are its
/// flags and eight varints (at most ten bytes each, five for the path and
/// the thread): the last starts at most `1 + 6 × 10 + 5 = 66` bytes in.
/// (A mask to `0..64` was one bit short: a span whose earlier fields were
/// long enough read its thread from the wrong bytes.)
const WINDOW: usize = 128 + 8;

/// The [`WINDOW`] bytes of a block from a span's start. Load offsets are
/// masked to `0..128` (a no-op: a span's varints start at most 66 bytes in),
/// which lets the compiler drop the bounds check of every 8-byte load.
struct Window<'a> {
    bytes: &'a [u8; WINDOW],
}

impl<'a> Window<'a> {
    #[inline(always)]
    fn new(w: &'a [u8]) -> Window<'a> {
        Window {
            bytes: w.try_into().expect("a window's length"),
        }
    }

    /// The LEB128 value at offset `o` and its length, if it takes at most
    /// eight bytes (longer ones: `None`, for the checked reader).
    #[inline(always)]
    fn varint(&self, o: usize) -> Option<(u64, usize)> {
        let o = o & 127;
        let w: &[u8; 8] = self.bytes[o..o + 8].try_into().expect("8 bytes");
        word_varint(u64::from_le_bytes(*w))
    }
}

/// The LEB128 value that starts at the low byte of `w` (eight bytes of a
/// block, little-endian) and its length, if it takes at most eight bytes
/// (longer ones: `None`, for the checked reader).
#[inline(always)]
fn word_varint(w: u64) -> Option<(u64, usize)> {
    if w & 0x80 == 0 {
        return Some((w & 0x7f, 1));
    }
    if w & 0x8000 == 0 {
        return Some(((w & 0x7f) | ((w >> 1) & 0x3f80), 2));
    }
    // The first byte without a continuation bit ends the value.
    let stops = !w & 0x8080_8080_8080_8080;
    if stops == 0 {
        return None;
    }
    let len = (stops.trailing_zeros() as usize >> 3) + 1;
    // Keep the value's bytes, drop their continuation bits, then pack
    // the 7-bit groups pairwise: 2 × 7, 2 × 14, 2 × 28 bits.
    let x = w & (stops ^ (stops - 1)) & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    let x = (x & 0x0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
    Some((x, len))
}

/// The LEB128 value at `data[pos..]` and its length, with one 8-byte load
/// for values of up to eight bytes where eight bytes are left (`fast_end`
/// is `data.len().saturating_sub(7)`: `pos < fast_end` means `pos + 8 <=
/// data.len()`); `None` when it runs past the end or does not fit in 64
/// bits. One- to three-byte values (most of a column's) take no loop and
/// no bit count.
#[inline(always)]
fn varint_word_at(data: &[u8], pos: usize, fast_end: usize) -> Option<(u64, usize)> {
    debug_assert_eq!(fast_end, data.len().saturating_sub(7));
    if pos < fast_end {
        // SAFETY: `pos + 8 <= data.len()`.
        let w = u64::from_le(unsafe { data.as_ptr().add(pos).cast::<u64>().read_unaligned() });
        if w & 0x80 == 0 {
            return Some((w & 0x7f, 1));
        }
        if w & 0x8000 == 0 {
            return Some(((w & 0x7f) | ((w >> 1) & 0x3f80), 2));
        }
        if w & 0x80_0000 == 0 {
            return Some(((w & 0x7f) | ((w >> 1) & 0x3f80) | ((w >> 2) & 0x1f_c000), 3));
        }
        if let Some(r) = word_varint(w) {
            return Some(r);
        }
    }
    varint_long(data, pos)
}

/// A cursor over a block's bytes for [`BlockDecoder::for_each_head`]: the
/// same checks as the decoder's own reads (a value that does not fit, a
/// read past the end), with a word at a time where eight bytes are left.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A LEB128 value.
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        let (v, len) = varint_at(self.data, self.pos)?;
        self.pos += len;
        Some(v)
    }

    #[inline(always)]
    fn skip(&mut self, n: u64) -> Option<()> {
        let end = self.pos.checked_add(usize::try_from(n).ok()?)?;
        if end > self.data.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Skips what follows a span's fixed fields: a custom status text and
    /// tags (as `BlockDecoder::tail` without outputs).
    #[inline(always)]
    fn skip_tail(&mut self, flags: u8) -> Option<()> {
        let st = flags & ST_MASK;
        if st == ST_CUSTOM {
            let n = self.varint()?;
            self.skip(n)?;
        } else if st > ST_CUSTOM {
            return None;
        }
        if flags & F_TAGS != 0 {
            self.skip_tags()?;
        }
        Some(())
    }

    #[inline(always)]
    fn skip_tags(&mut self) -> Option<()> {
        let n = self.varint()?;
        for _ in 0..n {
            let key = self.varint()?;
            self.skip(key)?;
            match self.byte()? {
                0 | 7 => {
                    let n = self.varint()?;
                    self.skip(n)?;
                }
                1 | 2 => {
                    self.varint()?;
                }
                3 => self.skip(8)?,
                4..=6 => {}
                _ => return None,
            }
        }
        Some(())
    }
}

/// The continuation bits of eight bytes of a column.
const TOP_BITS: u64 = 0x8080_8080_8080_8080;
/// [`TOP_BITS`] of eight bytes that are four 2-byte values.
const PAIR_BITS: u64 = 0x0080_0080_0080_0080;

/// Reads `out.len() = n` values from the varints of `data[at..end]`,
/// which they must fill exactly, each through `conv` (`None`: corrupt).
/// Values are read with 8-byte loads that may look past `end` (into the
/// next section): a value that runs past it leaves the cursor past `end`,
/// which the final check catches.
///
/// Runs of short values go eight bytes at a time: eight bytes within the
/// section without a continuation bit are eight 1-byte values (a path
/// column), and eight bytes with one on every other byte are four 2-byte
/// values (most durations and start deltas). What they decode, and where
/// the cursor ends, is what the value-by-value reads give: a word that is
/// neither, or one that would reach past `end` or past the `n`th value,
/// takes the one-value read.
#[inline(always)]
fn read_dense<T>(
    data: &[u8],
    (at, end): (usize, usize),
    n: usize,
    out: &mut Vec<T>,
    mut conv: impl FnMut(u64) -> Option<T>,
) -> Option<()> {
    out.clear();
    out.reserve(n);
    let mut pos = at;
    let fast_end = data.len().saturating_sub(7);
    // `end <= data.len()` (`decode_columns` checks that the columns it
    // reads end within `data`), so a word at `pos < word_end` lies within
    // the section.
    debug_assert!(end <= data.len());
    let word_end = end.saturating_sub(7);
    let slots = &mut out.spare_capacity_mut()[..n];
    let mut i = 0;
    while i < n {
        if pos < word_end {
            // SAFETY: `pos + 8 <= end <= data.len()`.
            let w = u64::from_le(unsafe { data.as_ptr().add(pos).cast::<u64>().read_unaligned() });
            let top = w & TOP_BITS;
            if top == PAIR_BITS && n - i >= 4 {
                // The four values at once, one per 16-bit lane.
                let v = (w & 0x007f_007f_007f_007f) | ((w >> 1) & 0x3f80_3f80_3f80_3f80);
                for (k, slot) in slots[i..i + 4].iter_mut().enumerate() {
                    slot.write(conv((v >> (16 * k)) as u16 as u64)?);
                }
                i += 4;
                pos += 8;
                continue;
            }
            if top == 0 && n - i >= 8 {
                for (k, slot) in slots[i..i + 8].iter_mut().enumerate() {
                    slot.write(conv((w >> (8 * k)) & 0x7f)?);
                }
                i += 8;
                pos += 8;
                continue;
            }
        }
        let (v, len) = varint_word_at(data, pos, fast_end)?;
        pos += len;
        slots[i].write(conv(v)?);
        i += 1;
    }
    if pos != end {
        return None;
    }
    // SAFETY: the loop wrote the first `n` slots.
    unsafe { out.set_len(n) };
    Some(())
}

/// Like [`read_dense`] for a column with a value only for the spans
/// whose flags have `bit`: `conv` gets the span's index and its value
/// (`None` for a span without).
#[inline(always)]
fn read_sparse<T>(
    data: &[u8],
    (at, end): (usize, usize),
    flags: &[u8],
    bit: u8,
    out: &mut Vec<T>,
    mut conv: impl FnMut(usize, Option<u64>) -> Option<T>,
) -> Option<()> {
    out.clear();
    out.reserve(flags.len());
    let mut pos = at;
    let fast_end = data.len().saturating_sub(7);
    let slots = &mut out.spare_capacity_mut()[..flags.len()];
    for (i, (slot, &f)) in slots.iter_mut().zip(flags).enumerate() {
        let v = if f & bit != 0 {
            let (v, len) = varint_word_at(data, pos, fast_end)?;
            pos += len;
            Some(v)
        } else {
            None
        };
        slot.write(conv(i, v)?);
    }
    if pos != end {
        return None;
    }
    // SAFETY: the loop wrote the first `flags.len()` slots.
    unsafe { out.set_len(flags.len()) };
    Some(())
}

/// Decodes the head columns of a version-2 block that `want` names into
/// `c` (see [`BlockDecoder::decode_v2`]); `None` when one is damaged.
fn decode_columns(data: &[u8], sec: &Sections, want: Ready, c: &mut Columns) -> Option<()> {
    // A prefix of the block (see `BlockDecoder::of_prefix`) must hold the
    // columns read: `read_dense` loads words up to a section's end
    // unchecked.
    if sec.col[want.end_section()] > data.len() {
        return None;
    }
    let n = sec.count;
    let flags = data.get(sec.flags..sec.flags + n)?;
    let col = |k: usize| (sec.col[k], sec.col[k + 1]);
    // A status of 3 and the unused top bit are damage.
    if flags
        .iter()
        .fold(0u8, |a, &f| a | (f & (f << 1) & 2) | (f & 0x80))
        != 0
    {
        return None;
    }
    read_dense(data, col(C_PATH), n, &mut c.path, |v| u32::try_from(v).ok())?;
    read_dense(data, col(C_DUR), n, &mut c.dur, Some)?;
    read_sparse(data, col(C_CHILD), flags, F_CHILD, &mut c.child, |_, v| {
        Some(v.unwrap_or(0))
    })?;
    if want == Ready::NoStart {
        c.start.clear();
        c.start.resize(n, 0);
        return Some(());
    }
    let mut prev_start = 0i64;
    read_dense(data, col(C_START), n, &mut c.start, |v| {
        prev_start = prev_start.wrapping_add(unzigzag(v));
        Some(prev_start)
    })?;
    if want != Ready::Full {
        return Some(());
    }
    let mut prev_id = 0u64;
    read_dense(data, col(C_ID), n, &mut c.id, |v| {
        prev_id = prev_id.wrapping_add(unzigzag(v) as u64);
        Some(prev_id)
    })?;
    let ids = &c.id[..];
    read_sparse(
        data,
        col(C_PARENT),
        flags,
        F_PARENT,
        &mut c.parent,
        |i, v| Some(v.map_or(0, |v| ids[i].wrapping_sub(unzigzag(v) as u64))),
    )?;
    let mut prev_trace = 0u64;
    read_sparse(data, col(C_TRACE), flags, F_TRACE, &mut c.trace, |_, v| {
        if let Some(v) = v {
            prev_trace = prev_trace.wrapping_add(unzigzag(v) as u64);
        }
        Some(prev_trace)
    })?;
    let mut prev_thread = 0u32;
    read_sparse(
        data,
        col(C_THREAD),
        flags,
        F_THREAD,
        &mut c.thread,
        |_, v| {
            if let Some(v) = v {
                prev_thread = u32::try_from(v).ok()?;
            }
            Some(prev_thread)
        },
    )?;
    Some(())
}

/// Where the sections of a version-2 block start.
#[derive(Debug, Clone, Copy)]
struct Sections {
    /// Spans in the block.
    count: usize,
    /// The flags (`count` bytes).
    flags: usize,
    /// `col[k]..col[k + 1]` is column `k` (`C_ID` ...); `col[COLS]` is
    /// where the tails start (they end with the block).
    col: [usize; COLS + 1],
}

/// The fixed fields of a version-2 block's spans, one array per field,
/// decoded by [`BlockDecoder`] and kept between blocks (see
/// [`BlockDecoder::with_columns`]) so that decoding a block allocates
/// nothing once the arrays have grown to a block's size.
#[derive(Debug, Default)]
pub struct Columns {
    /// What the arrays hold for the current block.
    ready: Ready,
    id: Vec<u64>,
    parent: Vec<u64>,
    trace: Vec<u64>,
    path: Vec<u32>,
    start: Vec<i64>,
    dur: Vec<u64>,
    child: Vec<u64>,
    thread: Vec<u32>,
}

/// The narrow head fields of a block's spans, one array per field, all of
/// the same length (see [`BlockDecoder::head_columns`]).
#[derive(Debug, Clone, Copy)]
pub struct HeadColumns<'a> {
    flags: &'a [u8],
    /// [`SpanHead::path`] of each span.
    pub path: &'a [u32],
    /// [`SpanHead::start_ns`] of each span (0 unless asked for).
    pub start: &'a [i64],
    /// [`SpanHead::dur_ns`] of each span.
    pub dur: &'a [u64],
    /// [`SpanHead::child_ns`] of each span.
    pub child: &'a [u64],
}

impl HeadColumns<'_> {
    /// Spans.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True without spans.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// [`SpanHead::error`] of span `i`.
    #[inline(always)]
    pub fn is_error(&self, i: usize) -> bool {
        self.flags[i] & ST_MASK != 0
    }

    /// The statuses' bytes, one per span: [`SpanHead::error`] of span `i`
    /// is [`HeadColumns::error_of`] of byte `i`.
    #[inline(always)]
    pub fn status_bytes(&self) -> &[u8] {
        self.flags
    }

    /// [`SpanHead::error`] of a span whose status byte is `b` (see
    /// [`HeadColumns::status_bytes`]).
    #[inline(always)]
    pub fn error_of(b: u8) -> bool {
        b & ST_MASK != 0
    }

    /// Span `i` as [`BlockDecoder::for_each_head_of`] gives it (id,
    /// parent, trace and thread 0).
    #[inline(always)]
    pub fn head(&self, i: usize) -> SpanHead {
        SpanHead::narrow(
            self.path[i],
            self.start[i],
            self.dur[i],
            self.child[i],
            self.flags[i] & ST_MASK != 0,
        )
    }
}

/// Which arrays of [`Columns`] hold the current block's values.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Ready {
    /// None.
    #[default]
    No,
    /// Paths, durations and children's totals; starts are 0.
    NoStart,
    /// Paths, starts, durations and children's totals.
    Narrow,
    /// Every field.
    Full,
}

impl Ready {
    /// The columns a reader of `fields` decodes.
    fn of(fields: HeadFields) -> Ready {
        if fields.intersects(FULL_ONLY) {
            Ready::Full
        } else if fields.contains(HeadFields::START) {
            Ready::Narrow
        } else {
            Ready::NoStart
        }
    }

    /// The section after the last column that [`decode_columns`] reads
    /// for `self`: its start is where those columns end.
    fn end_section(self) -> usize {
        match self {
            Ready::Full => COLS,
            _ => C_CHILD + 1,
        }
    }
}

/// How many leading bytes of a block of `block_len` bytes a reader of the
/// heads' `fields` needs ([`BlockDecoder::of_prefix`]), from its first
/// `head` bytes (at least [`BLOCK_HEADER_MAX`] of them, or the whole
/// block): a version-2 block's header, flags and the columns those fields
/// decode (never its tails), a version-1 block whole. An error when the
/// header does not decode or its sections do not fit in `block_len` (the
/// decoder then refuses the block).
pub fn head_prefix_len(
    head: &[u8],
    block_len: usize,
    fields: HeadFields,
) -> Result<usize, CorruptBlock> {
    let d = BlockDecoder::start(head, block_len, false, Columns::default())?;
    Ok(d.v2.map_or(block_len, |sec| sec.col[Ready::of(fields).end_section()]))
}

/// Decodes a block span by span, without allocating for spans without
/// tags, or (the fast path of statistics) in one loop over the block with
/// [`for_each_head_of`](Self::for_each_head_of). Reads both block
/// versions: the columnar one [`BlockEncoder`] writes (2) and the row-wise
/// one of older files (1).
///
/// Damage: a block whose header is inconsistent (a version-2 block whose
/// sections do not fit in it) is refused by [`new`](Self::new). In a
/// version-1 block, a span that does not decode ends the block with an
/// error, after the spans before it. A version-2 block checks the head
/// columns a read needs as a whole, before its first span: a value that
/// runs past its section, a column that does not fill its section exactly,
/// a path or thread that does not fit in 32 bits or a bad status gives the
/// error without any span. Its tails section (status texts and tags) is
/// read span by span by readers of statuses and tags only, and a tail that
/// does not decode ends the block there, as in version 1; readers of heads
/// alone never read it.
pub struct BlockDecoder<D> {
    data: D,
    /// Version 1: the cursor. Version 2: where the tail of span
    /// `tail_next` starts.
    pos: usize,
    remaining: u64,
    prev_id: u64,
    prev_trace: u64,
    prev_start: i64,
    prev_thread: u32,
    with_tags: bool,
    /// Version 2: the block's sections.
    v2: Option<Sections>,
    /// Version 2: the decoded head columns.
    cols: Columns,
    /// Version 2: the next span.
    next: usize,
    /// Version 2: the span whose tail starts at `pos`.
    tail_next: usize,
}

impl<D: AsRef<[u8]>> BlockDecoder<D> {
    /// Starts decoding; `with_tags: false` skips tag bytes without decoding them.
    pub fn new(data: D, with_tags: bool) -> Result<BlockDecoder<D>, CorruptBlock> {
        Self::with_columns(data, with_tags, Columns::default())
    }

    /// Like [`new`](Self::new), reusing the arrays of another block's
    /// decoder (from [`into_parts`](Self::into_parts)): a version-2 block
    /// then decodes without allocating.
    pub fn with_columns(
        data: D,
        with_tags: bool,
        cols: Columns,
    ) -> Result<BlockDecoder<D>, CorruptBlock> {
        let block_len = data.as_ref().len();
        Self::start(data, block_len, with_tags, cols)
    }

    /// Like [`with_columns`](Self::with_columns) without tags, for the
    /// first bytes of a block of `block_len` bytes: as many as
    /// [`head_prefix_len`] says a reader of some heads' fields needs. The
    /// block is refused when its sections do not fit in `block_len`, as a
    /// whole block is; it then gives the heads of those fields (or fewer).
    /// A read of anything the prefix does not hold (wider heads, status
    /// texts, tags) finds the block damaged.
    pub fn of_prefix(
        prefix: D,
        block_len: usize,
        cols: Columns,
    ) -> Result<BlockDecoder<D>, CorruptBlock> {
        Self::start(prefix, block_len, false, cols)
    }

    /// [`of_prefix`](Self::of_prefix), or [`with_columns`](Self::with_columns)
    /// when `data` is the whole block: reads the header, checking the
    /// sections against `block_len`.
    fn start(
        data: D,
        block_len: usize,
        with_tags: bool,
        mut cols: Columns,
    ) -> Result<BlockDecoder<D>, CorruptBlock> {
        let version = *data.as_ref().first().ok_or(CorruptBlock)?;
        if version != BLOCK_VERSION && version != BLOCK_VERSION_1 {
            return Err(CorruptBlock);
        }
        cols.ready = Ready::No;
        let mut d = BlockDecoder {
            data,
            pos: 1,
            remaining: 0,
            prev_id: 0,
            prev_trace: 0,
            prev_start: 0,
            prev_thread: 0,
            with_tags,
            v2: None,
            cols,
            next: 0,
            tail_next: 0,
        };
        d.remaining = d.varint()?;
        if version == BLOCK_VERSION {
            let count = usize::try_from(d.remaining).map_err(|_| CorruptBlock)?;
            let mut lens = [0usize; COLS];
            for l in &mut lens {
                *l = usize::try_from(d.varint()?).map_err(|_| CorruptBlock)?;
            }
            let flags = d.pos;
            let mut col = [0usize; COLS + 1];
            col[0] = flags.checked_add(count).ok_or(CorruptBlock)?;
            for k in 0..COLS {
                col[k + 1] = col[k].checked_add(lens[k]).ok_or(CorruptBlock)?;
            }
            if col[COLS] > block_len {
                return Err(CorruptBlock);
            }
            d.pos = col[COLS];
            d.v2 = Some(Sections { count, flags, col });
        }
        Ok(d)
    }

    /// Gives the block's buffer back (for reuse).
    pub fn into_data(self) -> D {
        self.data
    }

    /// Gives the block's buffer and the decoder's arrays back, for the
    /// next block's decoder ([`with_columns`](Self::with_columns)).
    pub fn into_parts(self) -> (D, Columns) {
        (self.data, self.cols)
    }

    /// Spans not decoded yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, CorruptBlock> {
        let data = self.data.as_ref();
        // Fast path: one-byte values (most deltas, paths, flags-adjacent
        // fields) and, with ten bytes left, no per-byte bounds checks.
        if let Some(&b) = data.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(b as u64);
            }
        }
        if let Some(chunk) = data.get(self.pos..self.pos + 10) {
            let mut v: u64 = 0;
            for (i, &b) in chunk.iter().enumerate() {
                v |= ((b & 0x7f) as u64) << (7 * i);
                if b < 0x80 {
                    if i == 9 && b > 1 {
                        return Err(CorruptBlock);
                    }
                    self.pos += i + 1;
                    return Ok(v);
                }
            }
            return Err(CorruptBlock);
        }
        self.varint_slow()
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, CorruptBlock> {
        let (v, len) = varint_long(self.data.as_ref(), self.pos).ok_or(CorruptBlock)?;
        self.pos += len;
        Ok(v)
    }

    fn bytes(&mut self) -> Result<std::ops::Range<usize>, CorruptBlock> {
        let n = self.varint()? as usize;
        let end = self.pos.checked_add(n).ok_or(CorruptBlock)?;
        if end > self.data.as_ref().len() {
            return Err(CorruptBlock);
        }
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }

    fn string(&mut self) -> Result<String, CorruptBlock> {
        let r = self.bytes()?;
        Ok(String::from_utf8_lossy(&self.data.as_ref()[r]).into_owned())
    }

    /// Decodes the fixed part of the next span (ids, path, times, thread,
    /// flags); the caller must then call `tail` (after `sync_tails` in a
    /// version-2 block).
    #[inline(always)]
    fn head(&mut self) -> Result<Option<(SpanHead, u8)>, CorruptBlock> {
        if self.v2.is_some() {
            self.head_v2()
        } else {
            self.head_v1()
        }
    }

    /// [`head`](Self::head) of a version-2 block: every head column is
    /// decoded at the first span, then read from the arrays.
    #[inline(always)]
    fn head_v2(&mut self) -> Result<Option<(SpanHead, u8)>, CorruptBlock> {
        let Some(sec) = self.v2 else {
            return Err(CorruptBlock);
        };
        let i = self.next;
        if i >= sec.count {
            return Ok(None);
        }
        if self.cols.ready != Ready::Full {
            self.decode_v2(Ready::Full)?;
        }
        self.next = i + 1;
        self.remaining -= 1;
        let flags = self.data.as_ref()[sec.flags + i];
        let c = &self.cols;
        debug_assert!([c.id.len(), c.parent.len(), c.trace.len(), c.path.len()]
            .iter()
            .chain(&[c.start.len(), c.dur.len(), c.child.len(), c.thread.len()])
            .all(|&l| l == sec.count));
        // SAFETY: `i < sec.count`, and `decode_v2(Ready::Full)` left
        // `sec.count` values in every array (eight bounds checks a span
        // were a sixth of a busy-clock analysis's decode).
        let head = unsafe {
            SpanHead {
                id: *c.id.get_unchecked(i),
                parent: *c.parent.get_unchecked(i),
                trace: *c.trace.get_unchecked(i),
                path: *c.path.get_unchecked(i),
                start_ns: *c.start.get_unchecked(i),
                dur_ns: *c.dur.get_unchecked(i),
                child_ns: *c.child.get_unchecked(i),
                thread: *c.thread.get_unchecked(i),
                error: flags & ST_MASK != 0,
            }
        };
        Ok(Some((head, flags)))
    }

    /// Decodes the head columns of a version-2 block that `want` names
    /// into the arrays, checking each whole. On an error the block is
    /// done: no span is left.
    #[inline(never)]
    fn decode_v2(&mut self, want: Ready) -> Result<(), CorruptBlock> {
        let Some(sec) = self.v2 else {
            return Err(CorruptBlock);
        };
        let r = decode_columns(self.data.as_ref(), &sec, want, &mut self.cols);
        if r.is_none() {
            self.cols.ready = Ready::No;
            self.next = sec.count;
            self.remaining = 0;
            return Err(CorruptBlock);
        }
        self.cols.ready = want;
        Ok(())
    }

    /// Version 2: moves the tail cursor to span `i`'s tail, skipping the
    /// tails of the spans before it that were not read.
    #[inline(always)]
    fn sync_tails(&mut self, i: usize) -> Result<(), CorruptBlock> {
        let Some(sec) = self.v2 else {
            return Err(CorruptBlock);
        };
        while self.tail_next < i {
            let flags = self.data.as_ref()[sec.flags + self.tail_next];
            self.tail_next += 1;
            if flags & (ST_CUSTOM | F_TAGS) != 0 {
                self.tail(flags, None, None)?;
            }
        }
        Ok(())
    }

    /// [`head`](Self::head) of a version-1 block.
    #[inline(always)]
    fn head_v1(&mut self) -> Result<Option<(SpanHead, u8)>, CorruptBlock> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let flags = *self.data.as_ref().get(self.pos).ok_or(CorruptBlock)?;
        self.pos += 1;
        let id = self.prev_id.wrapping_add(unzigzag(self.varint()?) as u64);
        let parent = if flags & F_PARENT != 0 {
            id.wrapping_sub(unzigzag(self.varint()?) as u64)
        } else {
            0
        };
        if flags & F_TRACE != 0 {
            self.prev_trace = self
                .prev_trace
                .wrapping_add(unzigzag(self.varint()?) as u64);
        }
        let path = u32::try_from(self.varint()?).map_err(|_| CorruptBlock)?;
        self.prev_start = self.prev_start.wrapping_add(unzigzag(self.varint()?));
        let dur_ns = self.varint()?;
        let child_ns = if flags & F_CHILD != 0 {
            self.varint()?
        } else {
            0
        };
        if flags & F_THREAD != 0 {
            self.prev_thread = u32::try_from(self.varint()?).map_err(|_| CorruptBlock)?;
        }
        self.prev_id = id;
        Ok(Some((
            SpanHead {
                id,
                parent,
                trace: self.prev_trace,
                path,
                start_ns: self.prev_start,
                dur_ns,
                child_ns,
                thread: self.prev_thread,
                error: flags & ST_MASK != 0,
            },
            flags,
        )))
    }

    /// Decodes (or skips) the status text and tags that follow a head.
    #[inline(always)]
    fn tail(
        &mut self,
        flags: u8,
        status: Option<&mut Status>,
        mut tags: Option<&mut Tags>,
    ) -> Result<(), CorruptBlock> {
        let st = flags & ST_MASK;
        if st == ST_CUSTOM {
            let r = self.bytes()?;
            if let Some(out) = status {
                *out = Status::Custom(String::from_utf8_lossy(&self.data.as_ref()[r]).into_owned());
            }
        } else if st > ST_CUSTOM {
            return Err(CorruptBlock);
        } else if let Some(out) = status {
            *out = if st == ST_ERROR {
                Status::Error
            } else {
                Status::Ok
            };
        }
        if let Some(t) = tags.as_deref_mut() {
            t.clear();
        }
        if flags & F_TAGS == 0 {
            return Ok(());
        }
        let Some(t) = tags else {
            // Skipped with the reads of `for_each_head`.
            let mut r = Reader {
                data: self.data.as_ref(),
                pos: self.pos,
            };
            let skipped = r.skip_tags();
            self.pos = r.pos;
            return skipped.ok_or(CorruptBlock);
        };
        let n = self.varint()?;
        for _ in 0..n {
            let key = self.bytes()?;
            let ty = *self.data.as_ref().get(self.pos).ok_or(CorruptBlock)?;
            self.pos += 1;
            let v = match ty {
                0 => TagValue::Str(self.string()?),
                1 => TagValue::I64(unzigzag(self.varint()?)),
                2 => TagValue::U64(self.varint()?),
                3 => {
                    let b = self
                        .data
                        .as_ref()
                        .get(self.pos..self.pos + 8)
                        .ok_or(CorruptBlock)?;
                    self.pos += 8;
                    TagValue::F64(f64::from_le_bytes(b.try_into().map_err(|_| CorruptBlock)?))
                }
                4 => TagValue::Bool(false),
                5 => TagValue::Bool(true),
                6 => TagValue::Null,
                7 => TagValue::Json(self.string()?),
                _ => return Err(CorruptBlock),
            };
            let key = String::from_utf8_lossy(&self.data.as_ref()[key]).into_owned();
            t.push((key, v));
        }
        Ok(())
    }

    /// The next span's fixed fields only, skipping its status text and tags
    /// without allocating: the fastest way through a block.
    #[inline(always)]
    pub fn next_head(&mut self) -> Result<Option<SpanHead>, CorruptBlock> {
        let Some((h, flags)) = self.head()? else {
            return Ok(None);
        };
        // A version-2 block's tails are skipped only if a later read needs
        // what follows them.
        if self.v2.is_none() {
            self.tail(flags, None, None)?;
        }
        Ok(Some(h))
    }

    /// Calls `f` with the fixed fields of every span left in the block:
    /// [`for_each_head_of`](Self::for_each_head_of) with every field.
    #[inline(always)]
    pub fn for_each_head(&mut self, f: impl FnMut(&SpanHead)) -> Result<(), CorruptBlock> {
        self.for_each_head_of(HeadFields::ALL, f)
    }

    /// Calls `f` with the fixed fields of every span left in the block,
    /// skipping status texts and tags: the spans [`BlockDecoder::next_head`]
    /// gives one by one, decoded in one tight loop (the fast path of
    /// statistics). `fields` are those `f` reads: the others may come out
    /// as 0 (in a version-2 block, the id, parent, trace, thread and
    /// start of every span are 0 unless one of the first four, or the
    /// start, is asked for; a version-1 block gives every field).
    ///
    /// A version-2 block decodes the columns of the fields asked for
    /// (paths, durations, children's totals and statuses always), each in
    /// its own loop, then calls `f` span by span; a damaged column gives
    /// the error before `f` sees any span. A version-1 block is read span
    /// by span: a corrupt span ends the block, `f` having seen every span
    /// before it. Either way the block is done after the call.
    #[inline(always)]
    pub fn for_each_head_of(
        &mut self,
        fields: HeadFields,
        mut f: impl FnMut(&SpanHead),
    ) -> Result<(), CorruptBlock> {
        let Some(sec) = self.v2 else {
            return self.for_each_head_v1(f);
        };
        let (i0, n) = self.take_columns(Ready::of(fields), sec.count)?;
        let flags = &self.data.as_ref()[sec.flags..sec.flags + n];
        let c = &self.cols;
        if c.ready == Ready::Full {
            let (id, parent, trace) = (&c.id[..n], &c.parent[..n], &c.trace[..n]);
            let (path, start, dur) = (&c.path[..n], &c.start[..n], &c.dur[..n]);
            let (child, thread) = (&c.child[..n], &c.thread[..n]);
            for i in i0..n {
                f(&SpanHead {
                    id: id[i],
                    parent: parent[i],
                    trace: trace[i],
                    path: path[i],
                    start_ns: start[i],
                    dur_ns: dur[i],
                    child_ns: child[i],
                    thread: thread[i],
                    error: flags[i] & ST_MASK != 0,
                });
            }
        } else {
            let spans = flags[i0..]
                .iter()
                .zip(&c.path[i0..n])
                .zip(&c.start[i0..n])
                .zip(&c.dur[i0..n])
                .zip(&c.child[i0..n]);
            for ((((&fl, &path), &start_ns), &dur_ns), &child_ns) in spans {
                f(&SpanHead::narrow(
                    path,
                    start_ns,
                    dur_ns,
                    child_ns,
                    fl & ST_MASK != 0,
                ));
            }
        }
        Ok(())
    }

    /// Decodes the columns `want` needs of a version-2 block of `count`
    /// spans, unless they are decoded already, and marks the block read:
    /// the range of spans left, `(first, count)`.
    #[inline(always)]
    fn take_columns(&mut self, want: Ready, count: usize) -> Result<(usize, usize), CorruptBlock> {
        let have = self.cols.ready;
        let enough = match want {
            Ready::Full => have == Ready::Full,
            Ready::Narrow => have == Ready::Full || have == Ready::Narrow,
            _ => have != Ready::No,
        };
        if !enough {
            self.decode_v2(want)?;
        }
        let i0 = self.next;
        self.next = count;
        self.remaining = 0;
        Ok((i0, count))
    }

    /// The narrow head columns of the spans left in a version-2 block, for a
    /// reader that folds them a column at a time rather than span by span:
    /// what [`for_each_head_of`](Self::for_each_head_of) would call its
    /// `f` with, as arrays. `Ok(None)` (and nothing read) for a version-1
    /// block, or when `fields` names the id, parent, trace or thread (the
    /// caller then takes [`for_each_head_of`](Self::for_each_head_of)).
    /// The starts are 0 unless `fields` names them. Damage is as in
    /// [`for_each_head_of`](Self::for_each_head_of): a damaged column
    /// gives the error and no span. Either way the block is done after
    /// the call.
    #[inline]
    pub fn head_columns(
        &mut self,
        fields: HeadFields,
    ) -> Result<Option<HeadColumns<'_>>, CorruptBlock> {
        let Some(sec) = self.v2 else {
            return Ok(None);
        };
        if fields.intersects(FULL_ONLY) {
            return Ok(None);
        }
        let (i0, n) = self.take_columns(Ready::of(fields), sec.count)?;
        let c = &self.cols;
        Ok(Some(HeadColumns {
            flags: &self.data.as_ref()[sec.flags + i0..sec.flags + n],
            path: &c.path[i0..n],
            start: &c.start[i0..n],
            dur: &c.dur[i0..n],
            child: &c.child[i0..n],
        }))
    }

    /// [`for_each_head`](Self::for_each_head) of a version-1 block: the
    /// spans [`BlockDecoder::next_head`] gives one by one, decoded in one
    /// tight loop with the decoder's state in registers. A corrupt span
    /// ends the block: `f` has then seen every span before it, and the
    /// error is returned. Fields `f` does not read cost only their
    /// skipping.
    ///
    /// A span that starts at least 136 bytes before the end of the block
    /// reads its fixed fields from a fixed-size window of the block, without
    /// a bounds check per field; the last spans of a block take the checked
    /// reads.
    #[inline(always)]
    fn for_each_head_v1(&mut self, mut f: impl FnMut(&SpanHead)) -> Result<(), CorruptBlock> {
        let data = self.data.as_ref();
        let mut pos = self.pos;
        let (mut prev_id, mut prev_trace) = (self.prev_id, self.prev_trace);
        let (mut prev_start, mut prev_thread) = (self.prev_start, self.prev_thread);
        let mut remaining = self.remaining;
        // One span's fixed fields and flags, each varint read by
        // `$varint!()` (which leaves the loop on a corrupt value). Written
        // out rather than returned from a closure: an `Option<SpanHead>`
        // per span went through the stack.
        macro_rules! span {
            ($flags:expr, $varint:ident) => {{
                let flags: u8 = $flags;
                let id = prev_id.wrapping_add(unzigzag($varint!()) as u64);
                let parent = if flags & F_PARENT != 0 {
                    id.wrapping_sub(unzigzag($varint!()) as u64)
                } else {
                    0
                };
                if flags & F_TRACE != 0 {
                    prev_trace = prev_trace.wrapping_add(unzigzag($varint!()) as u64);
                }
                let Ok(path) = u32::try_from($varint!()) else {
                    break false;
                };
                prev_start = prev_start.wrapping_add(unzigzag($varint!()));
                let dur_ns = $varint!();
                let child_ns = if flags & F_CHILD != 0 { $varint!() } else { 0 };
                if flags & F_THREAD != 0 {
                    let Ok(t) = u32::try_from($varint!()) else {
                        break false;
                    };
                    prev_thread = t;
                }
                prev_id = id;
                (
                    SpanHead {
                        id,
                        parent,
                        trace: prev_trace,
                        path,
                        start_ns: prev_start,
                        dur_ns,
                        child_ns,
                        thread: prev_thread,
                        error: flags & ST_MASK != 0,
                    },
                    flags,
                )
            }};
        }
        let whole = loop {
            if remaining == 0 {
                break true;
            }
            remaining -= 1;
            let (head, flags) = if let Some(w) = data.get(pos..pos + WINDOW) {
                let w = Window::new(w);
                let mut o = 1;
                macro_rules! window_varint {
                    () => {{
                        let Some((v, len)) = w.varint(o).or_else(|| varint_long(data, pos + o))
                        else {
                            break false;
                        };
                        o += len;
                        v
                    }};
                }
                let head = span!(w.bytes[0], window_varint);
                // The tail is read from `pos`, moved past the fixed fields.
                pos += o;
                head
            } else {
                macro_rules! checked_varint {
                    () => {{
                        let Some((v, len)) = varint_at(data, pos) else {
                            break false;
                        };
                        pos += len;
                        v
                    }};
                }
                let Some(&flags) = data.get(pos) else {
                    break false;
                };
                pos += 1;
                span!(flags, checked_varint)
            };
            // A custom status (2), a bad one (3) or tags. One call site of
            // the tail and of `f` for both reads keeps `f` inlined.
            if flags & (ST_CUSTOM | F_TAGS) != 0 {
                let mut r = Reader { data, pos };
                if r.skip_tail(flags).is_none() {
                    break false;
                }
                pos = r.pos;
            }
            f(&head);
        };
        // The block is done either way (a corrupt span ends it).
        self.remaining = 0;
        self.pos = pos;
        (self.prev_id, self.prev_trace) = (prev_id, prev_trace);
        (self.prev_start, self.prev_thread) = (prev_start, prev_thread);
        if whole {
            Ok(())
        } else {
            Err(CorruptBlock)
        }
    }

    /// Decodes the next span into `s` (reusing its tag vector). Returns
    /// `Ok(false)` at the end of the block.
    #[inline(always)]
    pub fn next_into(&mut self, s: &mut BlockSpan) -> Result<bool, CorruptBlock> {
        Ok(self.next_into_where(s, |_| true)?.is_some())
    }

    /// Like [`next_into`](Self::next_into), but decodes the status and tags
    /// only of a span whose fixed fields `keep` accepts; the others are
    /// skipped (their fixed fields are still in `s.head`). `Ok(Some(kept))`
    /// for a span, `Ok(None)` at the end of the block.
    #[inline(always)]
    pub fn next_into_where(
        &mut self,
        s: &mut BlockSpan,
        keep: impl FnOnce(&SpanHead) -> bool,
    ) -> Result<Option<bool>, CorruptBlock> {
        let Some((h, flags)) = self.head()? else {
            return Ok(None);
        };
        s.head = h;
        if self.v2.is_some() {
            // The tail cursor moves to this span's tail, past it below.
            self.sync_tails(self.next - 1)?;
            self.tail_next += 1;
        }
        if !keep(&s.head) {
            self.tail(flags, None, None)?;
            return Ok(Some(false));
        }
        let tags = if self.with_tags {
            Some(&mut s.tags)
        } else {
            s.tags.clear();
            None
        };
        self.tail(flags, Some(&mut s.status), tags)?;
        Ok(Some(true))
    }
}

/// The fixed fields of a stored span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanHead {
    /// Span id.
    pub id: u64,
    /// Parent id, 0 for none.
    pub parent: u64,
    /// Trace (root) id.
    pub trace: u64,
    /// Database call-path id.
    pub path: u32,
    /// Start, ns since the UNIX epoch.
    pub start_ns: i64,
    /// Duration, ns.
    pub dur_ns: u64,
    /// Direct children's total duration, ns.
    pub child_ns: u64,
    /// Thread index within the process.
    pub thread: u32,
    /// True when the status is anything but ok. Set by the decoder; the
    /// encoder ignores it (the status it is given decides).
    pub error: bool,
}

impl SpanHead {
    /// A head with the narrow fields only (id, parent, trace and thread
    /// 0), as [`HeadColumns`] and the narrow reads give it.
    #[inline(always)]
    pub fn narrow(path: u32, start_ns: i64, dur_ns: u64, child_ns: u64, error: bool) -> SpanHead {
        SpanHead {
            id: 0,
            parent: 0,
            trace: 0,
            path,
            start_ns,
            dur_ns,
            child_ns,
            thread: 0,
            error,
        }
    }

    /// True when the status is anything but ok.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.error
    }
}

#[cfg(test)]
// `i % n == 0` reads plainly here and keeps the crate building on older toolchains.
#[allow(clippy::manual_is_multiple_of)]
mod tests {
    use super::*;

    fn sample(i: u64) -> BlockSpan {
        let status = match i % 4 {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Custom("warning".into()),
            _ => Status::Ok,
        };
        BlockSpan {
            head: SpanHead {
                id: (7 << 40) | i,
                parent: if i.is_multiple_of(3) {
                    0
                } else {
                    (7 << 40) | (i - 1)
                },
                trace: (7 << 40) | (i / 3 * 3),
                path: (i % 5) as u32 + 1,
                start_ns: 1_700_000_000_000_000_000 + (i as i64) * 1000,
                dur_ns: 500 + i,
                child_ns: if i.is_multiple_of(2) { 100 } else { 0 },
                thread: (i % 2) as u32,
                error: status.is_error(),
            },
            status,
            tags: if i.is_multiple_of(5) {
                vec![
                    ("s".into(), TagValue::Str("x".repeat(i as usize))),
                    ("i".into(), TagValue::I64(-(i as i64))),
                    ("u".into(), TagValue::U64(u64::MAX)),
                    ("f".into(), TagValue::F64(1.5)),
                    ("b".into(), TagValue::Bool(true)),
                ]
            } else {
                vec![]
            },
        }
    }

    fn encode(spans: &[BlockSpan]) -> Vec<u8> {
        let mut e = BlockEncoder::new();
        for s in spans {
            e.push_span(s);
        }
        e.finish()
    }

    fn encode_v1(spans: &[BlockSpan]) -> Vec<u8> {
        let mut e = BlockEncoderV1::new();
        for s in spans {
            e.push_span(s);
        }
        e.finish()
    }

    /// Both encodings of the same spans: (version, block).
    fn both(spans: &[BlockSpan]) -> [(u8, Vec<u8>); 2] {
        [(1, encode_v1(spans)), (2, encode(spans))]
    }

    /// Every span `next_into` gives until the end or an error, and whether
    /// it ended in an error.
    fn spans_of(data: &[u8], with_tags: bool) -> (Vec<BlockSpan>, bool) {
        let mut d = BlockDecoder::new(data, with_tags).unwrap();
        let mut s = BlockSpan::default();
        let mut out = vec![];
        loop {
            match d.next_into(&mut s) {
                Ok(true) => out.push(s.clone()),
                Ok(false) => return (out, false),
                Err(_) => return (out, true),
            }
        }
    }

    #[test]
    fn round_trip_every_field() {
        let spans: Vec<BlockSpan> = (1..200).map(sample).collect();
        for (v, data) in both(&spans) {
            assert_eq!(data[0], v);
            assert_eq!(spans_of(&data, true), (spans.clone(), false), "v{v}");
        }
    }

    /// The reused buffers give the same bytes as a fresh encoder, for
    /// counts of every header length, extreme field values included.
    #[test]
    fn reused_encoder_writes_the_same_blocks() {
        let mut spans: Vec<BlockSpan> = (1..300).map(sample).collect();
        spans[7].head.dur_ns = u64::MAX;
        spans[8].head.start_ns = i64::MIN;
        spans[9].head.id = u64::MAX;
        spans[10].head.thread = u32::MAX;
        macro_rules! check {
            ($enc:ty, $encode:ident) => {{
                let mut reused = <$enc>::new();
                for n in [0, 1, 127, 128, 299, 0, 200] {
                    reused.clear();
                    let mut tails = Vec::new();
                    for s in &spans[..n] {
                        tails.clear();
                        let flags = encode_tail(&s.status, &s.tags, &mut tails);
                        reused.push_encoded(&s.head, (flags, &tails));
                    }
                    let fresh = $encode(&spans[..n]);
                    assert_eq!(reused.block(), &fresh[..], "{n} spans");
                    // A block read twice is the same.
                    assert_eq!(reused.block(), &fresh[..], "{n} spans");
                }
            }};
        }
        check!(BlockEncoder, encode);
        check!(BlockEncoderV1, encode_v1);
    }

    #[test]
    fn skipping_tags_keeps_other_fields() {
        let spans: Vec<BlockSpan> = (1..50).map(sample).collect();
        for (v, data) in both(&spans) {
            let (got, err) = spans_of(&data, false);
            assert!(!err);
            assert_eq!(got.len(), spans.len(), "v{v}");
            for (g, s) in got.iter().zip(&spans) {
                assert!(g.tags.is_empty());
                assert_eq!(g.head, s.head);
                assert_eq!(g.status, s.status);
            }
        }
    }

    #[test]
    fn next_into_where_decodes_the_kept_spans_whole_and_skips_the_others() {
        let spans: Vec<BlockSpan> = (1..200).map(sample).collect();
        let keep = |h: &SpanHead| h.id % 3 != 1;
        for (v, data) in both(&spans) {
            let mut d = BlockDecoder::new(&data[..], true).unwrap();
            let mut s = BlockSpan::default();
            let (mut kept, mut seen) = (vec![], 0);
            while let Some(k) = d.next_into_where(&mut s, keep).unwrap() {
                assert_eq!(k, keep(&spans[seen].head), "span {seen}");
                assert_eq!(s.head.id, spans[seen].head.id, "skipped spans advance too");
                if k {
                    kept.push(s.clone());
                }
                seen += 1;
            }
            assert_eq!(seen, spans.len());
            let want: Vec<BlockSpan> = spans.iter().filter(|s| keep(&s.head)).cloned().collect();
            assert_eq!(kept, want, "v{v}");
            // A block cut inside a skipped span's tags is still an error.
            for cut in 0..data.len() {
                if let Ok(mut d) = BlockDecoder::new(&data[..cut], true) {
                    let mut res = Ok(Some(true));
                    while let Ok(Some(_)) = res {
                        res = d.next_into_where(&mut s, |_| false);
                    }
                    assert!(res.is_err(), "v{v}: truncation at {cut} must be detected");
                }
            }
        }
    }

    #[test]
    fn truncated_or_garbage_blocks_are_errors_not_panics() {
        let spans: Vec<BlockSpan> = (1..50).map(sample).collect();
        for (v, data) in both(&spans) {
            for cut in 0..data.len() {
                let part = &data[..cut];
                if BlockDecoder::new(part, true).is_ok() {
                    let (got, err) = spans_of(part, true);
                    assert!(err, "v{v}: truncation at {cut} must be detected");
                    assert_eq!(got[..], spans[..got.len()], "v{v}: cut at {cut}");
                }
            }
        }
        assert!(BlockDecoder::new(&b""[..], true).is_err());
        assert!(BlockDecoder::new(&[9u8, 1, 2][..], true).is_err());
        for version in [BLOCK_VERSION_1, BLOCK_VERSION] {
            let mut junk = vec![version, 5];
            junk.extend(std::iter::repeat_n(0xff, 40));
            if let Ok(mut d) = BlockDecoder::new(&junk[..], true) {
                assert!(d.next_into(&mut BlockSpan::default()).is_err());
            }
        }
    }

    /// Every head `next_head` gives until the end or an error, and whether
    /// it ended in an error.
    fn heads_one_by_one(data: &[u8]) -> (Vec<SpanHead>, bool) {
        let mut d = BlockDecoder::new(data, false).unwrap();
        let mut out = vec![];
        loop {
            match d.next_head() {
                Ok(Some(h)) => out.push(h),
                Ok(None) => return (out, false),
                Err(_) => return (out, true),
            }
        }
    }

    fn heads_in_one_loop(data: &[u8], fields: HeadFields) -> (Vec<SpanHead>, bool) {
        let mut d = BlockDecoder::new(data, false).unwrap();
        let mut out = vec![];
        let err = d.for_each_head_of(fields, |h| out.push(*h)).is_err();
        assert_eq!(d.remaining(), 0);
        (out, err)
    }

    /// Spans with values of every varint length, both signs of deltas,
    /// every flag.
    fn varied() -> Vec<BlockSpan> {
        let mut spans: Vec<BlockSpan> = (1..300).map(sample).collect();
        for (i, s) in spans.iter_mut().enumerate() {
            let k = (i % 10) as u32;
            s.head.dur_ns = (1u64 << (7 * k)).wrapping_sub(1) ^ i as u64;
            s.head.child_ns = if i % 4 == 0 { 0 } else { 1 << (i % 64) };
            s.head.start_ns += if i % 7 == 0 {
                -(1 << (i % 50))
            } else {
                1 << (i % 40)
            };
            s.head.thread = (i % 3) as u32 * 1000;
            s.head.path = if i % 11 == 0 { u32::MAX } else { k };
        }
        spans
    }

    #[test]
    fn for_each_head_equals_next_head_on_whole_cut_and_damaged_blocks() {
        let spans = varied();
        for (v, data) in both(&spans) {
            let (all, err) = heads_in_one_loop(&data, HeadFields::ALL);
            assert!(!err);
            assert_eq!(all.len(), spans.len());
            assert_eq!(all, heads_one_by_one(&data).0);
            for (h, s) in all.iter().zip(&spans) {
                assert_eq!(
                    *h,
                    SpanHead {
                        error: s.status.is_error(),
                        ..s.head
                    }
                );
            }
            let same = |part: &[u8], what: &str| {
                if BlockDecoder::new(part, false).is_ok() {
                    let one_loop = heads_in_one_loop(part, HeadFields::ALL);
                    assert_eq!(one_loop, heads_one_by_one(part), "v{v}: {what}");
                    if v == 2 {
                        // All or nothing.
                        assert!(one_loop.1 == one_loop.0.is_empty() || spans.is_empty());
                    }
                }
            };
            for cut in 2..data.len() {
                same(&data[..cut], &format!("cut {cut}"));
            }
            for at in 2..data.len().min(400) {
                for byte in [0x00, 0x7f, 0x80, 0xff, 0x03, 0x43] {
                    let mut bad = data.clone();
                    bad[at] = byte;
                    same(&bad, &format!("{byte:#x} at {at}"));
                }
            }
        }
    }

    /// The fields a summary reads come out the same whatever else is
    /// asked for; the others are 0 in a version-2 block.
    #[test]
    fn for_each_head_of_some_fields_gives_those() {
        let spans = varied();
        let data = encode(&spans);
        let (all, _) = heads_in_one_loop(&data, HeadFields::ALL);
        let narrow =
            HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN | HeadFields::ERROR;
        for (fields, start) in [(narrow, false), (narrow | HeadFields::START, true)] {
            let (got, err) = heads_in_one_loop(&data, fields);
            assert!(!err);
            let want: Vec<SpanHead> = all
                .iter()
                .map(|h| SpanHead {
                    id: 0,
                    parent: 0,
                    trace: 0,
                    thread: 0,
                    start_ns: if start { h.start_ns } else { 0 },
                    ..*h
                })
                .collect();
            assert_eq!(got, want, "{fields:?}");
        }
        for f in [
            HeadFields::ID,
            HeadFields::PARENT,
            HeadFields::TRACE,
            HeadFields::THREAD,
        ] {
            assert_eq!(heads_in_one_loop(&data, f | narrow), (all.clone(), false));
        }
        // A version-1 block gives every field.
        assert_eq!(heads_in_one_loop(&encode_v1(&spans), narrow), (all, false));
        // After some spans one by one, the rest in one loop.
        let mut d = BlockDecoder::new(&data[..], false).unwrap();
        let mut got: Vec<SpanHead> = (0..10).map(|_| d.next_head().unwrap().unwrap()).collect();
        d.for_each_head_of(narrow, |h| got.push(*h)).unwrap();
        assert_eq!(got, heads_in_one_loop(&data, HeadFields::ALL).0);
    }

    /// Reads mixed on one decoder: heads alone skip the tails, which a
    /// later full read finds in their place.
    #[test]
    fn heads_then_whole_spans_keep_the_tails_in_step() {
        let spans: Vec<BlockSpan> = (1..200).map(sample).collect();
        for (v, data) in both(&spans) {
            let mut d = BlockDecoder::new(&data[..], true).unwrap();
            let mut s = BlockSpan::default();
            for (i, want) in spans.iter().enumerate() {
                if i % 3 == 0 {
                    let h = d.next_head().unwrap().unwrap();
                    assert_eq!(h.id, want.head.id);
                } else {
                    assert!(d.next_into(&mut s).unwrap());
                    assert_eq!(&s, want, "v{v}: span {i}");
                }
            }
            assert!(!d.next_into(&mut s).unwrap());
        }
    }

    /// The section lengths of a version-2 block, from its header.
    fn sections(data: &[u8]) -> Sections {
        BlockDecoder::new(data, false).unwrap().v2.unwrap()
    }

    #[test]
    fn damaged_columnar_blocks_give_no_heads() {
        let spans = varied();
        let data = encode(&spans);
        let sec = sections(&data);
        // Section lengths that do not add up: past the end, or overflowing.
        let mut long = data.clone();
        long.truncate(sec.col[COLS] - 1);
        assert!(BlockDecoder::new(&long[..], false).is_err());
        let mut huge = vec![BLOCK_VERSION];
        put_varint(&mut huge, 3);
        for _ in 0..COLS {
            put_varint(&mut huge, u64::MAX / 4);
        }
        huge.extend([0u8; 64]);
        assert!(BlockDecoder::new(&huge[..], false).is_err());
        // Each column: one byte more or less is damage (a value running
        // into the next section, or one left over), for every field read.
        for k in 0..COLS {
            if sec.col[k + 1] == sec.col[k] {
                continue;
            }
            for delta in [-1i64, 1] {
                let mut bad = vec![BLOCK_VERSION];
                put_varint(&mut bad, sec.count as u64);
                for j in 0..COLS {
                    let len = (sec.col[j + 1] - sec.col[j]) as i64;
                    put_varint(&mut bad, (len + if j == k { delta } else { 0 }) as u64);
                }
                bad.extend_from_slice(&data[sec.flags..]);
                let (got, err) = heads_in_one_loop(&bad, HeadFields::ALL);
                assert!(err && got.is_empty(), "column {k} {delta:+}");
                assert_eq!(
                    heads_one_by_one(&bad),
                    (vec![], true),
                    "column {k} {delta:+}"
                );
            }
        }
        // A continuation bit on a column's last byte: runs into the next.
        let mut bad = data.clone();
        bad[sec.col[C_DUR + 1] - 1] |= 0x80;
        assert_eq!(
            heads_in_one_loop(&bad, HeadFields::DURATION),
            (vec![], true)
        );
        // A status of 3.
        let mut bad = data.clone();
        bad[sec.flags + 5] |= 3;
        assert_eq!(
            heads_in_one_loop(&bad, HeadFields::DURATION),
            (vec![], true)
        );
        // A path past 32 bits.
        let mut wide = spans.clone();
        wide[0].head.path = 0;
        let bad = encode(&wide);
        let at = sections(&bad).col[C_PATH];
        assert_eq!(bad[at], 0);
        // Replace the one-byte path 0 with 2^32 (5 bytes), growing its section.
        let mut grown = vec![BLOCK_VERSION];
        let s = sections(&bad);
        put_varint(&mut grown, s.count as u64);
        for j in 0..COLS {
            let len = s.col[j + 1] - s.col[j] + if j == C_PATH { 4 } else { 0 };
            put_varint(&mut grown, len as u64);
        }
        grown.extend_from_slice(&bad[s.flags..at]);
        put_varint(&mut grown, 1 << 32);
        grown.extend_from_slice(&bad[at + 1..]);
        assert_eq!(heads_in_one_loop(&grown, HeadFields::PATH), (vec![], true));
    }

    /// The heads of `fields` that a decoder of the block's prefix for
    /// them gives, and whether it ended in an error.
    fn heads_of_prefix(data: &[u8], fields: HeadFields) -> (Vec<SpanHead>, bool) {
        let head = &data[..data.len().min(BLOCK_HEADER_MAX)];
        let end = head_prefix_len(head, data.len(), fields).unwrap();
        let mut d = BlockDecoder::of_prefix(&data[..end], data.len(), Columns::default()).unwrap();
        let mut out = vec![];
        let err = d.for_each_head_of(fields, |h| out.push(*h)).is_err();
        (out, err)
    }

    /// A block's prefix for some heads gives those heads as the whole
    /// block does; in version 2 it leaves out the tails (and, for narrow
    /// heads, the ids, parents, traces and threads).
    #[test]
    fn prefixes_give_the_heads_of_whole_blocks() {
        let narrow = HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN;
        for (v, data) in both(&varied()) {
            for fields in [narrow, narrow | HeadFields::START, HeadFields::ALL] {
                assert_eq!(
                    heads_of_prefix(&data, fields),
                    heads_in_one_loop(&data, fields),
                    "v{v} {fields:?}"
                );
                let end = head_prefix_len(&data, data.len(), fields).unwrap();
                if v == 1 {
                    assert_eq!(end, data.len());
                    continue;
                }
                let sec = sections(&data);
                let last = if fields == HeadFields::ALL {
                    COLS
                } else {
                    C_THREAD
                };
                assert_eq!(end, sec.col[last], "v{v} {fields:?}");
            }
        }
    }

    /// A prefix is refused when the block's sections do not fit in the
    /// block's length (not the prefix's); a read the prefix does not hold
    /// finds the block damaged, never reads past it.
    #[test]
    fn prefixes_are_checked_against_the_whole_block() {
        let data = encode(&varied());
        let sec = sections(&data);
        let narrow = HeadFields::PATH | HeadFields::DURATION;
        let end = head_prefix_len(&data, data.len(), narrow).unwrap();
        let short = sec.col[COLS] - 1;
        assert!(head_prefix_len(&data, short, narrow).is_err());
        assert!(BlockDecoder::of_prefix(&data[..end], short, Columns::default()).is_err());
        let prefix = || BlockDecoder::of_prefix(&data[..end], data.len(), Columns::default());
        assert!(prefix()
            .unwrap()
            .for_each_head_of(HeadFields::ALL, |_| {})
            .is_err());
        assert!(prefix().unwrap().next_head().is_err());
        assert!(prefix()
            .unwrap()
            .next_into(&mut BlockSpan::default())
            .is_err());
        // The tails are not read: damage there does not reach the heads.
        let mut bad = data.clone();
        bad.truncate(sec.col[COLS] + 1);
        assert_eq!(
            heads_of_prefix(&bad, narrow),
            heads_in_one_loop(&data, narrow)
        );
        // A header cut short is refused.
        assert!(head_prefix_len(&data[..3], data.len(), narrow).is_err());
    }

    #[test]
    fn a_damaged_tail_ends_a_columnar_block_after_the_spans_before_it() {
        let spans: Vec<BlockSpan> = (1..50).map(sample).collect();
        let data = encode(&spans);
        let sec = sections(&data);
        // The first tagged span with a tag value type byte: make it 9.
        let mut bad = data.clone();
        let first_tags = spans.iter().position(|s| !s.tags.is_empty()).unwrap();
        // Spans before it with a custom status: their texts come first.
        let mut at = sec.col[COLS];
        for s in &spans[..first_tags] {
            if let Status::Custom(t) = &s.status {
                at += 1 + t.len();
            }
        }
        if let Status::Custom(t) = &spans[first_tags].status {
            at += 1 + t.len();
        }
        // n, key length, key byte "s", then the type byte.
        assert_eq!(&bad[at..at + 4], &[5, 1, b's', 0]);
        bad[at + 3] = 9;
        let (got, err) = spans_of(&bad, true);
        assert!(err);
        assert_eq!(got[..], spans[..first_tags]);
        // Heads alone do not read the tails.
        assert_eq!(
            heads_in_one_loop(&bad, HeadFields::ALL).0.len(),
            spans.len()
        );
    }

    /// A span whose thread index starts more than 63 bytes in (long id,
    /// parent, trace, start and duration varints) reads it from its window.
    #[test]
    fn a_thread_far_into_a_long_span_reads_right() {
        let mut spans: Vec<BlockSpan> = (1..40).map(sample).collect();
        for (i, s) in spans.iter_mut().enumerate() {
            // Deltas of 2^63 (ten bytes each) and ±2^62 for the start; id
            // deltas of eight bytes: the thread of an odd span starts 64
            // bytes in.
            let odd = i as u64 % 2;
            s.head.id = (i as u64) << 50;
            s.head.parent = s.head.id ^ (1 << 63);
            s.head.trace = 1 | (odd << 63);
            s.head.path = u32::MAX;
            s.head.start_ns = (odd as i64) << 62;
            s.head.dur_ns = u64::MAX;
            s.head.child_ns = u64::MAX - 1;
            s.head.thread = if odd == 0 { 7 } else { u32::MAX - i as u32 };
        }
        let want: Vec<SpanHead> = spans
            .iter()
            .map(|s| SpanHead {
                error: s.status.is_error(),
                ..s.head
            })
            .collect();
        for (v, data) in both(&spans) {
            assert_eq!(
                heads_in_one_loop(&data, HeadFields::ALL),
                (want.clone(), false),
                "v{v}"
            );
        }
    }

    #[test]
    fn window_varints_equal_the_byte_by_byte_reader() {
        // Every length from 1 to 10 bytes, at every offset a load may take,
        // with the bytes after the value all set or all clear.
        let mut values: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        values.extend([u64::MAX, 0x0123_4567_89ab_cdef, 300, 16_383, 16_384]);
        for v in values {
            let mut enc = vec![];
            put_varint(&mut enc, v);
            for o in 0..=66 {
                for fill in [0x00, 0xff] {
                    let mut buf = [fill; WINDOW];
                    let end = (o + enc.len()).min(WINDOW);
                    buf[o..end].copy_from_slice(&enc[..end - o]);
                    let got = Window::new(&buf).varint(o);
                    if enc.len() <= 8 {
                        assert_eq!(got, Some((v, enc.len())), "{v:#x} at {o}");
                        assert_eq!(varint_long(&buf, o), got);
                    } else {
                        assert_eq!(got, None, "{v:#x} at {o}: left to the checked reader");
                    }
                }
            }
        }
    }

    #[test]
    fn untagged_spans_are_small() {
        let spans: Vec<BlockSpan> = (1..4000)
            .map(|i| {
                let mut s = sample(i);
                s.tags.clear();
                s.status = Status::Ok;
                s.head.error = false;
                s
            })
            .collect();
        for (v, data) in both(&spans) {
            let per = data.len() as f64 / spans.len() as f64;
            assert!(per < 20.0, "v{v}: {per} bytes per span");
        }
    }

    /// The columns of [`BlockDecoder::head_columns`] against the spans of
    /// [`BlockDecoder::for_each_head_of`]: whole blocks, after spans read
    /// one by one, damaged columns, and the reads it leaves to the loop.
    #[test]
    fn head_columns_equal_for_each_head_of() {
        let spans = varied();
        let data = encode(&spans);
        let narrow = HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN;
        for fields in [narrow | HeadFields::ERROR, narrow | HeadFields::START] {
            for skip in [0, 1, 7, spans.len() - 1, spans.len()] {
                let mut a = BlockDecoder::new(&data[..], false).unwrap();
                let mut b = BlockDecoder::new(&data[..], false).unwrap();
                for _ in 0..skip {
                    assert_eq!(a.next_head().unwrap(), b.next_head().unwrap());
                }
                // The fields `head_columns` does not give (0 there) may
                // come out of `for_each_head_of` after `next_head`.
                let mut want = vec![];
                a.for_each_head_of(fields, |h| {
                    want.push(SpanHead {
                        id: 0,
                        parent: 0,
                        trace: 0,
                        thread: 0,
                        ..*h
                    })
                })
                .unwrap();
                let c = b.head_columns(fields).unwrap().unwrap();
                assert_eq!(c.len(), spans.len() - skip);
                assert_eq!(c.is_empty(), skip == spans.len());
                let got: Vec<SpanHead> = (0..c.len()).map(|i| c.head(i)).collect();
                for (i, &st) in c.status_bytes().iter().enumerate() {
                    assert_eq!(HeadColumns::error_of(st), c.is_error(i));
                    assert_eq!(c.is_error(i), got[i].error);
                }
                assert!(got == want, "{fields:?} after {skip}");
                assert_eq!(b.remaining(), 0);
                assert!(b.next_head().unwrap().is_none());
            }
        }
        // Wide fields, and row-wise blocks: left to `for_each_head_of`,
        // with nothing read.
        let mut d = BlockDecoder::new(&data[..], false).unwrap();
        assert!(d.head_columns(HeadFields::ALL).unwrap().is_none());
        assert!(d.head_columns(HeadFields::THREAD).unwrap().is_none());
        assert_eq!(d.remaining(), spans.len() as u64);
        let v1 = encode_v1(&spans);
        let mut d = BlockDecoder::new(&v1[..], false).unwrap();
        assert!(d.head_columns(narrow).unwrap().is_none());
        assert_eq!(d.remaining(), spans.len() as u64);
        // A damaged column: the error, no spans, the block done.
        let sec = sections(&data);
        let mut bad = data.clone();
        bad[sec.col[C_DUR + 1] - 1] |= 0x80;
        let mut d = BlockDecoder::new(&bad[..], false).unwrap();
        assert!(d.head_columns(narrow).is_err());
        assert_eq!(d.remaining(), 0);
        assert!(d.next_head().unwrap().is_none());
    }

    /// Values whose encodings take every length, mostly the short ones
    /// `read_dense` reads eight bytes at a time.
    fn column_value() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            4 => 0u64..128,
            4 => 128u64..16_384,
            1 => 16_384u64..(1 << 21),
            1 => any::<u64>(),
        ]
    }

    /// `n` values from `data[at..end]` read one by one with the checked
    /// byte-by-byte reader: what `read_dense` must give.
    fn dense_by_value(data: &[u8], at: usize, end: usize, n: usize) -> Option<Vec<u64>> {
        let mut pos = at;
        let mut out = vec![];
        for _ in 0..n {
            let (v, len) = varint_long(data, pos)?;
            pos += len;
            out.push(v);
        }
        (pos == end).then_some(out)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// `read_dense`, eight bytes at a time where it can, against the
        /// value-by-value reader: any mix of lengths at any offset, a
        /// section end moved, the wrong count, damaged bytes, and the
        /// next section's bytes after the column.
        #[test]
        fn read_dense_equals_the_value_by_value_reader(
            values in proptest::collection::vec(column_value(), 0..48),
            pad in 0usize..9,
            next in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            hits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                0..3,
            ),
            moved in -2i64..=2,
        ) {
            let mut data = vec![0xffu8; pad];
            for &v in &values {
                put_varint(&mut data, v);
            }
            let end = data.len();
            data.extend(&next);
            for (at, byte) in hits {
                if !data.is_empty() {
                    let at = at.index(data.len());
                    data[at] = byte;
                }
            }
            let end = (end as i64 + moved).clamp(pad as i64, data.len() as i64) as usize;
            for n in [values.len(), values.len().saturating_sub(1), values.len() + 1] {
                let want = dense_by_value(&data, pad, end, n);
                let mut out = vec![7u64];
                let got = read_dense(&data, (pad, end), n, &mut out, Some).map(|()| out);
                proptest::prop_assert_eq!(&got, &want);
                // With a conversion that can fail, as for paths.
                let want32 = want.and_then(|v| {
                    v.into_iter().map(|x| u32::try_from(x).ok()).collect::<Option<Vec<u32>>>()
                });
                let mut out = vec![];
                let got32 = read_dense(&data, (pad, end), n, &mut out, |v| u32::try_from(v).ok())
                    .map(|()| out);
                proptest::prop_assert_eq!(got32, want32);
            }
        }
    }
}
