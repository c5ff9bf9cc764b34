//! Decode cost of native blocks without SQLite or a fold: loads up to
//! `MAX_MB` of one run's blocks into memory, then times passes over them,
//! once with every field and once with the fields a summary reads (path,
//! start, duration, children's total, status: a columnar block then
//! decodes only their columns).
//!
//! usage: cargo run --release -p ferret-analyze --example decode_floor -- FILE [MAX_MB] [all|summary]
//!
//! (both passes by default; one of them for instruction counts under
//! `valgrind --tool=cachegrind`)

use ferret_format::codec::{BlockDecoder, Columns, HeadFields};
use rusqlite::{Connection, OpenFlags};
use std::hint::black_box;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: decode_floor FILE [MAX_MB] [all|summary]")?;
    let max_mb: usize = args.next().map_or(Ok(300), |s| s.parse())?;
    let only = args.next();
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = conn.prepare("SELECT data FROM ferret_blocks ORDER BY id")?;
    let mut rows = st.query([])?;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0usize;
    while let Some(r) = rows.next()? {
        let b: Vec<u8> = r.get(0)?;
        bytes += b.len();
        blocks.push(b);
        if bytes > max_mb << 20 {
            break;
        }
    }
    let summary = HeadFields::PATH
        | HeadFields::START
        | HeadFields::DURATION
        | HeadFields::CHILDREN
        | HeadFields::ERROR;
    for (what, fields) in [("all fields", HeadFields::ALL), ("summary fields", summary)] {
        if only.as_deref().is_some_and(|o| !what.starts_with(o)) {
            continue;
        }
        let mut best = f64::MAX;
        let mut n = 0u64;
        let mut cols = Columns::default();
        for _ in 0..7 {
            let t = Instant::now();
            let mut sum = 0u64;
            n = 0;
            for b in &blocks {
                let mut d =
                    BlockDecoder::with_columns(&b[..], false, cols).map_err(|e| e.to_string())?;
                d.for_each_head_of(fields, |h| {
                    n += 1;
                    sum = sum
                        .wrapping_add(h.dur_ns ^ h.child_ns ^ h.path as u64 ^ h.start_ns as u64)
                        .wrapping_add(h.error as u64);
                })
                .map_err(|e| e.to_string())?;
                cols = d.into_parts().1;
            }
            black_box(sum);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "for_each_head_of ({what}): {n} spans, best of 7 {best:.3} s = {:.2} ns/span",
            best * 1e9 / n as f64
        );
    }
    Ok(())
}
