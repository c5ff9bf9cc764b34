//! Concurrent tokio tasks measured with `#[ferret::measure]`.
//!
//! ```text
//! cargo run -p ferret --example attribute_tokio -- attribute.db
//! ferret analyze attribute.db
//! ```

use ferret::InSpanExt;
use std::time::Duration;

#[ferret::measure]
async fn fetch_page(page: u32) -> Vec<u32> {
    tokio::time::sleep(Duration::from_millis(2 + (page % 3) as u64)).await;
    (0..50).map(|i| i * page).collect()
}

#[ferret::measure]
fn checksum(items: &[u32]) -> u64 {
    items.iter().map(|&x| x as u64 * 31).sum()
}

#[ferret::measure(name = "user:{user}", err)]
async fn handle_user(user: u32) -> Result<u64, String> {
    let mut total = 0;
    for page in 0..3 {
        let items = fetch_page(page).await;
        total += checksum(&items);
    }
    if user % 7 == 6 {
        return Err(format!("user {user} is locked"));
    }
    Ok(total)
}

#[ferret::measure]
async fn run(users: u32) -> (u64, usize) {
    // Each spawned task records under `run`: `in_span` captures the parent
    // where the task is created, and the attribute nests under it.
    let tasks: Vec<_> = (0..users)
        .map(|u| tokio::spawn(handle_user(u).in_span("task")))
        .collect();
    let (mut sum, mut failed) = (0, 0);
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(v) => sum += v,
            Err(_) => failed += 1,
        }
    }
    (sum, failed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ferret.db".into());
    let profiler = ferret::Profiler::open(&path)?;
    profiler.install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let (sum, failed) = rt.block_on(run(40));
    drop(rt);
    let stats = profiler.close()?;
    println!(
        "checksum {sum}, {failed} failed users; {} spans written to {path}",
        stats.accepted
    );
    Ok(())
}
