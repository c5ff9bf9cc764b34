//! `#[ferret::measure]`: names, parents, async, errors, dynamic names.

mod common;

use common::{all, find, read_back, Rec};
use ferret::{InSpanExt, Status, TagValue};

/// The installed profiler is process-global: one test at a time.
use ferret_testkit::serial as lock;

/// Runs `f` with a fresh profiler installed and returns what it recorded.
fn record(f: impl FnOnce()) -> Vec<Rec> {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let p = ferret::Profiler::builder(&path).run_id("r").open().unwrap();
    p.install();
    f();
    p.close().unwrap();
    read_back(&path, "r")
}

#[ferret::measure]
fn leaf() -> u32 {
    7
}

#[ferret::measure]
fn outer() -> u32 {
    leaf() + leaf()
}

#[ferret::measure("custom-name")]
fn renamed() {}

#[ferret::measure(name = "user:{id}")]
fn load_user(id: u64, _label: &str) -> u64 {
    id * 2
}

#[ferret::measure(err)]
fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n + 1)
}

#[ferret::measure("early", err)]
fn early_return(x: i32) -> Result<i32, String> {
    if x < 0 {
        return Err(format!("negative: {x}"));
    }
    Ok(x)
}

#[ferret::measure]
fn generic<T: std::fmt::Display, const N: usize>(items: [T; N]) -> String {
    items.iter().map(|t| t.to_string()).collect()
}

#[ferret::measure]
fn with_impl_arg(it: impl Iterator<Item = u32>) -> u32 {
    it.sum()
}

#[ferret::measure]
async fn async_child(ms: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ms
}

#[ferret::measure]
async fn async_parent() -> u64 {
    let a = async_child(5).await;
    tokio::task::yield_now().await;
    let b = async_child(1).await;
    let spawned = tokio::spawn(async_child(2).in_span("spawned"))
        .await
        .unwrap();
    a + b + spawned
}

#[ferret::measure(name = "fetch:{key}", err)]
async fn fetch(key: &str, fail: bool) -> Result<usize, std::io::Error> {
    tokio::task::yield_now().await;
    if fail {
        Err(std::io::Error::other(format!("no such key {key}")))?;
    }
    Ok(key.len())
}

struct Cache {
    hits: u32,
}

#[ferret::measure(module_path)]
impl Cache {
    fn new() -> Self {
        Cache { hits: 0 }
    }

    fn get(&mut self, k: u32) -> u32 {
        self.hits += 1;
        self.lookup(k)
    }

    #[ferret::measure("cache-lookup")]
    fn lookup(&self, k: u32) -> u32 {
        k + self.hits
    }

    #[ferret::measure(skip)]
    fn hits(&self) -> u32 {
        self.hits
    }

    #[ferret::measure(name = "cache-load:{k}", err)]
    async fn load(&self, k: u32) -> Result<u32, String> {
        if k == 0 {
            return Err("zero".into());
        }
        Ok(k)
    }
}

struct Db;

impl Db {
    #[ferret::measure]
    fn query<Q: AsRef<str>>(&self, q: Q) -> usize {
        q.as_ref().len()
    }
}

#[test]
fn sync_names_and_parents() {
    let v = record(|| {
        assert_eq!(outer(), 14);
        renamed();
    });
    let o = find(&v, "outer");
    assert_eq!(o.parent, None);
    let leaves = all(&v, "leaf");
    assert_eq!(leaves.len(), 2);
    for l in leaves {
        assert_eq!(l.parent, Some(o.id));
        assert!(l.dur <= o.dur);
    }
    assert_eq!(find(&v, "custom-name").parent, None);
    assert_eq!(v.len(), 4);
}

mod nested {
    #[ferret::measure(module_path)]
    pub fn qualified() -> u32 {
        3
    }

    #[ferret::measure(module_path, err)]
    pub fn qualified_err(fail: bool) -> Result<u32, String> {
        if fail {
            Err("no".into())
        } else {
            Ok(1)
        }
    }

    #[ferret::measure]
    pub fn plain() {}
}

/// The default name is the function's name, as `#[tracing::instrument]`
/// names its span; `module_path` qualifies it with the module path.
#[test]
fn default_names_follow_instrument_and_module_path_qualifies() {
    let v = record(|| {
        assert_eq!(nested::qualified(), 3);
        assert!(nested::qualified_err(true).is_err());
        nested::plain();
    });
    let mut names: Vec<_> = v.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "macros::nested::qualified",
            "macros::nested::qualified_err",
            "plain"
        ]
    );
    assert_eq!(
        find(&v, "macros::nested::qualified_err").status,
        Status::Error
    );
}

#[test]
fn attribute_and_closure_share_the_name() {
    let v = record(|| {
        let n = ferret::measure("closure", || {
            #[ferret::measure]
            fn inside() -> u32 {
                1
            }
            inside()
        });
        assert_eq!(n, 1);
    });
    let c = find(&v, "closure");
    assert_eq!(find(&v, "inside").parent, Some(c.id));
}

#[test]
fn dynamic_names() {
    let v = record(|| {
        assert_eq!(load_user(42, "x"), 84);
        assert_eq!(load_user(7, "y"), 14);
    });
    assert!(v.iter().any(|r| r.name == "user:42"));
    assert!(v.iter().any(|r| r.name == "user:7"));
    assert_eq!(v.len(), 2);
}

#[test]
fn err_records_status_and_message() {
    let v = record(|| {
        assert_eq!(parse("41"), Ok(42));
        assert!(parse("x").is_err());
        assert_eq!(early_return(-3), Err("negative: -3".to_string()));
        assert_eq!(early_return(3), Ok(3));
    });
    let p = all(&v, "parse");
    assert_eq!(p.len(), 2);
    let ok = p.iter().find(|r| r.status == Status::Ok).unwrap();
    assert_eq!(ok.tag("error"), None);
    let bad = p.iter().find(|r| r.status == Status::Error).unwrap();
    assert_eq!(
        bad.tag("error"),
        Some(&TagValue::Str("invalid digit found in string".into()))
    );
    let e = all(&v, "early");
    assert_eq!(e.len(), 2);
    let bad = e.iter().find(|r| r.status == Status::Error).unwrap();
    assert_eq!(
        bad.tag("error"),
        Some(&TagValue::Str("negative: -3".into()))
    );
    assert!(e.iter().any(|r| r.status == Status::Ok));
}

#[test]
fn generic_fns() {
    let v = record(|| {
        assert_eq!(generic([1, 2, 3]), "123");
        assert_eq!(generic(["a"]), "a");
        assert_eq!(with_impl_arg([1u32, 2].into_iter()), 3);
        assert_eq!(Db.query("abc"), 3);
        assert_eq!(Db.query(String::from("ab")), 2);
    });
    assert_eq!(all(&v, "generic").len(), 2);
    assert_eq!(all(&v, "with_impl_arg").len(), 1);
    // A method annotated on its own is named by module and method.
    assert_eq!(all(&v, "query").len(), 2);
}

#[test]
fn impl_block_methods() {
    let v = record(|| {
        let mut c = Cache::new();
        assert_eq!(c.get(1), 2);
        assert_eq!(c.hits(), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(c.load(5)), Ok(5));
        assert!(rt.block_on(c.load(0)).is_err());
    });
    find(&v, "macros::Cache::new"); // module_path on the impl block
    let get = find(&v, "macros::Cache::get");
    let lookup = find(&v, "cache-lookup");
    assert_eq!(lookup.parent, Some(get.id));
    assert!(!v.iter().any(|r| r.name.contains("hits")));
    assert_eq!(find(&v, "cache-load:5").status, Status::Ok);
    let bad = find(&v, "cache-load:0");
    assert_eq!(bad.status, Status::Error);
    assert_eq!(bad.tag("error"), Some(&TagValue::Str("zero".into())));
    assert_eq!(v.len(), 5);
}

#[test]
fn async_across_awaits_and_spawns() {
    let v = record(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let total = rt.block_on(async {
            let handles: Vec<_> = (0..4).map(|_| tokio::spawn(async_parent())).collect();
            let mut t = 0;
            for h in handles {
                t += h.await.unwrap();
            }
            t
        });
        assert_eq!(total, 4 * 8);
    });
    let parents = all(&v, "async_parent");
    assert_eq!(parents.len(), 4, "each call recorded once");
    let children = all(&v, "async_child");
    assert_eq!(children.len(), 12);
    for p in &parents {
        // Two awaited directly, one inside the spawned "spawned" span.
        let direct: Vec<_> = children.iter().filter(|c| c.parent == Some(p.id)).collect();
        assert_eq!(direct.len(), 2);
        let spawned: Vec<_> = all(&v, "spawned")
            .into_iter()
            .filter(|s| s.parent == Some(p.id))
            .collect();
        assert_eq!(spawned.len(), 1);
        assert!(children.iter().any(|c| c.parent == Some(spawned[0].id)));
        // The whole call, sleeps included (5 ms + 1 ms + 2 ms).
        assert!(p.dur >= 8_000_000, "duration {}", p.dur);
    }
}

#[test]
fn async_err_and_dynamic_name() {
    let v = record(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(fetch("abc", false).await.unwrap(), 3);
            assert!(fetch("zz", true).await.is_err());
        });
    });
    assert_eq!(find(&v, "fetch:abc").status, Status::Ok);
    let bad = find(&v, "fetch:zz");
    assert_eq!(bad.status, Status::Error);
    assert_eq!(
        bad.tag("error"),
        Some(&TagValue::Str("no such key zz".into()))
    );
}

#[test]
fn nothing_recorded_without_profiler() {
    let _l = lock();
    // No profiler installed: measured functions still run normally.
    assert_eq!(outer(), 14);
    assert_eq!(load_user(1, "z"), 2);
    assert!(parse("no").is_err());
}
