//! The block codec: many spans per SQLite row, row-wise varint deltas.
//!
//! Layout (docs/FORMAT.md has the full description): a version byte, the
//! span count, then per span a flag byte followed by zigzag/LEB128 varints:
//! id delta, parent delta, trace delta, path id, start delta, duration,
//! children's duration, thread index, custom status text and tags, each
//! present only when its flag says so.

use crate::types::{Status, TagValue, Tags};

/// Version byte of the block encoding.
pub const BLOCK_VERSION: u8 = 1;

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

/// Encodes spans into one block. Spans should be sorted by start for the
/// smallest output, but any order round-trips.
///
/// An encoder can be reused: [`block`](Self::block) gives the finished
/// block without copying it, and [`clear`](Self::clear) starts the next
/// one in the same buffer.
pub struct BlockEncoder {
    out: Vec<u8>,
    count: u64,
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
        let mut out = Vec::with_capacity(64 * 1024);
        out.resize(HEADER_ROOM, 0);
        BlockEncoder {
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
        h[0] = BLOCK_VERSION;
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
        let w = u64::from_le_bytes(*w);
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

/// Decodes a block span by span, without allocating for spans without tags.
pub struct BlockDecoder<D> {
    data: D,
    pos: usize,
    remaining: u64,
    prev_id: u64,
    prev_trace: u64,
    prev_start: i64,
    prev_thread: u32,
    with_tags: bool,
}

impl<D: AsRef<[u8]>> BlockDecoder<D> {
    /// Starts decoding; `with_tags: false` skips tag bytes without decoding them.
    pub fn new(data: D, with_tags: bool) -> Result<BlockDecoder<D>, CorruptBlock> {
        if data.as_ref().first() != Some(&BLOCK_VERSION) {
            return Err(CorruptBlock);
        }
        let mut d = BlockDecoder {
            data,
            pos: 1,
            remaining: 0,
            prev_id: 0,
            prev_trace: 0,
            prev_start: 0,
            prev_thread: 0,
            with_tags,
        };
        d.remaining = d.varint()?;
        Ok(d)
    }

    /// Gives the block's buffer back (for reuse).
    pub fn into_data(self) -> D {
        self.data
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
    /// flags); the caller must then call `tail`.
    #[inline(always)]
    fn head(&mut self) -> Result<Option<(SpanHead, u8)>, CorruptBlock> {
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
        self.tail(flags, None, None)?;
        Ok(Some(h))
    }

    /// Calls `f` with the fixed fields of every span left in the block,
    /// skipping status texts and tags: the spans [`BlockDecoder::next_head`]
    /// gives one by one, decoded in one tight loop with the decoder's state
    /// in registers (the fast path of statistics). A corrupt span ends the
    /// block: `f` has then seen every span before it, and the error is
    /// returned. Fields `f` does not read cost only their skipping.
    ///
    /// A span that starts at least 136 bytes before the end of the block
    /// reads its fixed fields from a fixed-size window of the block, without
    /// a bounds check per field; the last spans of a block take the checked
    /// reads.
    #[inline(always)]
    pub fn for_each_head(&mut self, mut f: impl FnMut(&SpanHead)) -> Result<(), CorruptBlock> {
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

    #[test]
    fn round_trip_every_field() {
        let spans: Vec<BlockSpan> = (1..200).map(sample).collect();
        let data = encode(&spans);
        let mut d = BlockDecoder::new(&data[..], true).unwrap();
        let mut s = BlockSpan::default();
        let mut out = vec![];
        while d.next_into(&mut s).unwrap() {
            out.push(s.clone());
        }
        assert_eq!(out, spans);
    }

    /// The reused buffer gives the same bytes as a fresh encoder, for
    /// counts of every header length, extreme field values included.
    #[test]
    fn reused_encoder_writes_the_same_blocks() {
        let mut spans: Vec<BlockSpan> = (1..300).map(sample).collect();
        spans[7].head.dur_ns = u64::MAX;
        spans[8].head.start_ns = i64::MIN;
        spans[9].head.id = u64::MAX;
        spans[10].head.thread = u32::MAX;
        let mut reused = BlockEncoder::new();
        for n in [0, 1, 127, 128, 299] {
            reused.clear();
            let mut tails = Vec::new();
            for s in &spans[..n] {
                tails.clear();
                let flags = encode_tail(&s.status, &s.tags, &mut tails);
                reused.push_encoded(&s.head, (flags, &tails));
            }
            let fresh = encode(&spans[..n]);
            assert_eq!(reused.block(), &fresh[..], "{n} spans");
            // A block read twice is the same.
            assert_eq!(reused.block(), &fresh[..], "{n} spans");
        }
    }

    #[test]
    fn skipping_tags_keeps_other_fields() {
        let spans: Vec<BlockSpan> = (1..50).map(sample).collect();
        let data = encode(&spans);
        let mut d = BlockDecoder::new(&data[..], false).unwrap();
        let mut s = BlockSpan::default();
        let mut n = 0;
        while d.next_into(&mut s).unwrap() {
            assert!(s.tags.is_empty());
            assert_eq!(s.head.dur_ns, spans[n].head.dur_ns);
            assert_eq!(s.status, spans[n].status);
            n += 1;
        }
        assert_eq!(n, spans.len());
    }

    #[test]
    fn next_into_where_decodes_the_kept_spans_whole_and_skips_the_others() {
        let spans: Vec<BlockSpan> = (1..200).map(sample).collect();
        let data = encode(&spans);
        let keep = |h: &SpanHead| h.id % 3 != 1;
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
        let want: Vec<BlockSpan> = spans.into_iter().filter(|s| keep(&s.head)).collect();
        assert_eq!(kept, want);
        // A block cut inside a skipped span's tags is still an error.
        for cut in 0..data.len() {
            if let Ok(mut d) = BlockDecoder::new(&data[..cut], true) {
                let mut res = Ok(Some(true));
                while let Ok(Some(_)) = res {
                    res = d.next_into_where(&mut s, |_| false);
                }
                assert!(res.is_err(), "truncation at {cut} must be detected");
            }
        }
    }

    #[test]
    fn truncated_or_garbage_blocks_are_errors_not_panics() {
        let spans: Vec<BlockSpan> = (1..50).map(sample).collect();
        let data = encode(&spans);
        for cut in 0..data.len() {
            let part = &data[..cut];
            if let Ok(mut d) = BlockDecoder::new(part, true) {
                let mut s = BlockSpan::default();
                let mut res = Ok(true);
                while let Ok(true) = res {
                    res = d.next_into(&mut s);
                }
                assert!(res.is_err(), "truncation at {cut} must be detected");
            }
        }
        assert!(BlockDecoder::new(&b""[..], true).is_err());
        assert!(BlockDecoder::new(&[9u8, 1, 2][..], true).is_err());
        let mut junk = vec![BLOCK_VERSION, 5];
        junk.extend(std::iter::repeat_n(0xff, 40));
        let mut d = BlockDecoder::new(&junk[..], true).unwrap();
        assert!(d.next_into(&mut BlockSpan::default()).is_err());
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

    fn heads_in_one_loop(data: &[u8]) -> (Vec<SpanHead>, bool) {
        let mut d = BlockDecoder::new(data, false).unwrap();
        let mut out = vec![];
        let err = d.for_each_head(|h| out.push(*h)).is_err();
        assert_eq!(d.remaining(), 0);
        (out, err)
    }

    #[test]
    fn for_each_head_equals_next_head_on_whole_cut_and_damaged_blocks() {
        // Values of every varint length, both signs of deltas, every flag.
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
        let data = encode(&spans);
        let (all, err) = heads_in_one_loop(&data);
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
        for cut in 2..data.len() {
            let part = &data[..cut];
            if BlockDecoder::new(part, false).is_ok() {
                assert_eq!(heads_in_one_loop(part), heads_one_by_one(part), "cut {cut}");
            }
        }
        for at in 2..data.len().min(400) {
            for byte in [0x00, 0x7f, 0x80, 0xff, 0x03, 0x43] {
                let mut bad = data.clone();
                bad[at] = byte;
                assert_eq!(
                    heads_in_one_loop(&bad),
                    heads_one_by_one(&bad),
                    "{byte:#x} at {at}"
                );
            }
        }
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
        let data = encode(&spans);
        let (heads, err) = heads_in_one_loop(&data);
        assert!(!err);
        let want: Vec<SpanHead> = spans
            .iter()
            .map(|s| SpanHead {
                error: s.status.is_error(),
                ..s.head
            })
            .collect();
        assert_eq!(heads, want);
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
        let data = encode(&spans);
        let per = data.len() as f64 / spans.len() as f64;
        assert!(per < 20.0, "{per} bytes per span");
    }
}
