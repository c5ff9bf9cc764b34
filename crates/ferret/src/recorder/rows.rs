//! The writer's bookkeeping rows: each process's counters, stored with every
//! commit so that a crash leaves them on record, and the clean-close mark;
//! and the upgrade of files written before these existed (format 1).

use rusqlite::Connection;

/// The counters a process stores, in the order of the
/// `ferret_processes` / `ferret_runs` columns below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcessCounters {
    pub accepted: u64,
    pub dropped_queue: u64,
    pub dropped_write: u64,
    pub sampled_out: u64,
    pub shed: u64,
}

impl ProcessCounters {
    fn as_array(&self) -> [u64; 5] {
        [
            self.accepted,
            self.dropped_queue,
            self.dropped_write,
            self.sampled_out,
            self.shed,
        ]
    }
}

/// Stores this process's counters (absolute values: a commit that failed
/// is simply retried with newer ones) and adds what changed since `before`
/// to the run's totals; with `ended_ns`, marks the process as cleanly
/// closed. Runs inside the caller's transaction.
pub(crate) fn store_counters(
    conn: &Connection,
    run: i64,
    process: i64,
    now: &ProcessCounters,
    before: &ProcessCounters,
    commit_ns: i64,
    ended_ns: Option<i64>,
) -> rusqlite::Result<()> {
    let c = now.as_array().map(|v| v as i64);
    conn.prepare_cached(
        "UPDATE ferret_processes SET spans_accepted = ?2, dropped_queue = ?3, dropped_write = ?4,
             sampled_out = ?5, shed = ?6, committed_ns = ?7, ended_ns = coalesce(?8, ended_ns)
         WHERE id = ?1",
    )?
    .execute(rusqlite::params![
        process, c[0], c[1], c[2], c[3], c[4], commit_ns, ended_ns
    ])?;
    let d: Vec<i64> = now
        .as_array()
        .iter()
        .zip(before.as_array())
        .map(|(a, b)| a.saturating_sub(b) as i64)
        .collect();
    if d.iter().any(|&x| x != 0) {
        conn.prepare_cached(
            "UPDATE ferret_runs SET spans_accepted = spans_accepted + ?2, dropped_queue = dropped_queue + ?3,
                 dropped_write = dropped_write + ?4, sampled_out = sampled_out + ?5, shed = shed + ?6
             WHERE id = ?1",
        )?
        .execute(rusqlite::params![run, d[0], d[1], d[2], d[3], d[4]])?;
    }
    Ok(())
}

/// Columns added by format 2, per table.
const ADDED: &[(&str, &str, &str)] = &[
    ("ferret_runs", "shed", "INTEGER NOT NULL DEFAULT 0"),
    (
        "ferret_processes",
        "spans_accepted",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "ferret_processes",
        "dropped_queue",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "ferret_processes",
        "dropped_write",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "ferret_processes",
        "sampled_out",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    ("ferret_processes", "shed", "INTEGER NOT NULL DEFAULT 0"),
    ("ferret_processes", "committed_ns", "INTEGER"),
    ("ferret_processes", "ended_ns", "INTEGER"),
];

/// Brings a file of format 1 or 2 to the current format (inside the
/// caller's transaction). From 1: adds the per-process counters and the
/// clean-close mark; processes that wrote the file before are marked as
/// ended at their start, with zero counters: their state is unknown,
/// which readers learn from `ferret_meta`'s `upgraded_from` (their runs'
/// totals are intact). From 2: only the version changes (format 3 adds
/// the columnar blocks, which this recorder then writes next to the old
/// row-wise ones); the processes keep their state, since a process still
/// recording with an older Ferret goes on writing row-wise blocks, which
/// read as before. `upgraded_from` keeps the first version a recorder
/// upgraded the file from.
pub(crate) fn upgrade(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    if from < 2 {
        upgrade_from_1(conn)?;
    }
    conn.execute(
        "INSERT OR IGNORE INTO ferret_meta (key, value) VALUES ('upgraded_from', ?1)",
        [from.to_string()],
    )?;
    conn.execute(
        "UPDATE ferret_meta SET value = ?1 WHERE key = 'format_version'",
        [ferret_format::schema::FORMAT_VERSION.to_string()],
    )?;
    Ok(())
}

/// Format 1 to 2: see [`upgrade`].
fn upgrade_from_1(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, decl) in ADDED {
        let has: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    // Processes that wrote under format 1 are marked as ended at their
    // start: whether they closed cleanly is unknown, and they must not show
    // as crashed.
    conn.execute(
        "UPDATE ferret_processes SET ended_ns = started_ns WHERE ended_ns IS NULL",
        [],
    )?;
    Ok(())
}
