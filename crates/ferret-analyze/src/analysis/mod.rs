//! Streaming analyses. Each report has one entry point that takes a store
//! and a [`Query`] ([`summarize`], [`call_tree`], [`slowest_trees`],
//! [`fold_paths`]); each is a [`Fold`] fed by the one [scan driver](mod@scan),
//! with state that grows with distinct names or call paths, never with the
//! number of spans.

pub mod calltree;
pub mod diff;
pub mod many;
pub mod parallel;
pub mod paths;
pub mod query;
pub mod resolve;
pub mod scan;
pub mod sketch;
pub mod stats;
pub mod summary;
pub mod tree;

pub use calltree::{call_tree, call_tree_threads, CallNode, CallTree};
pub use many::{call_tree_many, map_stores, merge_call_trees, summarize_many, FileError};
pub use parallel::{default_threads, scan_threads, Merge};
pub use paths::{
    cut_frame, fold_paths, fold_paths_with, folded_frame, FoldOptions, FoldedPath,
    DEFAULT_FOLD_DEPTH,
};
pub use query::{select, Clock, NameFilter, Query, Selection, TimeBound};
pub use resolve::{Finished, PathResolver};
pub use scan::{scan, Fold, Resolved, ScanOptions, Scanned};
pub use sketch::LatencySketch;
pub use summary::{summarize, summarize_threads, NameSummary, SortKey, Summary, SummaryOptions};
pub use tree::{slowest_trees, Merged, More, Tree, TreeNode, TreeOptions};
