//! Streaming analyses: each is a fold over a [`Spans`](crate::store::Spans)
//! stream whose state grows with distinct names or call paths, never with
//! the number of spans.

pub mod calltree;
pub mod diff;
pub mod paths;
pub mod resolve;
pub mod sketch;
pub mod stats;
pub mod summary;
pub mod tree;

pub use calltree::{call_tree, CallNode, CallTree};
pub use paths::{fold_paths, folded_frame, FoldedPath};
pub use resolve::{Finished, PathResolver};
pub use sketch::LatencySketch;
pub use summary::{summarize, NameSummary, SortKey, Summary};
pub use tree::{slowest_trees, Merged, More, Tree, TreeNode, TreeOptions};
