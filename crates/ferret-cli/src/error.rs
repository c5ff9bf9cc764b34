//! CLI errors: user errors exit 2, internal errors exit 1.

use std::fmt;

/// An error the CLI reports on stderr.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: a missing or bad file, an unknown run, a bad option.
    User(String),
    /// Anything else.
    Internal(String),
    /// SQLite trouble reading (or creating) the trace file: a damaged,
    /// truncated or unreadable file is bad input (exit 2); `main` names the
    /// file before the message.
    File(String),
    /// The reader of our output went away (`ferret ... | head`): not an
    /// error worth a message, and the exit code is 0.
    BrokenPipe,
    /// `ferret diff`'s gate failed: the report is printed, exit 1, no message.
    Regression,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::User(_) | CliError::File(_) => 2,
            CliError::Internal(_) => 1,
            CliError::BrokenPipe => 0,
            CliError::Regression => 1,
        }
    }

    pub fn user(msg: impl Into<String>) -> CliError {
        CliError::User(msg.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::User(m) | CliError::Internal(m) | CliError::File(m) => f.write_str(m),
            CliError::BrokenPipe => f.write_str("broken pipe"),
            CliError::Regression => f.write_str("regression found"),
        }
    }
}

impl From<ferret::Error> for CliError {
    fn from(e: ferret::Error) -> Self {
        if let ferret::Error::Storage(s) = &e {
            return CliError::File(file_error(s));
        }
        if e.is_user_error() {
            CliError::User(e.to_string())
        } else {
            CliError::Internal(e.to_string())
        }
    }
}

impl From<ferret_analyze::Error> for CliError {
    fn from(e: ferret_analyze::Error) -> Self {
        if let ferret_analyze::Error::Io(io) = e {
            return io.into();
        }
        if let ferret_analyze::Error::Storage(s) = &e {
            return CliError::File(file_error(s));
        }
        if e.is_user_error() {
            CliError::User(e.to_string())
        } else {
            CliError::Internal(e.to_string())
        }
    }
}

/// What went wrong with a file, in words: SQLite's message, unless it
/// names an internal URI (the read-only fallback opens `file:...?immutable=1`),
/// then the error code's description.
fn file_error(e: &(dyn std::error::Error + 'static)) -> String {
    let Some(e) = e.source().and_then(|s| s.downcast_ref::<rusqlite::Error>()) else {
        return format!("cannot read the database: {e}");
    };
    match e {
        rusqlite::Error::SqliteFailure(f, m) => {
            let what = match f.code {
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                    "damaged or not a database"
                }
                rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied => {
                    "cannot open"
                }
                _ => "cannot read the database",
            };
            match m {
                Some(m) if !m.contains("file:") => format!("{what}: {m}"),
                _ => format!("{what}: {f}"),
            }
        }
        e => format!("bad database: {e}"),
    }
}

impl From<ferret_analyze::analysis::FileError> for CliError {
    fn from(e: ferret_analyze::analysis::FileError) -> Self {
        let msg = e.to_string();
        if e.error.is_user_error() {
            CliError::User(msg)
        } else {
            CliError::Internal(msg)
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::BrokenPipe;
        }
        CliError::Internal(format!("i/o: {e}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            return std::io::Error::from(e).into();
        }
        CliError::Internal(format!("json: {e}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
