//! The recorder's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong opening a trace file for recording or
/// closing a profiler.
///
/// Non-exhaustive: new kinds of failure may be added. SQLite's own error is
/// reachable through [`std::error::Error::source`] only, so that this type
/// does not tie the crate's API to one version of the SQLite bindings.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file exists but is not an SQLite database.
    NotSqlite(PathBuf),
    /// A ferret-io file: the recorder writes native files only.
    WrongKind(PathBuf),
    /// An SQLite database of some other program: the recorder will not add
    /// its tables to it.
    ForeignDatabase(PathBuf),
    /// The file was written by a newer ferret (the file, its format version).
    UnsupportedVersion(PathBuf, i64),
    /// A bad argument (e.g. an invalid option value).
    Invalid(String),
    /// The background writer thread failed or did not finish in time: what
    /// it had not committed is lost (and counted in the run's counters).
    WriterFailed(String),
    /// Any other SQLite failure (the SQLite error is the [`source`](std::error::Error::source)).
    Storage(StorageError),
    /// An I/O failure.
    Io(std::io::Error),
}

/// An SQLite failure. Its cause is the [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct StorageError(rusqlite::Error);

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sqlite: {}", self.0)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSqlite(p) => write!(f, "{}: not an SQLite database", p.display()),
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
            Error::UnsupportedVersion(p, v) => write!(
                f,
                "{}: trace format version {v} is newer than this ferret understands; upgrade ferret",
                p.display()
            ),
            Error::Invalid(m) => f.write_str(m),
            Error::WriterFailed(m) => write!(f, "the writer thread failed: {m}"),
            Error::Storage(e) => e.fmt(f),
            Error::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Storage(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[doc(hidden)]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(StorageError(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// True when the error is the user's input (a bad file, a bad option),
    /// as opposed to an internal failure. The CLI exits 2 for these and 1
    /// for the rest.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::Storage(_) | Error::Io(_) | Error::WriterFailed(_)
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
