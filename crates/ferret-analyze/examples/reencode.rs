//! Copies a native file with every span block re-encoded in one block
//! version: the same spans, tags and statuses in the columnar encoding (2)
//! or the row-wise one of older files (1). For comparing readers and
//! sizes on identical spans. A file with columnar blocks gets format
//! version 3 (older readers refuse it); one with row-wise blocks only
//! keeps its version.
//!
//! usage: cargo run --release -p ferret-analyze --example reencode -- SRC DST 1|2

use ferret_format::codec::{BlockDecoder, BlockEncoder, BlockEncoderV1, BlockSpan};
use rusqlite::Connection;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst, version] = &args[..] else {
        return Err("usage: reencode SRC DST 1|2".into());
    };
    let version: u8 = version.parse()?;
    if version != 1 && version != 2 {
        return Err("the block version is 1 or 2".into());
    }
    {
        // A consistent copy, whatever sits in the source's WAL.
        let c = Connection::open(src)?;
        c.execute("VACUUM INTO ?1", [dst])?;
    }
    let c = Connection::open(dst)?;
    c.execute_batch("BEGIN")?;
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM ferret_blocks ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let (mut v2, mut v1) = (BlockEncoder::new(), BlockEncoderV1::new());
    let mut s = BlockSpan::default();
    let (mut spans, mut before, mut after) = (0u64, 0u64, 0u64);
    for id in ids {
        let data: Vec<u8> =
            c.query_row("SELECT data FROM ferret_blocks WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        before += data.len() as u64;
        let mut d = BlockDecoder::new(&data[..], true).map_err(|e| format!("block {id}: {e}"))?;
        v2.clear();
        v1.clear();
        while d
            .next_into(&mut s)
            .map_err(|e| format!("block {id}: {e}"))?
        {
            spans += 1;
            if version == 2 {
                v2.push_span(&s);
            } else {
                v1.push_span(&s);
            }
        }
        let out = if version == 2 { v2.block() } else { v1.block() };
        after += out.len() as u64;
        c.execute(
            "UPDATE ferret_blocks SET data = ?1 WHERE id = ?2",
            rusqlite::params![out, id],
        )?;
    }
    if version == 2 {
        c.execute(
            "UPDATE ferret_meta SET value = ?1 WHERE key = 'format_version'",
            [ferret_format::schema::FORMAT_VERSION.to_string()],
        )?;
    }
    c.execute_batch("COMMIT; VACUUM")?;
    println!(
        "{spans} spans: blocks {before} -> {after} bytes ({:.2} -> {:.2} bytes/span)",
        before as f64 / spans as f64,
        after as f64 / spans as f64
    );
    Ok(())
}
