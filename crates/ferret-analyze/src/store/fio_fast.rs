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
//! Numbers are checked against JSON's grammar here, then read by the
//! standard library's parser (correctly rounded); serde_json is built with
//! `float_roundtrip`, so both paths give the same bits (and the same as
//! Python's `json`, which wrote them).

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

/// Deepest nesting the scanner follows inside a value (serde_json allows
/// 128; deeper rows are left to it).
const MAX_DEPTH: u32 = 16;

/// Reads `row` if it has the common shape; `None` means "ask serde_json".
pub(super) fn parse(row: &[u8]) -> Option<FastRow<'_>> {
    canonical(row).or_else(|| general(row))
}

/// Reads `row` if it is laid out exactly as ferret-io writes it: compact
/// separators, these fields in this order, no others. Each key is then one
/// fixed comparison, not a string scan and a match. Anything else (or a
/// value [`general`] would read differently, e.g. an `end_time` that is not
/// a number) is left to [`general`].
#[inline]
fn canonical(row: &[u8]) -> Option<FastRow<'_>> {
    let mut c = Cursor { b: row, i: 0 };
    c.literal(b"{\"span_id\":")?;
    let span_id = c.string()?;
    c.literal(b",\"parent_id\":")?;
    let parent_id = c.nullable(Cursor::string)?;
    c.literal(b",\"run_id\":")?;
    let run_id = c.string()?;
    c.literal(b",\"name\":")?;
    let name = c.string()?;
    c.literal(b",\"start_time\":")?;
    let start_time = c.number()?;
    c.literal(b",\"end_time\":")?;
    c.nullable(Cursor::number_text)?;
    c.literal(b",\"duration\":")?;
    let duration = c.nullable(Cursor::number)?;
    c.literal(b",\"tags\":")?;
    c.skip_value(0)?;
    c.literal(b",\"status\":")?;
    let status = c.nullable(Cursor::string)?;
    c.literal(b"}")?;
    (c.i == row.len()).then_some(FastRow {
        span_id,
        parent_id,
        run_id,
        name,
        start_time,
        duration,
        status,
    })
}

/// Reads any row of the common shape: fields in any order, with any JSON
/// whitespace, unknown fields validated and skipped.
fn general(row: &[u8]) -> Option<FastRow<'_>> {
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

/// High bit set in each byte of `w` that is not an ASCII digit (exact
/// for the lowest one): a byte below `'0'` sets its high bit in the
/// difference, one above `'9'` in the sum. A borrow or carry crossing
/// bytes only starts at a byte already flagged, so it can only add flags
/// above the lowest true one.
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    (w.wrapping_add(LO * 0x46) | w.wrapping_sub(LO * b'0' as u64)) & HI
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

    #[inline(always)]
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// Skips the ASCII digits at the cursor, eight at a time while it
    /// can; returns how many there were.
    #[inline(always)]
    fn digits(&mut self) -> usize {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        while let Some(w) = b.get(i..i + 8) {
            let flags = non_digits(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            if flags != 0 {
                i += (flags.trailing_zeros() / 8) as usize;
                self.i = i;
                return i - start;
            }
            i += 8;
        }
        while let Some(b'0'..=b'9') = b.get(i) {
            i += 1;
        }
        self.i = i;
        i - start
    }

    /// The extent of a number in strict JSON grammar: an optional `-`, an
    /// integer part without a leading zero, an optional fraction and
    /// exponent, each with at least one digit. (Rust's float syntax is
    /// wider: `+1`, `1.`, `.5`, `01`, `inf`, `NaN` are not JSON.)
    #[inline]
    fn number_text(&mut self) -> Option<&'a str> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(ascii(&self.b[start..self.i]))
    }

    /// A finite number (serde_json rejects out-of-range numbers it decodes):
    /// its text checked by [`Self::number_text`], its value read by the
    /// standard library's parser, which rounds correctly (Eisel-Lemire,
    /// then exact big-decimal arithmetic when that cannot decide). A
    /// correctly rounded result is unique, so this gives the bits serde_json
    /// (with `float_roundtrip`) and Python give.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let v: f64 = self.number_text()?.parse().ok()?;
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
    fn the_exact_layout_reads_as_the_general_scanner_reads_it() {
        let rows = [
            ROW.to_owned(),
            ROW.replace(r#""6e9d4c2b5af445709d62b161d6b08beb""#, "null")
                .replace("0.01439523696899414", "null")
                .replace("1795711277.7798543", "null")
                .replace(r#""ok""#, "null"),
            ROW.replace("0.01439523696899414", "5.4849378663634936e-05"),
        ];
        let mut canonical_rows = 0;
        for row in &rows {
            let b = row.as_bytes();
            assert!(canonical(b).is_some(), "{row}");
            // Damaged copies: the exact layout either declines or agrees.
            for i in 0..b.len() {
                let mut variants = vec![b[..i].to_vec()];
                let mut cut = b.to_vec();
                cut.remove(i);
                variants.push(cut);
                for &c in b"\"\\{}[],:0.e-n x\x01\xc3" {
                    let mut v = b.to_vec();
                    v[i] = c;
                    variants.push(v);
                    let mut v = b.to_vec();
                    v.insert(i, c);
                    variants.push(v);
                }
                for v in variants {
                    if let Some(fast) = canonical(&v) {
                        canonical_rows += 1;
                        assert_eq!(Some(fast), general(&v), "{}", String::from_utf8_lossy(&v));
                    }
                }
            }
        }
        assert!(canonical_rows > 500);
        // Reordered or spaced rows are for the general scanner.
        let spaced = ROW.replace(",\"", ", \"");
        assert!(canonical(spaced.as_bytes()).is_none());
        assert_eq!(parse(spaced.as_bytes()), parse(ROW.as_bytes()));
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
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
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
        for t in &texts {
            // Finite, so `same_as_std` requires the fast parser to read it.
            assert!(t.parse::<f64>().unwrap().is_finite(), "{t}");
            same_as_std(t);
        }
        for bad in [
            "01", "-", "1.", ".5", "-.5", "1e", "1e+", "--1", "1e999", "-1e400",
        ] {
            let mut c = Cursor {
                b: bad.as_bytes(),
                i: 0,
            };
            let ok = c.number().is_some() && c.i == bad.len();
            assert!(!ok, "{bad}");
        }
    }

    /// A xorshift64 generator of test values from `seed`.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// `t` read by [`Cursor::number`], checked against the standard
    /// parser and serde_json bit for bit (and that the whole text was
    /// consumed).
    fn same_as_std(t: &str) {
        let mut c = Cursor {
            b: t.as_bytes(),
            i: 0,
        };
        let want: f64 = t.parse().unwrap();
        match c.number() {
            Some(got) => {
                assert_eq!(got.to_bits(), want.to_bits(), "{t}");
                assert_eq!(c.i, t.len(), "{t}");
                // serde_json's own parser (the slow path) reads it alike;
                // it may drop the sign of a zero, which no time keeps.
                let serde: f64 = serde_json::from_str(t).unwrap();
                assert!(
                    serde.to_bits() == want.to_bits() || (serde == 0.0 && want == 0.0),
                    "{t}: serde_json {serde}"
                );
            }
            None => assert!(!want.is_finite(), "{t}"),
        }
    }

    #[test]
    fn long_significands_and_exponents_match_the_standard_parser() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let fixed = [
            "1795711277.0",
            "1795711044.5923035",
            "1005.4370875358582",
            "0.0012824593289311886",
            "5.4849378663634936e-05",
            "-5.4849378663634936E-05",
            "1.7976931348623157e308",
            "2.2250738585072014e-308",
            "4.9e-324",
            "1e-400",
            "9007199254740993",
            "9007199254740995",
            "18014398509481986",
            "18014398509481990",
            "4503599627370496.5",
            "4503599627370497.5",
            "2251799813685248.25",
            "2251799813685248.75",
            "9999999999999999999",
            "10000000000000000000",
            "18446744073709551615",
            "18446744073709551616",
            "1234567890123456789012345678901234567890",
            "0.000000000000000000000000000000000000000000000000000000000000000001",
            "1e-64",
            "1e-65",
            "1e32",
            "1e33",
            "123456789e-70",
            "7e+0022",
            "7e-00000000000000000000000022",
            "1e99999999999999999999",
            "0e99999999999999999999",
            "-0e-5",
            "0.000",
        ];
        for t in fixed {
            same_as_std(t);
        }
        // Exact ties between two f64s (round half to even): integers past
        // 2^53, and halves, quarters, ... just below it.
        for _ in 0..20_000 {
            let a = (1u128 << 52) | (next() as u128 & ((1 << 52) - 1));
            let k = next() % 11;
            same_as_std(&(((2 * a + 1) << k).to_string()));
            let t = (next() % 5 + 1) as u32;
            let n = ((2 * a + 1) * 5u128.pow(t)) >> (next() % 2);
            let digits = n.to_string();
            let (int, frac) = digits.split_at(digits.len() - t as usize);
            same_as_std(&format!("{int}.{frac}"));
        }
        // Random doubles written as Python's repr writes them (shortest
        // round trip), in exponent form, and with too many digits.
        for _ in 0..100_000 {
            let r = next();
            let exp = 1023 - 80 + (r >> 52) % 150; // about 1e-24 .. 1e21
            let x = f64::from_bits((r & ((1 << 52) - 1)) | exp << 52);
            let x = if next().is_multiple_of(4) { -x } else { x };
            same_as_std(&format!("{x}"));
            same_as_std(&format!("{x:e}"));
            same_as_std(&format!("{x:E}"));
            same_as_std(&format!("{x:.prec$}", prec = (next() % 24) as usize));
            same_as_std(&format!("{x:.prec$e}", prec = (next() % 22) as usize));
        }
        // Random digit strings: 1 to 22 digits, a point anywhere, an
        // exponent or not.
        for _ in 0..100_000 {
            let len = 1 + (next() % 22) as usize;
            let mut d: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            if d.len() > 1 && d.starts_with('0') {
                d.replace_range(..1, "1");
            }
            let point = (next() % (len as u64 + 1)) as usize;
            let mut t = if point == 0 || point == len {
                d
            } else if next().is_multiple_of(2) {
                format!("{}.{}", &d[..point], &d[point..])
            } else {
                format!("0.{}{}", "0".repeat(point), d)
            };
            if next().is_multiple_of(3) {
                let e = next() % 90;
                t = format!("{t}e{}{e}", ["", "+", "-"][(next() % 3) as usize]);
            }
            if next().is_multiple_of(2) {
                t.insert(0, '-');
            }
            same_as_std(&t);
        }
    }

    #[test]
    fn digit_runs_end_at_the_first_byte_that_is_not_a_digit() {
        // A run of digits then any byte (all 256 values), at every offset
        // of the eight-byte words and the tail: `digits` stops exactly
        // there, and `non_digits` flags that byte as the lowest one.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        for run in 0..20usize {
            for stop in 0..=255u8 {
                let mut b: Vec<u8> = (0..run).map(|_| b'0' + (next() % 10) as u8).collect();
                b.push(stop);
                b.extend((0..(next() % 9)).map(|_| next() as u8));
                let mut c = Cursor { b: &b, i: 0 };
                let want = if stop.is_ascii_digit() {
                    run + 1
                        + b[run + 1..]
                            .iter()
                            .take_while(|d| d.is_ascii_digit())
                            .count()
                } else {
                    run
                };
                assert_eq!(c.digits(), want, "{b:?}");
                assert_eq!(c.i, want);
                if want + 8 <= b.len() {
                    let w = u64::from_le_bytes(b[want..want + 8].try_into().unwrap());
                    assert_eq!(non_digits(w).trailing_zeros(), 7, "{b:?}");
                }
            }
        }
    }

    #[test]
    fn declines_number_syntax_that_rust_reads_but_json_does_not() {
        // Each is read by `str::parse::<f64>` (or is a prefix of such a
        // text), so only the grammar check keeps it out.
        for bad in [
            "+1", "inf", "-inf", "NaN", "nan", "infinity", "Infinity", "1.", ".5", "-.5", "1.e5",
            "01", "-01", "00", "1e", "1E+", "+.5e1", "0x10", "1_000",
        ] {
            let mut c = Cursor {
                b: bad.as_bytes(),
                i: 0,
            };
            let ok = c.number().is_some() && c.i == bad.len();
            assert!(!ok, "{bad}");
            let row = format!(
                r#"{{"span_id":"a","run_id":"r","name":"n","start_time":{bad},"duration":null}}"#
            );
            assert_eq!(parse(row.as_bytes()), None, "{row}");
            let row =
                format!(r#"{{"span_id":"a","run_id":"r","name":"n","start_time":1,"x":{bad}}}"#);
            assert_eq!(parse(row.as_bytes()), None, "{row}");
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
