//! Streaming analyses: each is a fold over a [`Spans`](crate::store::Spans)
//! stream whose state grows with distinct names or call paths, never with
//! the number of spans.

pub mod paths;
pub mod resolve;
pub mod summary;

pub use paths::{fold_paths, folded_frame, FoldedPath};
pub use resolve::{Finished, PathResolver};
pub use summary::{summarize, NameSummary, SortKey, Summary};
