//! A program instrumented only with `tracing`, recorded through
//! `ferret::FerretLayer`.
//!
//! ```text
//! cargo run -p ferret --example tracing_layer -- tracing.db
//! ferret analyze tracing.db
//! ```

use std::time::Duration;
use tracing::{info_span, instrument, Instrument};
use tracing_subscriber::prelude::*;

#[instrument]
fn parse(line: u32) -> u64 {
    let _s = info_span!("tokenize", tokens = line % 5 + 1).entered();
    (0..1000u64).map(|x| x * line as u64).sum()
}

#[instrument(err)]
fn validate(order: u32, total: u64) -> Result<u64, String> {
    if order % 9 == 8 {
        return Err(format!("order {order} has no items"));
    }
    Ok(total)
}

#[instrument(skip_all, fields(order, status = tracing::field::Empty))]
async fn process(order: u32) -> u64 {
    let mut total = 0;
    for line in 0..4 {
        total += parse(line + order);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let checked = validate(order, total);
    let span = tracing::Span::current();
    span.record("status", if checked.is_ok() { "ok" } else { "rejected" });
    async {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    .instrument(info_span!("store", bytes = total % 4096))
    .await;
    checked.unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ferret.db".into());
    let profiler = ferret::Profiler::open(&path)?;
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(ferret::FerretLayer::new(&profiler)),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let total = rt.block_on(
        async {
            let tasks: Vec<_> = (0..30)
                .map(|o| tokio::spawn(process(o).instrument(info_span!("order_task", o))))
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await?;
            }
            Ok::<_, tokio::task::JoinError>(sum)
        }
        .instrument(info_span!("batch", orders = 30)),
    )?;
    drop(rt);
    let stats = profiler.close()?;
    println!("total {total}; {} spans written to {path}", stats.accepted);
    Ok(())
}
