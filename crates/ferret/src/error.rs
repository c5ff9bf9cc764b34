//! The library's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading a trace file.
#[derive(Debug)]
pub enum Error {
    /// The file does not exist.
    NotFound(PathBuf),
    /// The file is empty (0 bytes).
    EmptyFile(PathBuf),
    /// The file exists but cannot be read (permissions, or not a regular file).
    Unreadable(PathBuf, std::io::Error),
    /// The file exists but is not an SQLite database.
    NotSqlite(PathBuf),
    /// SQLite, but neither a ferret nor a ferret-io trace file.
    NoSpanTables(PathBuf),
    /// A ferret-io file: the recorder writes native files only.
    WrongKind(PathBuf),
    /// An SQLite database of some other program: the recorder will not add
    /// its tables to it.
    ForeignDatabase(PathBuf),
    /// The file was written by a newer ferret (format version).
    UnsupportedVersion(i64),
    /// The file holds no runs.
    NoRuns,
    /// The run asked for is not in the file; `known` lists a few that are.
    UnknownRun {
        /// The run id asked for.
        run: String,
        /// Some runs the file does have (latest first).
        known: Vec<String>,
    },
    /// A bad argument (e.g. an invalid option value).
    Invalid(String),
    /// Any other SQLite failure.
    Sqlite(rusqlite::Error),
    /// An I/O failure.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(p) => write!(f, "{}: no such file", p.display()),
            Error::EmptyFile(p) => write!(f, "{}: empty file, not a trace file", p.display()),
            Error::Unreadable(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            Error::NotSqlite(p) => write!(f, "{}: not an SQLite database", p.display()),
            Error::NoSpanTables(p) => write!(
                f,
                "{}: an SQLite database, but not a ferret or ferret-io trace file (no span tables)",
                p.display()
            ),
            Error::WrongKind(p) => write!(
                f,
                "{}: a ferret-io (Python) trace file; ferret records into native files only",
                p.display()
            ),
            Error::ForeignDatabase(p) => write!(
                f,
                "{}: an SQLite database with tables of its own, not a ferret trace file; \
                 record into a new file instead",
                p.display()
            ),
            Error::UnsupportedVersion(v) => write!(
                f,
                "trace format version {v} is newer than this ferret understands; upgrade ferret"
            ),
            Error::NoRuns => write!(f, "no runs in this file"),
            Error::UnknownRun { run, known } => {
                write!(f, "no run '{run}' in this file")?;
                if !known.is_empty() {
                    write!(f, "; runs here include: {}", known.join(", "))?;
                }
                Ok(())
            }
            Error::Invalid(m) => f.write_str(m),
            Error::Sqlite(e) => write!(f, "sqlite: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// True when the error is the user's input (a bad file, an unknown run,
    /// a bad option), as opposed to an internal failure. The CLI exits 2 for
    /// these and 1 for the rest.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Sqlite(_) | Error::Io(_))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
