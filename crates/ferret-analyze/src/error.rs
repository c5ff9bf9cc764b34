//! The analyzer's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong opening or reading a trace file.
///
/// Non-exhaustive: new kinds of failure may be added. SQLite's own error is
/// reachable through [`std::error::Error::source`] only, so that this type
/// does not tie the crate's API to one version of the SQLite bindings.
#[derive(Debug)]
#[non_exhaustive]
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
    /// The file was written by a newer ferret (the file, its format version).
    UnsupportedVersion(PathBuf, i64),
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
            Error::NotFound(p) => write!(f, "{}: no such file", p.display()),
            Error::EmptyFile(p) => write!(f, "{}: empty file, not a trace file", p.display()),
            Error::Unreadable(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            Error::NotSqlite(p) => write!(f, "{}: not an SQLite database", p.display()),
            Error::NoSpanTables(p) => write!(
                f,
                "{}: an SQLite database, but not a ferret or ferret-io trace file (no span tables)",
                p.display()
            ),
            Error::UnsupportedVersion(p, v) => write!(
                f,
                "{}: trace format version {v} is newer than this ferret understands; upgrade ferret",
                p.display()
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

impl From<serde_json::Error> for Error {
    /// JSON output failures are write failures (serializing our own data
    /// cannot fail otherwise).
    fn from(e: serde_json::Error) -> Self {
        Error::Io(e.into())
    }
}

impl Error {
    /// True when the error is the user's input (a bad file, an unknown run,
    /// a bad option), as opposed to an internal failure. The CLI exits 2 for
    /// these and 1 for the rest.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Storage(_) | Error::Io(_))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
