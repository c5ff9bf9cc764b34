//! Writing the live rows (heartbeat, open spans, stall reports) in the
//! writer's transaction.

use super::PendingLive;
use crate::recorder::shared::Inner;
use rusqlite::{params, Connection};

/// Stores `p` for this process (inside an open transaction). When the
/// process is `ending`, its open spans are removed whatever `p` holds.
pub(crate) fn store(
    conn: &Connection,
    inner: &Inner,
    p: &PendingLive,
    ending: bool,
) -> rusqlite::Result<()> {
    let process = inner.proc_db_id;
    if let Some(b) = &p.heartbeat {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO ferret_heartbeats (process, run, pid, host, cmdline, started_ns, \
             beat_ns, interval_ns, cpu_ns, rss_bytes, threads, spans_accepted, dropped) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            process,
            inner.run_db_id,
            b.pid,
            b.host,
            b.cmdline,
            b.started_ns,
            b.beat_ns,
            b.interval_ns,
            b.cpu_ns,
            b.rss_bytes,
            b.threads,
            b.accepted as i64,
            b.dropped as i64
        ])?;
    }
    if p.inflight.is_some() || ending {
        conn.prepare_cached("DELETE FROM ferret_inflight WHERE process = ?1")?
            .execute([process])?;
    }
    if let (Some((snap, spans)), false) = (&p.inflight, ending) {
        let mut ins = conn.prepare_cached(
            "INSERT INTO ferret_inflight (process, snapshot_ns, thread, depth, span_id, parent_id, \
             trace_id, name, start_ns, entered, tags) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for s in spans {
            ins.execute(params![
                process,
                snap,
                s.thread,
                s.depth,
                s.id as i64,
                (s.parent != 0).then_some(s.parent as i64),
                (s.trace != 0).then_some(s.trace as i64),
                &*s.name,
                s.start_ns,
                s.entered,
                s.tags
            ])?;
        }
    }
    if !p.stalls.is_empty() {
        let mut ins = conn.prepare_cached(
            "INSERT INTO ferret_stalls (process, thread, tid, thread_name, span_id, name, busy, \
             threshold_ns, open_ns, reported_ns, kind, stack) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in &p.stalls {
            let s = &r.stall;
            ins.execute(params![
                process,
                r.thread,
                s.tid.map(|t| t as i64),
                s.thread_name,
                s.span_id as i64,
                s.name,
                s.busy,
                s.threshold.as_nanos().min(i64::MAX as u128) as i64,
                s.open.as_nanos().min(i64::MAX as u128) as i64,
                r.reported_ns,
                s.kind.as_str(),
                s.stack_json()
            ])?;
        }
    }
    Ok(())
}
