//! A fast path for the common shape of a ferret-io row.
//!
//! ferret-io writes each span as one small JSON object. Parsing it with
//! serde_json costs most of an analysis of a ferret-io file, so rows are
//! first read by this scanner, which handles exactly the common case and
//! declines everything else: a row that is not pure ASCII, a string with an
//! escape or a control character, a number out of range, a duplicate or
//! missing field, a nesting deeper than [`MAX_DEPTH`], or anything that is
//! not valid JSON. A declined row goes to serde_json, so the verdict on a
//! row (a span, or malformed) never depends on which path read it.
//!
//! Numbers are parsed with the standard library's correctly rounded parser;
//! serde_json is built with `float_roundtrip`, so both paths give the same
//! bits (and the same as Python's `json`, which wrote them).

/// The fields of a span row that the summary needs (tags are validated and
/// skipped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FastRow<'a> {
    pub span_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub run_id: &'a str,
    pub name: &'a str,
    pub start_time: f64,
    pub duration: Option<f64>,
    pub status: Option<&'a str>,
}

/// Powers of ten exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Deepest nesting the scanner follows inside a value (serde_json allows
/// 128; deeper rows are left to it).
const MAX_DEPTH: u32 = 16;

/// Reads `row` if it has the common shape; `None` means "ask serde_json".
pub(super) fn parse(row: &[u8]) -> Option<FastRow<'_>> {
    // Outside strings the grammar admits only ASCII, and `string` declines
    // any byte above 0x7f: an accepted row is all ASCII.
    let mut c = Cursor { b: row, i: 0 };
    let mut seen = 0u8;
    let mut once = |bit: u8| -> Option<()> {
        if seen & bit != 0 {
            return None; // a duplicate field: serde_json rejects the row
        }
        seen |= bit;
        Some(())
    };
    let (mut span_id, mut parent_id, mut run_id, mut name) = (None, None, None, None);
    let (mut start_time, mut duration, mut status) = (None, None, None);
    c.ws();
    c.eat(b'{')?;
    c.ws();
    loop {
        let key = c.string()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        match key {
            "span_id" => {
                once(1)?;
                span_id = Some(c.string()?);
            }
            "parent_id" => {
                once(2)?;
                parent_id = c.nullable(Cursor::string)?;
            }
            "run_id" => {
                once(4)?;
                run_id = Some(c.string()?);
            }
            "name" => {
                once(8)?;
                name = Some(c.string()?);
            }
            "start_time" => {
                once(16)?;
                start_time = Some(c.number()?);
            }
            "duration" => {
                once(32)?;
                duration = c.nullable(Cursor::number)?;
            }
            "status" => {
                once(64)?;
                status = c.nullable(Cursor::string)?;
            }
            "tags" => {
                once(128)?;
                c.skip_value(0)?;
            }
            _ => c.skip_value(0)?,
        }
        c.ws();
        match c.next()? {
            b',' => c.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    c.ws();
    if c.i != row.len() {
        return None;
    }
    Some(FastRow {
        span_id: span_id?,
        parent_id,
        run_id: run_id?,
        name: name?,
        start_time: start_time?,
        duration,
        status,
    })
}

/// A slice of the row as `&str`.
#[inline(always)]
fn ascii(b: &[u8]) -> &str {
    debug_assert!(b.is_ascii());
    // SAFETY: callers pass only bytes the scanner checked to be ASCII
    // (string contents below 0x80, number digits), which is UTF-8.
    unsafe { std::str::from_utf8_unchecked(b) }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is zero (exact for the lowest one).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Skips JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, as `&str`.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let b = self.b;
        let mut i = start;
        // Eight bytes at a time: stop at a quote, a backslash, a control
        // character or a byte above 0x7f. (Each test flags its lowest
        // matching byte exactly; false flags only ever lie above a true one.)
        while i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            let m = zero_bytes(w ^ (LO * b'"' as u64))
                | zero_bytes(w ^ (LO * b'\\' as u64))
                | (w.wrapping_sub(LO * 0x20) & !w & HI)
                | (w & HI);
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while i < b.len() && b[i] != b'"' && b[i] != b'\\' && (0x20..0x80).contains(&b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        Some(ascii(&b[start..i]))
    }

    /// `null`, or what `f` reads.
    #[inline]
    fn nullable<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(None)
        } else {
            f(self).map(Some)
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// The extent of a number in strict JSON grammar.
    #[inline]
    fn number_text(&mut self) -> Option<&'a str> {
        let start = self.i;
        let digits = |c: &mut Self| -> usize {
            let s = c.i;
            while let Some(b'0'..=b'9') = c.peek() {
                c.i += 1;
            }
            c.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(ascii(&self.b[start..self.i]))
    }

    /// A finite number (serde_json rejects out-of-range numbers it decodes).
    ///
    /// Decimals of at most 15 significant digits without an exponent (what
    /// Python's `repr` of a timestamp or a duration mostly is) take the
    /// exact fast path: an integer below 2^53 divided by a power of ten
    /// below 10^23, both exact in an f64, so the one rounding of the
    /// division gives the correctly rounded value. Anything else goes to the
    /// standard library's parser.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let b = self.b;
        let start = self.i;
        let neg = b.get(start) == Some(&b'-');
        let mut i = start + neg as usize;
        let (mut m, mut digits, mut frac) = (0u64, 0u32, 0u32);
        let int_start = i;
        while let Some(d @ b'0'..=b'9') = b.get(i) {
            m = m.wrapping_mul(10).wrapping_add((d - b'0') as u64);
            digits += 1;
            i += 1;
        }
        // JSON: at least one integer digit, and no leading zero.
        if digits == 0 || (b[int_start] == b'0' && digits > 1) {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while let Some(d @ b'0'..=b'9') = b.get(i) {
                m = m.wrapping_mul(10).wrapping_add((d - b'0') as u64);
                digits += 1;
                frac += 1;
                i += 1;
            }
            if frac == 0 {
                return None;
            }
        }
        let v = if matches!(b.get(i), Some(b'e' | b'E')) || digits > 19 || m > 1 << 53 || frac > 22
        {
            self.i = start;
            self.number_text()?.parse().ok()?
        } else {
            self.i = i;
            let v = m as f64 / POW10[frac as usize];
            if neg {
                -v
            } else {
                v
            }
        };
        v.is_finite().then_some(v)
    }

    /// Validates and skips any JSON value.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => self.number_text().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"span_id":"53a9c414e1294eb2ad8d78d077247b29","parent_id":"6e9d4c2b5af445709d62b161d6b08beb","run_id":"semantic_demo_v1","name":"db_fetch","start_time":1795711277.765459,"end_time":1795711277.7798543,"duration":0.01439523696899414,"tags":{"table":"users","shard_id":1,"cache_hit":true},"status":"ok"}"#;

    #[test]
    fn reads_a_ferret_io_row() {
        let r = parse(ROW.as_bytes()).expect("common shape");
        assert_eq!(r.span_id, "53a9c414e1294eb2ad8d78d077247b29");
        assert_eq!(r.parent_id, Some("6e9d4c2b5af445709d62b161d6b08beb"));
        assert_eq!(r.run_id, "semantic_demo_v1");
        assert_eq!(r.name, "db_fetch");
        assert_eq!(r.start_time, 1795711277.765459);
        assert_eq!(r.duration, Some(0.01439523696899414));
        assert_eq!(r.status, Some("ok"));
    }

    #[test]
    fn reads_nulls_whitespace_and_unknown_fields() {
        let row = r#" { "span_id" : "a", "parent_id": null, "run_id": "r", "name": "n",
            "start_time": 1e3, "duration": null, "status": null, "tags": null,
            "extra": [1, -2.5e-3, {"x": [true, false, null]}, "s"] } "#;
        let r = parse(row.as_bytes()).expect("common shape");
        assert_eq!(r.parent_id, None);
        assert_eq!(r.start_time, 1000.0);
        assert_eq!(r.duration, None);
        assert_eq!(r.status, None);
    }

    #[test]
    fn declines_what_it_does_not_read_exactly() {
        let declined = [
            r#"{"span_id":"a\"b","run_id":"r","name":"n","start_time":1}"#, // escape
            r#"{"span_id":"é","run_id":"r","name":"n","start_time":1}"#,    // not ASCII
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":1e999}"#, // out of range
            r#"{"span_id":"a","span_id":"b","run_id":"r","name":"n","start_time":1}"#, // duplicate
            r#"{"span_id":"a","run_id":"r","start_time":1}"#,               // missing name
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":"1"}"#,  // wrong type
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":01}"#,   // bad number
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":1,}"#,   // trailing comma
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":1} x"#,  // trailing text
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":1,"tags":{"a":tru}}"#,
            "{\"span_id\":\"a\tb\",\"run_id\":\"r\",\"name\":\"n\",\"start_time\":1}", // control
            r#"{"span_id":"a","run_id":"r","name":"n","start_time":1"#,                // truncated
            "",
            "{}",
        ];
        for row in declined {
            assert_eq!(parse(row.as_bytes()), None, "{row}");
        }
    }

    #[test]
    fn numbers_match_the_standard_parser_bit_for_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "12.5",
            "0.1",
            "0.3",
            "1795711277.664244",
            "0.01439523696899414",
            "0.10082197189331055",
            "9007199254740993",
            "9007199254740992.5",
            "123456789012345678901234",
            "1e3",
            "-2.5E-3",
            "1.5e+300",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            let r = next();
            let int = r % 10_000_000_000;
            let frac_digits = (r >> 40) % 20;
            let frac = next() % 10u64.pow(frac_digits as u32).max(1);
            let sign = if r >> 63 == 1 { "-" } else { "" };
            texts.push(if frac_digits == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac:0w$}", w = frac_digits as usize)
            });
        }
        for t in texts {
            let mut c = Cursor {
                b: t.as_bytes(),
                i: 0,
            };
            let got = c.number().expect(&t);
            assert_eq!(c.i, t.len(), "{t}");
            let want: f64 = t.parse().unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{t}");
        }
        for bad in ["01", "-", "1.", ".5", "-.5", "1e", "1e+", "--1", "1e999"] {
            let mut c = Cursor {
                b: bad.as_bytes(),
                i: 0,
            };
            let ok = c.number().is_some() && c.i == bad.len();
            assert!(!ok, "{bad}");
        }
    }

    #[test]
    fn stops_at_a_quote_in_any_position_of_a_word() {
        for pad in 0..20 {
            let s = "x".repeat(pad);
            let row = format!(
                r#"{{"span_id":"{s}","run_id":"r{s}","name":"{s}y","start_time":2.5,"duration":0.5}}"#
            );
            let r = parse(row.as_bytes()).expect("common shape");
            assert_eq!(r.span_id, s);
            assert_eq!(r.run_id, format!("r{s}"));
            assert_eq!(r.name, format!("{s}y"));
            assert_eq!(r.duration, Some(0.5));
        }
    }
}
