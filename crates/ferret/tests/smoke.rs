use ferret_analyze::store::{SpanQuery, Store};

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("r1")
        .open()
        .unwrap();
    p.install();
    {
        let mut g = ferret::span("outer");
        g.tag("k", 5);
        for i in 0..3 {
            let _c = ferret::span(format!("inner{i}"));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let st = p.close().unwrap();
    assert_eq!(st.accepted, 4);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.latest_run().unwrap(), "r1");
    let mut spans = s
        .spans(
            "r1",
            &SpanQuery {
                with_tags: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut v = vec![];
    while let Some(r) = spans.next() {
        v.push((spans.name(r.name).to_string(), r));
    }
    for (n, r) in &v {
        eprintln!("{n} {:?}", r);
    }
    assert_eq!(v.len(), 4);
}
