//! The journal's exclusive lock: `<path>.lock`, held with `flock` and holding the owner's pid.
//!
//! `flock` belongs to the open file description, so a second open in the same process is
//! refused too, and the kernel drops the lock when its holder dies (even by `kill -9`).
//! The pid is only for the error message; the lock itself is the `flock`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;

use super::error::JournalError;

pub struct LockFile {
    // Held for the lock's lifetime: closing it releases the flock.
    _file: File,
}

impl LockFile {
    pub fn acquire(journal_path: &str) -> Result<LockFile, JournalError> {
        let path = format!("{journal_path}.lock");
        let open_error = |e: std::io::Error| JournalError::Open {
            path: journal_path.to_string(),
            reason: format!("cannot open lock file {path}: {e}"),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_error)?;
        // SAFETY: the fd is valid for as long as `file` lives.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(JournalError::Locked {
                    path: journal_path.to_string(),
                    pid: text.trim().parse().ok(),
                });
            }
            return Err(open_error(err));
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{pid}\n").as_bytes()))
            .map_err(open_error)?;
        Ok(LockFile { _file: file })
    }
}
