//! The load generator: `concurrency` client tasks in the service's own
//! runtime send requests over loopback (HTTP/1.1, keep-alive) until
//! `requests` have been answered, and time each one.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What one load phase saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of each answered request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Answers with status 500 (the service's deliberate errors).
    pub server_errors: u64,
    /// Transport failures and unexpected statuses.
    pub failures: u64,
}

/// The request number `i` of a run: half user lookups, 30% orders, 20% reports.
fn request(addr: SocketAddr, i: u64) -> Request<Full<Bytes>> {
    let (method, path, body) = match i % 10 {
        0..=4 => (Method::GET, format!("/users/{}", i % 5000), Bytes::new()),
        5..=7 => (
            Method::POST,
            "/orders".to_owned(),
            Bytes::from(format!("{{\"item\":{},\"qty\":{}}}", i % 977, i % 7 + 1)),
        ),
        _ => (Method::GET, "/report".to_owned(), Bytes::new()),
    };
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(body))
        .expect("a valid request")
}

/// Sends `requests` requests to `addr` from `concurrency` tasks.
pub async fn run(addr: SocketAddr, requests: u64, concurrency: usize) -> Outcome {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return out;
                }
                let t = Instant::now();
                match client.request(request(addr, i)).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let body = resp.into_body().collect().await;
                        match (status, body) {
                            (200, Ok(_)) => {}
                            (500, Ok(_)) => out.server_errors += 1,
                            _ => out.failures += 1,
                        }
                    }
                    Err(_) => out.failures += 1,
                }
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                out.latencies_us.push(us);
            }
        }));
    }
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.expect("a client task panicked");
        all.latencies_us.extend(o.latencies_us);
        all.server_errors += o.server_errors;
        all.failures += o.failures;
    }
    all
}
