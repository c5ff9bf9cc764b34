//! CLI errors: user errors exit 2, internal errors exit 1.

use std::fmt;

/// An error the CLI reports on stderr.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: a missing or bad file, an unknown run, a bad option.
    User(String),
    /// Anything else.
    Internal(String),
    /// SQLite or I/O trouble reading (or creating) the trace file: a
    /// damaged, truncated or unreadable file is bad input (exit 2); `main`
    /// names the file.
    File(ferret::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::User(_) | CliError::File(_) => 2,
            CliError::Internal(_) => 1,
        }
    }

    pub fn user(msg: impl Into<String>) -> CliError {
        CliError::User(msg.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::User(m) | CliError::Internal(m) => f.write_str(m),
            CliError::File(e) => f.write_str(&file_error(e)),
        }
    }
}

impl From<ferret::Error> for CliError {
    fn from(e: ferret::Error) -> Self {
        if e.is_user_error() {
            CliError::User(e.to_string())
        } else {
            CliError::File(e)
        }
    }
}

/// What went wrong with a file, in words: SQLite's message, unless it
/// names an internal URI (the read-only fallback opens `file:...?immutable=1`),
/// then the error code's description.
fn file_error(e: &ferret::Error) -> String {
    match e {
        ferret::Error::Sqlite(rusqlite::Error::SqliteFailure(f, Some(m)))
            if m.contains("file:") =>
        {
            format!("cannot read the database: {f}")
        }
        ferret::Error::Sqlite(rusqlite::Error::SqliteFailure(f, m)) => {
            let what = match f.code {
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                    "damaged or not a database"
                }
                rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied => {
                    "cannot open"
                }
                _ => "cannot read the database",
            };
            format!(
                "{what}: {}",
                m.as_deref().map_or_else(|| f.to_string(), str::to_owned)
            )
        }
        ferret::Error::Sqlite(e) => format!("bad database: {e}"),
        ferret::Error::Io(e) => format!("cannot read: {e}"),
        other => other.to_string(),
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `ferret ... | head`: not an error worth a message.
            std::process::exit(0);
        }
        CliError::Internal(format!("i/o: {e}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Internal(format!("json: {e}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
