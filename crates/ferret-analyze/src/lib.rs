//! Ferret's analyzer: read native ferret and ferret-io trace files as lazy
//! streams ([`store`]), fold them into reports whose memory grows with
//! distinct names or call paths, never with span count ([`analysis`]), and
//! write them out for other viewers ([`export`]).
//!
//! The recorder lives in the `ferret` crate; a program that only records
//! spans does not compile this one.
//!
//! ```no_run
//! use ferret_analyze::analysis::{summarize, Query, SummaryOptions};
//! use ferret_analyze::store::Store;
//! let store = Store::open("ferret.db")?;
//! let summary = summarize(&store, &Query::latest(), &SummaryOptions::default(), None)?;
//! for row in &summary.stats {
//!     println!("{:<20} {:>8} calls", row.name, row.count);
//! }
//! # Ok::<(), ferret_analyze::Error>(())
//! ```
#![warn(missing_docs)]

pub mod analysis;
mod error;
pub mod export;
pub mod guide;
pub mod live;
pub mod store;

pub use error::{Error, Result, StorageError};
pub use ferret_format::{Status, TagValue, Tags};
