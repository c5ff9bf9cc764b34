//! One-thread summary (or call tree) of a file through the library, for
//! instruction counts of the scan loop under cachegrind without building
//! the CLI.
//!
//! usage: cargo run --release -p ferret-analyze --example fold_floor -- FILE [summary|calltree]

use ferret_analyze::analysis::{call_tree_threads, summarize_threads, Query, SummaryOptions};
use ferret_analyze::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: fold_floor FILE [summary|calltree]")?;
    let mode = args.next().unwrap_or_else(|| "summary".into());
    let store = Store::open(&path)?;
    let q = Query::default();
    match mode.as_str() {
        "calltree" => {
            let t = call_tree_threads(&store, &q, 1)?;
            println!("{} spans", t.spans);
        }
        _ => {
            let s = summarize_threads(&store, &q, &SummaryOptions::default(), 1, None)?;
            println!("{} spans, {} names", s.spans, s.stats.len());
        }
    }
    Ok(())
}
