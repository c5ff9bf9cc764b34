//! Guides: the export formats and how `--tree` bounds its memory. They are
//! the files of the repository's `docs/` folder, included here so that
//! their examples are checked as doctests.

#[doc = include_str!("../../../docs/exports.md")]
pub mod exports {}

#[doc = include_str!("../../../docs/trees.md")]
pub mod trees {}
