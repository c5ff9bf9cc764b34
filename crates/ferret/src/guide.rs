//! Guides: using Ferret with the rest of the Rust ecosystem, and sampling.
//! They are the files of the repository's `docs/` folder, included here so
//! that their examples are compiled and run as doctests.

#[cfg(feature = "tracing")]
#[doc = include_str!("../../../docs/ecosystem.md")]
pub mod ecosystem {}

#[doc = include_str!("../../../docs/sampling.md")]
pub mod sampling {}
