//! Reading back what a test recorded.
#![allow(dead_code)]

use std::path::Path;

/// A span read back from a file, with its name resolved.
#[derive(Debug)]
pub struct Rec {
    pub name: String,
    pub id: u64,
    pub parent: Option<u64>,
    pub status: ferret::Status,
    pub tags: Vec<(String, ferret::TagValue)>,
    pub dur: u64,
}

impl Rec {
    pub fn tag(&self, k: &str) -> Option<&ferret::TagValue> {
        self.tags.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
}

/// Every span of `run` in the file, tags included.
pub fn read_back(path: &Path, run: &str) -> Vec<Rec> {
    let store = ferret_analyze::store::Store::open(path).unwrap();
    let q = ferret_analyze::store::SpanQuery {
        with_tags: true,
        ..Default::default()
    };
    let mut spans = store.spans(run, &q).unwrap();
    let mut v = vec![];
    while let Some(r) = spans.next() {
        v.push(Rec {
            name: spans.name(r.name).to_string(),
            id: r.span_id(),
            parent: r.parent_id(),
            status: r.status.clone(),
            tags: r.tags.clone(),
            dur: r.duration_ns().unwrap_or(0),
        });
    }
    v
}

/// The first span named `name`.
pub fn find<'a>(v: &'a [Rec], name: &str) -> &'a Rec {
    v.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {v:#?}"))
}

/// Every span named `name`.
pub fn all<'a>(v: &'a [Rec], name: &str) -> Vec<&'a Rec> {
    v.iter().filter(|r| r.name == name).collect()
}
