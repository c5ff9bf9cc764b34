//! Streaming analyses: each is a fold over a [`Spans`](crate::store::Spans)
//! stream whose state grows with distinct names or call paths, never with
//! the number of spans.

pub mod calltree;
pub mod paths;
pub mod resolve;
pub mod sketch;
pub mod summary;
pub mod tree;

pub use calltree::{call_tree, CallNode, CallTree};
pub use paths::{cut_frame, fold_paths, folded_frame, FoldOptions, FoldedPath, DEFAULT_FOLD_DEPTH};
pub use resolve::{Finished, PathResolver};
pub use sketch::LatencySketch;
pub use summary::{summarize, NameSummary, SortKey, Summary};
pub use tree::{slowest_trees, Merged, More, Tree, TreeNode, TreeOptions};
