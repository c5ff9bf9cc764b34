//! The raw read floor of a native file: time to step the block rows of a run
//! out of SQLite (the same paged query the reader uses) without decoding a
//! span. `bench/analyze.sh` compares `ferret analyze` against it.
//!
//! usage: cargo run --release -p ferret --example read_floor -- FILE [RUN]

use rusqlite::{Connection, OpenFlags};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: read_floor FILE [RUN]")?;
    let store = ferret_analyze::store::Store::open(&path)?;
    let run = match args.next() {
        Some(r) => r,
        None => store.latest_run()?,
    };
    drop(store);
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let run_row: i64 = conn.query_row(
        "SELECT id FROM ferret_runs WHERE run_key = ?1",
        [&run],
        |r| r.get(0),
    )?;
    let t = Instant::now();
    let (mut last, mut bytes, mut spans, mut rows) = (0i64, 0u64, 0u64, 0u64);
    let mut st = conn.prepare(
        "SELECT id, count, data FROM ferret_blocks WHERE run = ?1 AND id > ?2 ORDER BY id LIMIT 16",
    )?;
    loop {
        let mut q = st.query([run_row, last])?;
        let mut any = false;
        while let Some(r) = q.next()? {
            any = true;
            last = r.get(0)?;
            spans += r.get::<_, i64>(1)? as u64;
            let data = r.get_ref(2)?.as_blob()?;
            // Copy as the reader does, then touch nothing else.
            bytes += std::hint::black_box(data.to_vec()).len() as u64;
            rows += 1;
        }
        if !any {
            break;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "read floor: {spans} spans in {rows} blocks, {:.1} MB in {s:.3} s = {:.1} M spans/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        spans as f64 / s / 1e6,
        bytes as f64 / s / 1e6
    );
    Ok(())
}
