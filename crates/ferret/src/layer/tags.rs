//! A tracing span's tags while it is open, kept without an allocation per
//! tag: keys are the fields' `&'static str` names, static strings (the
//! target) are borrowed, and formatted text (`Debug` values, errors) goes
//! into one string per span. At close they are encoded straight into the
//! block's tail format (see `store::codec`), one allocation for the lot.

/// Status bits and tag flag of a span's flags byte (docs/FORMAT.md).
const ST_ERROR: u8 = 1;
const F_TAGS: u8 = 1 << 6;
/// Tags kept in place before spilling to a vector.
const INLINE: usize = 4;

/// One tag value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Val {
    /// A string that lives as long as the program.
    Static(&'static str),
    /// A range of the span's text buffer.
    Text {
        start: u32,
        len: u32,
    },
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl From<u64> for Val {
    fn from(x: u64) -> Val {
        // Like `TagValue::from(u64)`: the same stored bytes as before.
        if x <= i64::MAX as u64 {
            Val::I64(x as i64)
        } else {
            Val::U64(x)
        }
    }
}

/// Text bytes kept in place before moving to the heap (enough for
/// tower-http's method, URI and version fields).
const TEXT_INLINE: usize = 64;

/// The text of a span's string values: in place while short, else on the
/// heap (all of it, so that ranges stay valid).
struct Text {
    inline: [u8; TEXT_INLINE],
    len: usize,
    heap: Option<String>,
}

impl Text {
    fn len(&self) -> usize {
        self.heap.as_ref().map_or(self.len, String::len)
    }

    /// The bytes of a range written before (whole `str`s: valid UTF-8).
    fn get(&self, start: usize, len: usize) -> Option<&[u8]> {
        match &self.heap {
            Some(h) => h.as_bytes().get(start..start + len),
            None => self.inline.get(start..start + len),
        }
    }

    /// Forgets the bytes from `n` on (`n`: where a whole `str` began).
    fn truncate(&mut self, n: usize) {
        match &mut self.heap {
            Some(h) if h.is_char_boundary(n) => h.truncate(n),
            Some(_) => {}
            None => self.len = self.len.min(n),
        }
    }
}

/// Text bytes from which [`Tags::set_text`] checks how much of the text
/// is still some tag's value.
const TEXT_COMPACT_FROM: usize = 256;

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if let Some(h) = &mut self.heap {
            h.push_str(s);
        } else if self.len + s.len() <= TEXT_INLINE {
            self.inline[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            // Whole strs only were written: the bytes so far are UTF-8.
            let mut h = String::with_capacity((self.len + s.len()).max(2 * TEXT_INLINE));
            h.push_str(std::str::from_utf8(&self.inline[..self.len]).unwrap_or(""));
            h.push_str(s);
            self.heap = Some(h);
        }
        Ok(())
    }
}

/// A span's status and tags. The target and the two tags the layer adds at
/// close (`busy_ns`, `detached`) are not stored as entries: [`seal`](Self::seal)
/// writes them, so that the entries in place suffice for most spans'
/// fields (a span's state is copied and allocated whole: smaller is cheaper).
pub(super) struct Tags {
    target: Option<&'static str>,
    inline: [(&'static str, Val); INLINE],
    len: usize,
    spill: Vec<(&'static str, Val)>,
    text: Text,
    error: bool,
}

impl Default for Tags {
    fn default() -> Tags {
        Tags {
            target: None,
            inline: [("", Val::Bool(false)); INLINE],
            len: 0,
            spill: Vec::new(),
            text: Text {
                inline: [0; TEXT_INLINE],
                len: 0,
                heap: None,
            },
            error: false,
        }
    }
}

impl Tags {
    fn slot(&mut self, key: &str) -> Option<&mut Val> {
        let (a, b) = (&mut self.inline[..self.len], &mut self.spill);
        a.iter_mut()
            .chain(b.iter_mut())
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Sets the tag `target`, written first.
    pub(super) fn set_target(&mut self, target: &'static str) {
        self.target = Some(target);
    }

    /// Adds or replaces a tag.
    pub(super) fn set(&mut self, key: &'static str, v: Val) {
        if let Some(slot) = self.slot(key) {
            *slot = v;
        } else if self.len < INLINE {
            self.inline[self.len] = (key, v);
            self.len += 1;
        } else {
            self.spill.push((key, v));
        }
    }

    /// Adds or replaces a tag whose value is text written by `f`.
    ///
    /// A replaced value's text is dropped when it was the last written (a
    /// field recorded again and again), and the text is compacted when
    /// most of it is replaced values: a span open for hours that records
    /// a text field in a loop keeps one value, not all of them.
    pub(super) fn set_text(&mut self, key: &'static str, f: impl FnOnce(&mut dyn std::fmt::Write)) {
        if let Some(&mut Val::Text { start, len }) = self.slot(key) {
            if (start + len) as usize == self.text.len() {
                self.text.truncate(start as usize);
            }
        }
        let start = self.text.len();
        f(&mut self.text);
        let len = self.text.len() - start;
        self.set(
            key,
            Val::Text {
                start: start as u32,
                len: len as u32,
            },
        );
        if self.text.len() >= TEXT_COMPACT_FROM {
            self.compact_text();
        }
    }

    /// Rewrites the text with only the values of tags, when they are
    /// less than half of it.
    fn compact_text(&mut self) {
        let live: usize = self
            .iter()
            .map(|(_, v)| match v {
                Val::Text { len, .. } => *len as usize,
                _ => 0,
            })
            .sum();
        if 2 * live >= self.text.len() {
            return;
        }
        let mut fresh = Text {
            inline: [0; TEXT_INLINE],
            len: 0,
            heap: None,
        };
        let (old, n) = (&self.text, self.len);
        for (_, v) in self.inline[..n].iter_mut().chain(self.spill.iter_mut()) {
            if let Val::Text { start, len } = v {
                let bytes = old.get(*start as usize, *len as usize).unwrap_or(b"");
                let at = fresh.len();
                let _ = std::fmt::Write::write_str(
                    &mut fresh,
                    std::str::from_utf8(bytes).unwrap_or(""),
                );
                (*start, *len) = (at as u32, (fresh.len() - at) as u32);
            }
        }
        self.text = fresh;
    }

    /// Adds or replaces a tag with the `Debug` text of `value`.
    pub(super) fn set_debug(&mut self, key: &'static str, value: &dyn std::fmt::Debug) {
        self.set_text(key, |s| {
            let _ = write!(s, "{value:?}");
        });
    }

    /// Whether a tag named `key` is set.
    pub(super) fn has(&self, key: &str) -> bool {
        self.iter().any(|(k, _)| *k == key)
    }

    /// Marks the span as an error.
    pub(super) fn set_error_status(&mut self) {
        self.error = true;
    }

    fn iter(&self) -> impl Iterator<Item = &(&'static str, Val)> {
        self.inline[..self.len].iter().chain(self.spill.iter())
    }

    /// The bytes of a text value (empty for other values).
    fn text_of(&self, v: &Val) -> &[u8] {
        match *v {
            Val::Static(s) => s.as_bytes(),
            Val::Text { start, len } => self.text.get(start as usize, len as usize).unwrap_or(b""),
            _ => b"",
        }
    }

    /// Appends the tail as a block stores it (the flag byte, then the
    /// bytes) to `out`, or nothing for a plain ok span without tags: the
    /// target, the fields, then `busy_ns`, `self_busy_ns` and `detached =
    /// true` if given.
    pub(super) fn write_tail(
        &self,
        busy_ns: Option<u64>,
        self_busy_ns: Option<u64>,
        detached: bool,
        out: &mut Vec<u8>,
    ) {
        let n = self.len
            + self.spill.len()
            + usize::from(self.target.is_some())
            + usize::from(busy_ns.is_some())
            + usize::from(self_busy_ns.is_some())
            + usize::from(detached);
        if n == 0 && !self.error {
            return;
        }
        let flags = if self.error { ST_ERROR } else { 0 } | if n > 0 { F_TAGS } else { 0 };
        out.push(flags);
        if n == 0 {
            return;
        }
        // One pass over room reserved for the longest encoding (a
        // varint takes at most 10 bytes), written through a raw cursor:
        // sizing the tags first and writing them with checked stores cost
        // twice the instructions.
        let mut room = 10;
        if let Some(t) = self.target {
            room += TAGGED + TARGET.len() + t.len();
        }
        for (k, v) in self.iter() {
            room += TAGGED + k.len() + self.text_of(v).len();
        }
        // busy_ns, self_busy_ns, detached: numbers and a bool.
        room += 3 * TAGGED + BUSY.len() + SELF_BUSY.len() + DETACHED.len();
        out.reserve(room);
        // SAFETY: the cursor writes at most `room` bytes (each tag at most
        // TAGGED bytes besides its key and text), all within the reserved
        // spare capacity, and every byte up to the new length is written.
        unsafe {
            let start = out.as_mut_ptr().add(out.len());
            let mut c = Cur(start);
            c.varint(n as u64);
            if let Some(t) = self.target {
                c.tag(TARGET, Val::Static(t), t.as_bytes());
            }
            for &(k, v) in self.iter() {
                c.tag(k, v, self.text_of(&v));
            }
            if let Some(b) = busy_ns {
                c.tag(BUSY, Val::from(b), b"");
            }
            if let Some(b) = self_busy_ns {
                c.tag(SELF_BUSY, Val::from(b), b"");
            }
            if detached {
                c.tag(DETACHED, Val::Bool(true), b"");
            }
            let written = c.0.offset_from(start) as usize;
            debug_assert!(written <= room);
            out.set_len(out.len() + written);
        }
    }
}

/// The most bytes a tag takes besides its key's and its text's: two
/// length varints, the type byte and a numeric value.
const TAGGED: usize = 10 + 1 + 10 + 10;

const TARGET: &str = "target";
const BUSY: &str = "busy_ns";
const SELF_BUSY: &str = "self_busy_ns";
const DETACHED: &str = "detached";

/// A write cursor over reserved room (see [`Tags::write_tail`]).
struct Cur(*mut u8);

impl Cur {
    /// # Safety
    /// Room for one byte.
    #[inline(always)]
    unsafe fn byte(&mut self, b: u8) {
        // SAFETY: the caller's.
        unsafe {
            self.0.write(b);
            self.0 = self.0.add(1);
        }
    }

    /// # Safety
    /// Room for 10 bytes.
    #[inline(always)]
    unsafe fn varint(&mut self, mut v: u64) {
        // SAFETY: the caller's; a u64 takes at most 10 bytes.
        unsafe {
            while v >= 0x80 {
                self.byte((v as u8) | 0x80);
                v >>= 7;
            }
            self.byte(v as u8);
        }
    }

    /// # Safety
    /// Room for 10 bytes and `s`.
    #[inline(always)]
    unsafe fn bytes(&mut self, s: &[u8]) {
        // SAFETY: the caller's.
        unsafe {
            self.varint(s.len() as u64);
            copy_short(s, self.0);
            self.0 = self.0.add(s.len());
        }
    }

    /// One tag: key, type byte, value; `text` is the value of a
    /// [`Val::Static`] or [`Val::Text`].
    ///
    /// # Safety
    /// Room for [`TAGGED`] bytes, the key and `text`.
    #[inline(always)]
    unsafe fn tag(&mut self, key: &str, v: Val, text: &[u8]) {
        // SAFETY: the caller's.
        unsafe {
            self.bytes(key.as_bytes());
            match v {
                Val::Static(_) | Val::Text { .. } => {
                    self.byte(0);
                    self.bytes(text);
                }
                Val::I64(i) => {
                    self.byte(1);
                    self.varint(((i << 1) ^ (i >> 63)) as u64);
                }
                Val::U64(u) => {
                    self.byte(2);
                    self.varint(u);
                }
                Val::F64(f) => {
                    self.byte(3);
                    std::ptr::copy_nonoverlapping(f.to_le_bytes().as_ptr(), self.0, 8);
                    self.0 = self.0.add(8);
                }
                Val::Bool(false) => self.byte(4),
                Val::Bool(true) => self.byte(5),
            }
        }
    }
}

/// Copies `s` to `dst`: short strings (keys, most values) with two
/// overlapping loads and stores instead of a call to `memcpy`.
///
/// # Safety
/// `dst` valid for `s.len()` bytes, not overlapping `s`.
#[inline(always)]
unsafe fn copy_short(s: &[u8], dst: *mut u8) {
    let (n, src) = (s.len(), s.as_ptr());
    // SAFETY: every read is within `s` and every write within the
    // `n` bytes at `dst`.
    unsafe {
        if (8..=16).contains(&n) {
            let a = src.cast::<u64>().read_unaligned();
            let b = src.add(n - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if (4..8).contains(&n) {
            let a = src.cast::<u32>().read_unaligned();
            let b = src.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else {
            std::ptr::copy_nonoverlapping(src, dst, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_format::codec::encode_tail;
    use ferret_format::{Status, TagValue};
    use std::borrow::Cow;

    /// The layer's encoding is byte for byte the codec's, for every kind of
    /// value, replaced keys, spilled tags, long tails and error status.
    #[test]
    fn same_bytes_as_the_codec() {
        let long = "x".repeat(300);
        let cases: Vec<Vec<(&'static str, TagValue)>> = vec![
            vec![],
            vec![("target", TagValue::Str("svc::db".into()))],
            vec![
                ("target", TagValue::Str("svc::db".into())),
                ("static", TagValue::Str("panicked".into())),
                ("n", TagValue::I64(3)),
            ],
            vec![
                ("a", TagValue::I64(-5)),
                ("b", TagValue::U64(u64::MAX)),
                ("c", TagValue::F64(0.25)),
                ("d", TagValue::Bool(true)),
                ("e", TagValue::Bool(false)),
                ("f", TagValue::Str("uri /users/7".into())),
            ],
            (0..12)
                .map(|i| {
                    let k: &'static str = [
                        "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11",
                    ][i];
                    (k, TagValue::I64(i as i64))
                })
                .collect(),
            vec![("long", TagValue::Str(long.clone()))],
            // Text that starts in place and moves to the heap midway.
            vec![
                ("a", TagValue::Str("y".repeat(60))),
                ("b", TagValue::Str("z".repeat(60))),
                ("c", TagValue::Str("é".repeat(40))),
            ],
        ];
        for error in [false, true] {
            for case in &cases {
                let mut t = Tags::default();
                for (k, v) in case {
                    match v {
                        TagValue::Str(s) if *k == "target" => {
                            t.set_target(Box::leak(s.clone().into_boxed_str()))
                        }
                        TagValue::Str(s) if *k == "static" => {
                            t.set(k, Val::Static(Box::leak(s.clone().into_boxed_str())))
                        }
                        TagValue::Str(s) => t.set_text(k, |o| {
                            let _ = o.write_str(s);
                        }),
                        TagValue::I64(i) => t.set(k, Val::I64(*i)),
                        TagValue::U64(u) => t.set(k, Val::U64(*u)),
                        TagValue::F64(f) => t.set(k, Val::F64(*f)),
                        TagValue::Bool(b) => t.set(k, Val::Bool(*b)),
                        _ => unreachable!(),
                    }
                }
                if error {
                    t.set_error_status();
                }
                let status = if error { Status::Error } else { Status::Ok };
                for (busy, self_busy, detached) in [
                    (None, None, false),
                    (Some(7), Some(3), false),
                    (Some(u64::MAX), Some(0), true),
                ] {
                    let mut tags: Vec<(Cow<'static, str>, TagValue)> = case
                        .iter()
                        .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
                        .collect();
                    if let Some(b) = busy {
                        tags.push((Cow::Borrowed("busy_ns"), TagValue::from(b)));
                    }
                    if let Some(b) = self_busy {
                        tags.push((Cow::Borrowed("self_busy_ns"), TagValue::from(b)));
                    }
                    if detached {
                        tags.push((Cow::Borrowed("detached"), TagValue::Bool(true)));
                    }
                    let mut want = Vec::new();
                    let want_flags = encode_tail(&status, &tags, &mut want);
                    // After other bytes: the tail is appended.
                    let mut out = vec![9, 9];
                    t.write_tail(busy, self_busy, detached, &mut out);
                    match &out[2..] {
                        [] => assert!(!error && tags.is_empty()),
                        [flags, bytes @ ..] => {
                            assert_eq!((*flags, bytes), (want_flags, &want[..]), "{tags:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn keys_and_texts_of_every_short_length_encode_as_the_codec_does() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        for n in 0..=40 {
            let key: &'static str = &text[40 - n..40];
            let mut t = Tags::default();
            t.set(key, Val::Static(&text[..n]));
            t.set_text("t", |w| {
                let _ = w.write_str(&text[n..]);
            });
            let tags = vec![
                (Cow::Borrowed(key), TagValue::Str(text[..n].into())),
                (Cow::Borrowed("t"), TagValue::Str(text[n..].into())),
            ];
            let mut want = Vec::new();
            encode_tail(&Status::Ok, &tags, &mut want);
            let mut out = Vec::new();
            t.write_tail(None, None, false, &mut out);
            assert_eq!(&out[1..], &want[..], "length {n}");
        }
    }

    /// A span that records text fields again and again (progress in a
    /// loop) keeps its text bounded, and still writes the last values.
    #[test]
    fn text_recorded_again_and_again_stays_bounded() {
        let mut t = Tags::default();
        t.set_text("fixed", |w| {
            let _ = w.write_str("set once");
        });
        for i in 0..10_000 {
            t.set_text("progress", |w| {
                let _ = write!(w, "item-{i}");
            });
            if i % 3 == 0 {
                t.set_debug("phase", &format!("phase {}", i % 7));
            }
            t.set("n", Val::I64(i));
            assert!(t.text.len() <= 512, "{} bytes", t.text.len());
        }
        let mut want = Vec::new();
        let tags = vec![
            (Cow::Borrowed("fixed"), TagValue::Str("set once".into())),
            (Cow::Borrowed("progress"), TagValue::Str("item-9999".into())),
            (Cow::Borrowed("phase"), TagValue::Str("\"phase 3\"".into())),
            (Cow::Borrowed("n"), TagValue::I64(9999)),
        ];
        encode_tail(&Status::Ok, &tags, &mut want);
        let mut out = Vec::new();
        t.write_tail(None, None, false, &mut out);
        assert_eq!(&out[1..], &want[..]);
    }

    #[test]
    fn a_repeated_key_replaces_its_value() {
        let mut t = Tags::default();
        t.set("late", Val::I64(42));
        t.set_debug("uri", &"/a");
        t.set("late", Val::I64(43));
        t.set_debug("uri", &"/b");
        let mut want = Vec::new();
        let tags = vec![
            (Cow::Borrowed("late"), TagValue::I64(43)),
            (Cow::Borrowed("uri"), TagValue::Str("\"/b\"".into())),
        ];
        encode_tail(&Status::Ok, &tags, &mut want);
        let mut out = Vec::new();
        t.write_tail(None, None, false, &mut out);
        assert_eq!(&out[1..], &want[..]);
        assert!(t.has("uri") && !t.has("url"));
    }
}
