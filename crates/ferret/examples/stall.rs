//! The stall watchdog and the live tables at work: a "server" thread whose
//! database query hangs for a while, and a request that awaits a reply
//! that never comes.
//!
//! ```text
//! cargo run --release -p ferret --example stall -- stall.db
//! ferret dump stall.db      # while it runs (it takes about 5 s)
//! ferret stalls stall.db    # afterwards
//! ```

use ferret::InSpanExt;
use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "stall.db".into());
    let p = ferret::Profiler::builder(&path)
        .heartbeat_interval(Some(Duration::from_millis(250)))
        .stall_threshold(Duration::from_millis(500))
        .stall_threshold_for("serve", Duration::MAX)
        .open()
        .expect("open the trace file");
    p.install();
    let server = std::thread::Builder::new()
        .name("db-worker".into())
        .spawn(|| {
            let _s = ferret::span("serve");
            for i in 0..20 {
                let _r = ferret::span("handle_request").with_tag("route", "/checkout");
                let _q = ferret::span("db.query").with_tag("table", "orders");
                // Request 10 hits a lock held elsewhere for 4.5 s.
                std::thread::sleep(Duration::from_millis(if i == 10 { 4500 } else { 5 }));
            }
        })
        .unwrap();
    // A request waiting for a reply that never comes: nothing polls it.
    let mut reply = Box::pin(
        async { std::future::pending::<()>().in_span("await_reply").await }
            .in_span("call_payment_service"),
    );
    let _ = reply.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    server.join().unwrap();
    drop(reply);
    std::thread::sleep(Duration::from_millis(300));
    p.close().unwrap();
}
