//! Short-lived threads cost bounded memory: each ending thread hands its
//! spans over in a vector of their size and gives its buffer to the pool,
//! so 100,000 threads of one span each stay far under 64 MB (before: 320 MB
//! peak resident, the queue full of nearly empty batch allocations).
//!
//! Alone in its test binary: it reads the process's resident memory from
//! `/proc/self/status`. Figures: `cargo run --release -p ferret --example
//! many_threads`.

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn many_short_lived_threads_stay_bounded() {
    const THREADS: usize = 100_000;
    const WAVE: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let p = ferret::Profiler::open(dir.path().join("threads.db")).unwrap();
    p.install();
    let mut done = 0;
    while done < THREADS {
        let hs: Vec<_> = (0..WAVE)
            .map(|_| std::thread::spawn(|| drop(ferret::span("short_lived"))))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        done += WAVE;
    }
    let peak_mb = status_kb("VmHWM:") as f64 / 1024.0;
    let st = p.close().unwrap();
    assert_eq!(st.accepted + st.dropped_queue, done as u64, "{st:?}");
    assert_eq!(st.persisted, st.accepted, "{st:?}");
    assert!(
        peak_mb < 64.0,
        "{done} threads of one span: peak RSS {peak_mb:.1} MB"
    );
    eprintln!("{done} threads of one span: peak RSS {peak_mb:.1} MB");
}
