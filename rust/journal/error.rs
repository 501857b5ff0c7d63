//! The journal's errors, each naming the file and the cause.

use std::fmt;

/// Why a journal operation failed.
#[derive(Clone, Debug, PartialEq)]
pub enum JournalError {
    /// The file cannot be used at all (locked, corrupt, newer schema, unreadable).
    Open { path: String, reason: String },
    /// Another process (or another `Journal` in this one) holds the journal.
    Locked { path: String, pid: Option<u32> },
    /// The transaction failed and was rolled back (disk full, read-only, I/O error).
    Storage { path: String, reason: String },
    /// The operation made no sense for the journal's contents (unknown id, reused seq);
    /// nothing of it was applied and the rest of its transaction went on.
    Invalid(String),
    /// The journal was closed before the operation ran.
    Closed { path: String },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Open { path, reason } => {
                write!(f, "cannot open journal {path}: {reason}")
            }
            JournalError::Locked {
                path,
                pid: Some(pid),
            } => {
                write!(f, "journal {path} is already open (locked by pid {pid})")
            }
            JournalError::Locked { path, pid: None } => {
                write!(
                    f,
                    "journal {path} is already open (locked by an unknown pid)"
                )
            }
            JournalError::Storage { path, reason } => {
                write!(
                    f,
                    "journal {path}: transaction failed and was rolled back: {reason}"
                )
            }
            JournalError::Invalid(reason) => f.write_str(reason),
            JournalError::Closed { path } => write!(f, "journal {path} is closed"),
        }
    }
}

impl std::error::Error for JournalError {}
