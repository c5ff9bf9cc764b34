//! Opening a native trace file for writing: creating its schema, refusing
//! files that are not ours, and registering this process's run.

use crate::error::{Error, Result};
use ferret_format::schema::{FORMAT_VERSION, PAGE_SIZE, SCHEMA};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::time::Duration;

fn classify_open_error(path: &Path, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            Error::NotSqlite(path.to_path_buf())
        }
        _ => Error::from(e),
    }
}

/// How long a writer waits for other connections (other threads or
/// processes writing the same file) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Switches the file to WAL. Changing the journal mode needs an exclusive
/// lock, and SQLite reports a conflict with another process doing the same
/// (or reading) as SQLITE_BUSY without always consulting the busy handler:
/// retry until the busy timeout.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Opens (creating if needed) a native trace file for writing.
pub(crate) fn open_for_write(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify_open_error(path, e))?;
    // Before the first statement: another process may be creating the
    // same file right now.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Touch the file header: a garbage file fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| classify_open_error(path, e))?;
    // Refuse a ferret-io file before changing anything in it (its journal mode).
    let has_logs: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='beaver_logs'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if has_logs {
        return Err(Error::WrongKind(path.to_path_buf()));
    }
    // Nor add tables to another program's database. (Another process that
    // is creating this trace file right now creates all tables in one
    // transaction, so a ferret file never shows tables without ferret_meta.)
    let (tables, ours): (i64, i64) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE name = 'ferret_meta') FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if tables > 0 && ours == 0 {
        return Err(Error::ForeignDatabase(path.to_path_buf()));
    }
    // Only a new, empty file takes it (before its first write, and before
    // WAL, which fixes the page size); an existing file keeps its own.
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
    enable_wal(&conn).map_err(|e| classify_open_error(path, e))?;
    // The writer appends: it touches the right edge of each b-tree and
    // little else, so a small page cache costs it nothing measurable
    // (`writer_cost`, `persist_rate`), while SQLite's default let a
    // long-running process's cache grow to about 9 MB over its first
    // million spans (`examples/steady_rss.rs`).
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<()> {
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT OR IGNORE INTO ferret_meta (key, value) VALUES ('format_version', ?1)",
            [FORMAT_VERSION.to_string()],
        )?;
        let v: String = conn.query_row(
            "SELECT value FROM ferret_meta WHERE key='format_version'",
            [],
            |r| r.get(0),
        )?;
        let v: i64 = v.parse().unwrap_or(i64::MAX);
        if v > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(path.to_path_buf(), v));
        }
        if v < FORMAT_VERSION {
            crate::recorder::rows::upgrade(&conn, v)?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(conn)
}

/// Registers the run (if new) and this process; returns (run row id, process row id).
pub(crate) fn register_process(
    conn: &Connection,
    run_key: &str,
    label: Option<&str>,
    host: &str,
    now_ns: i64,
) -> Result<(i64, i64)> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| -> Result<(i64, i64)> {
        conn.execute(
            "INSERT OR IGNORE INTO ferret_runs (run_key, label, host, started_ns) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![run_key, label, host, now_ns],
        )?;
        if let Some(l) = label {
            conn.execute(
                "UPDATE ferret_runs SET label = ?2 WHERE run_key = ?1 AND label IS NULL",
                rusqlite::params![run_key, l],
            )?;
        }
        let run: i64 = conn.query_row(
            "SELECT id FROM ferret_runs WHERE run_key = ?1",
            [run_key],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO ferret_processes (run, pid, host, started_ns) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![run, std::process::id(), host, now_ns],
        )?;
        Ok((run, conn.last_insert_rowid()))
    })();
    match r {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// This machine's host name (empty if unknown).
pub(super) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
