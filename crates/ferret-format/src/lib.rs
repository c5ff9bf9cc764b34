//! Ferret's on-disk format, shared by the recorder (`ferret`) and the
//! analyzer (`ferret-analyze`): the native file's [`schema`], the span
//! block [`codec`], and the plain span types ([`Status`], [`TagValue`],
//! [`Tags`]).
//!
//! This crate has no dependencies (serde behind the `serde` feature), so
//! that a program that only records spans compiles none of the analyzer.
//!
//! ```
//! use ferret_format::codec::{BlockDecoder, BlockEncoder, BlockSpan, SpanHead};
//! let mut enc = BlockEncoder::new();
//! let head = SpanHead { id: 1, start_ns: 1_000, dur_ns: 50, ..Default::default() };
//! let span = BlockSpan { head, ..Default::default() };
//! enc.push_span(&span);
//! let bytes = enc.finish();
//! let mut dec = BlockDecoder::new(&bytes[..], true).unwrap();
//! let mut back = BlockSpan::default();
//! assert!(dec.next_into(&mut back).unwrap());
//! assert_eq!(back, span);
//! ```
#![warn(missing_docs)]

pub mod codec;
pub mod schema;
mod types;

pub use types::{span_end, Status, TagValue, Tags};
