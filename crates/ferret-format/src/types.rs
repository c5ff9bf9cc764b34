//! Plain data shared by the recorder and the readers: tag values and statuses.

use std::fmt;

/// A span's end in ns: `start_ns + dur_ns`, saturating at `i64::MAX`, a
/// duration past `i64::MAX` counting as `i64::MAX`. The one rule the
/// writer (for a block's `max_end`) and every reader use, so that a
/// damaged or absurd duration gives the same end everywhere.
///
/// ```
/// use ferret_format::span_end;
/// assert_eq!(span_end(1_000, 50), 1_050);
/// assert_eq!(span_end(1_000, u64::MAX), i64::MAX);
/// assert_eq!(span_end(-5, 3), -2);
/// ```
#[inline]
pub fn span_end(start_ns: i64, dur_ns: u64) -> i64 {
    start_ns.saturating_add(dur_ns.min(i64::MAX as u64) as i64)
}

/// The value of a span tag.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(untagged))]
pub enum TagValue {
    /// Text.
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer too large for `i64`.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// JSON null (ferret-io files only).
    Null,
    /// Any other JSON value (a list or an object in a ferret-io file), as JSON text.
    Json(String),
}

impl fmt::Display for TagValue {
    /// Formats the value the way ferret-io prints tags (Python's `str`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Str(s) => f.write_str(s),
            TagValue::I64(v) => write!(f, "{v}"),
            TagValue::U64(v) => write!(f, "{v}"),
            TagValue::F64(v) => {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
                    write!(f, "{v:.1}")
                } else {
                    write!(f, "{v}")
                }
            }
            TagValue::Bool(true) => f.write_str("True"),
            TagValue::Bool(false) => f.write_str("False"),
            TagValue::Null => f.write_str("None"),
            TagValue::Json(s) => f.write_str(s),
        }
    }
}

macro_rules! tag_from {
    ($($t:ty => $v:ident as $c:ty),*) => {$(
        impl From<$t> for TagValue {
            fn from(x: $t) -> Self { TagValue::$v(x as $c) }
        }
    )*};
}
tag_from!(i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64,
          u8 => I64 as i64, u16 => I64 as i64, u32 => I64 as i64, f32 => F64 as f64, f64 => F64 as f64);

impl From<u64> for TagValue {
    fn from(x: u64) -> Self {
        if x <= i64::MAX as u64 {
            TagValue::I64(x as i64)
        } else {
            TagValue::U64(x)
        }
    }
}
impl From<usize> for TagValue {
    fn from(x: usize) -> Self {
        TagValue::from(x as u64)
    }
}
impl From<isize> for TagValue {
    fn from(x: isize) -> Self {
        TagValue::I64(x as i64)
    }
}
impl From<bool> for TagValue {
    fn from(x: bool) -> Self {
        TagValue::Bool(x)
    }
}
impl From<&str> for TagValue {
    fn from(x: &str) -> Self {
        TagValue::Str(x.to_owned())
    }
}
impl From<String> for TagValue {
    fn from(x: String) -> Self {
        TagValue::Str(x)
    }
}
impl From<&String> for TagValue {
    fn from(x: &String) -> Self {
        TagValue::Str(x.clone())
    }
}

/// The outcome of a span.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Status {
    /// Finished normally.
    #[default]
    Ok,
    /// Failed (an error, or a panic unwound through it).
    Error,
    /// Any other outcome, as text (e.g. "warning").
    Custom(String),
}

impl Status {
    /// True for anything but [`Status::Ok`]: what the analyzer counts as an error.
    pub fn is_error(&self) -> bool {
        !matches!(self, Status::Ok)
    }

    /// The status as text: "ok", "error", or the custom text.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Custom(s) => s,
        }
    }

    /// Parses text: "ok" and "error" map to their variants, anything else is custom.
    pub fn from_text(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            "error" => Status::Error,
            other => Status::Custom(other.to_owned()),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list of tags: (key, value) in the order they were added.
pub type Tags = Vec<(String, TagValue)>;
