//! Process-wide interning of span names and call paths.
//!
//! A call path is (parent path, name); path 0 is the root (no parent). Ids are
//! local to the process; the writer maps them to the ids of the database.
//! Threads keep a small cache in front of the global table so that the hot
//! path costs a few nanoseconds for a name seen before.

use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The name of a span: a static string costs nothing to pass; an owned one is
/// interned by content.
#[derive(Clone, Debug)]
pub enum Name {
    /// A string literal.
    Static(&'static str),
    /// A name built at run time (`format!`).
    Owned(String),
}

impl Name {
    /// The text of the name.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Owned(s) => s,
        }
    }
}

impl From<&'static str> for Name {
    fn from(s: &'static str) -> Self {
        Name::Static(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name::Owned(s)
    }
}

impl From<std::borrow::Cow<'static, str>> for Name {
    fn from(s: std::borrow::Cow<'static, str>) -> Self {
        match s {
            std::borrow::Cow::Borrowed(s) => Name::Static(s),
            std::borrow::Cow::Owned(s) => Name::Owned(s),
        }
    }
}

#[derive(Default)]
struct Table {
    names: Vec<Arc<str>>,
    name_ids: FxHashMap<Arc<str>, u32>,
    /// `paths[i]` = (parent path, name id) of local path `i`; index 0 is the root.
    paths: Vec<(u32, u32)>,
    path_ids: FxHashMap<(u32, u32), u32>,
}

fn table() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(|| {
        Mutex::new(Table {
            paths: vec![(0, 0)],
            ..Table::default()
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

fn intern_name_locked(t: &mut Table, s: &str) -> u32 {
    if let Some(&id) = t.name_ids.get(s) {
        return id;
    }
    let id = t.names.len() as u32;
    let a: Arc<str> = Arc::from(s);
    t.names.push(a.clone());
    t.name_ids.insert(a, id);
    id
}

fn intern_path_locked(t: &mut Table, parent: u32, name: u32) -> u32 {
    if let Some(&id) = t.path_ids.get(&(parent, name)) {
        return id;
    }
    let id = t.paths.len() as u32;
    t.paths.push((parent, name));
    t.path_ids.insert((parent, name), id);
    id
}

/// The (parent path, name id) of a local path id.
pub(crate) fn path_entry(path: u32) -> (u32, u32) {
    lock().paths.get(path as usize).copied().unwrap_or((0, 0))
}

/// The text of a local name id.
pub(crate) fn name_text(name: u32) -> Arc<str> {
    lock()
        .names
        .get(name as usize)
        .cloned()
        .unwrap_or_else(|| Arc::from(""))
}

const CACHE_SLOTS: usize = 512;

#[derive(Clone, Copy)]
struct Slot {
    parent: u32,
    path: u32,
    ptr: usize,
    len: usize,
}

/// Per-thread cache in front of the global table.
pub(crate) struct PathCache {
    /// Direct-mapped slots for static names; allocated on the first miss so
    /// that the cache (and the thread-local holding it) starts out const.
    statics: Vec<Slot>,
    owned_names: FxHashMap<Box<str>, u32>,
    paths: FxHashMap<(u32, u32), u32>,
}

impl PathCache {
    pub(crate) const fn new() -> PathCache {
        PathCache {
            statics: Vec::new(),
            owned_names: FxHashMap::with_hasher(rustc_hash::FxBuildHasher),
            paths: FxHashMap::with_hasher(rustc_hash::FxBuildHasher),
        }
    }

    /// The local path id of `name` called under `parent`.
    #[inline]
    pub(crate) fn path(&mut self, parent: u32, name: &Name) -> u32 {
        match name {
            Name::Static(s) => {
                let ptr = s.as_ptr() as usize;
                let h = (ptr ^ (parent as usize).wrapping_mul(0x9E37_79B9))
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
                let idx = (h >> 23) % CACHE_SLOTS;
                if let Some(slot) = self.statics.get(idx) {
                    if slot.parent == parent && slot.ptr == ptr && slot.len == s.len() {
                        return slot.path;
                    }
                }
                self.miss_static(idx, parent, s)
            }
            Name::Owned(s) => self.slow_path(parent, s),
        }
    }

    #[cold]
    fn miss_static(&mut self, idx: usize, parent: u32, s: &'static str) -> u32 {
        if self.statics.is_empty() {
            self.statics = vec![
                Slot {
                    parent: u32::MAX,
                    path: 0,
                    ptr: 0,
                    len: 0
                };
                CACHE_SLOTS
            ];
        }
        let path = self.slow_path(parent, s);
        self.statics[idx] = Slot {
            parent,
            path,
            ptr: s.as_ptr() as usize,
            len: s.len(),
        };
        path
    }

    fn slow_path(&mut self, parent: u32, s: &str) -> u32 {
        let name_id = match self.owned_names.get(s) {
            Some(&id) => id,
            None => {
                let id = intern_name_locked(&mut lock(), s);
                if self.owned_names.len() < 1 << 16 {
                    self.owned_names.insert(s.into(), id);
                }
                id
            }
        };
        if let Some(&p) = self.paths.get(&(parent, name_id)) {
            return p;
        }
        let p = intern_path_locked(&mut lock(), parent, name_id);
        if self.paths.len() < 1 << 16 {
            self.paths.insert((parent, name_id), p);
        }
        p
    }
}
