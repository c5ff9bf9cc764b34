//! CLI errors: user errors exit 2, internal errors exit 1.

use std::fmt;

/// An error the CLI reports on stderr.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: a missing or bad file, an unknown run, a bad option.
    User(String),
    /// Anything else.
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::User(_) => 2,
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
        }
    }
}

impl From<ferret::Error> for CliError {
    fn from(e: ferret::Error) -> Self {
        if e.is_user_error() {
            CliError::User(e.to_string())
        } else {
            CliError::Internal(e.to_string())
        }
    }
}

impl From<ferret_analyze::Error> for CliError {
    fn from(e: ferret_analyze::Error) -> Self {
        if e.is_user_error() {
            CliError::User(e.to_string())
        } else {
            CliError::Internal(e.to_string())
        }
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
