//! Group commit: one writer thread owns the `Store`; callers submit operations and get tickets.
//!
//! The writer takes everything queued (at most `max_batch_ops`, after waiting at most
//! `max_wait` for more once the first arrived) into one transaction, commits it with one
//! fsync, then publishes "committed up to ticket T" and each ticket's result: sync
//! waiters wake on a condvar, an event loop on the read end of a pipe (`notify_fd`).
//! Results of tickets submitted with `wait = false` are collected by `drain` instead.
//! A failed commit is rolled back and every ticket in it gets the error.

use std::collections::{HashMap, VecDeque};
use std::os::unix::io::RawFd;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::JournalError;
use super::store::{Options, Store};
use super::types::{Op, Sync, Value};

pub struct JournalOptions {
    pub sync: Sync,
    pub dedup_window: f64,
    pub dedup_max_entries: u64,
    /// Most operations in one transaction.
    pub max_batch_ops: usize,
    /// How long the writer waits for more operations after the first, before committing.
    pub max_wait: Duration,
    /// Nothing to do for this long: checkpoint (TRUNCATE) and vacuum.
    pub idle_interval: Duration,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            sync: Sync::Full,
            dedup_window: 7.0 * 86400.0,
            dedup_max_entries: 1_000_000,
            max_batch_ops: 4096,
            max_wait: Duration::ZERO,
            idle_interval: Duration::from_secs(1),
        }
    }
}

pub type Outcome = Result<Value, JournalError>;

struct Queue {
    ops: VecDeque<(u64, Op, bool)>,
    next_ticket: u64,
    closing: bool,
}

struct Done {
    committed: u64,
    /// Results of tickets someone `wait`s for.
    waited: HashMap<u64, Outcome>,
    /// Results of the others, for `drain`, in ticket order.
    drained: Vec<(u64, Outcome)>,
    /// The writer has stopped (closed, or its thread died).
    stopped: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    done: Mutex<Done>,
    committed: Condvar,
    path: String,
    /// Pipe: the writer writes a byte per commit to `[1]`; an event loop watches `[0]`.
    pipe: [RawFd; 2],
}

/// A journal: the writer thread and the way to reach it.
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn nonblocking_pipe() -> std::io::Result<[RawFd; 2]> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for fd in fds {
        // SAFETY: fd was just opened by pipe().
        unsafe {
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok(fds)
}

impl Journal {
    pub fn open(path: &str, options: JournalOptions) -> Result<Journal, JournalError> {
        let store = Store::open(
            path,
            Options {
                sync: options.sync,
                dedup_window: options.dedup_window,
                dedup_max_entries: options.dedup_max_entries,
            },
        )?;
        let pipe = nonblocking_pipe().map_err(|e| JournalError::Open {
            path: path.to_string(),
            reason: format!("cannot make the commit pipe: {e}"),
        })?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                ops: VecDeque::new(),
                next_ticket: 1,
                closing: false,
            }),
            work: Condvar::new(),
            done: Mutex::new(Done {
                committed: 0,
                waited: HashMap::new(),
                drained: Vec::new(),
                stopped: false,
            }),
            committed: Condvar::new(),
            path: path.to_string(),
            pipe,
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sluiceway-journal".into())
            .spawn(move || {
                // A panic must not leave callers waiting for commits that will never come.
                let ended = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    write_loop(&writer, store, options)
                }));
                writer.queue.lock().closing = true;
                writer.done.lock().stopped = true;
                writer.committed.notify_all();
                notify(&writer);
                if let Err(panic) = ended {
                    std::panic::resume_unwind(panic);
                }
            })
            .map_err(|e| JournalError::Open {
                path: path.to_string(),
                reason: format!("cannot start writer: {e}"),
            })?;
        Ok(Journal {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// The pipe's read end: readable after each commit. `drain` empties it.
    pub fn notify_fd(&self) -> RawFd {
        self.shared.pipe[0]
    }

    /// Queue `op`; its ticket. With `wait`, collect its result with `wait`; else with `drain`.
    pub fn submit(&self, op: Op, wait: bool) -> Result<u64, JournalError> {
        let mut queue = self.shared.queue.lock();
        if queue.closing {
            return Err(JournalError::Closed {
                path: self.shared.path.clone(),
            });
        }
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.ops.push_back((ticket, op, wait));
        drop(queue);
        self.shared.work.notify_one();
        Ok(ticket)
    }

    /// Block until `ticket` (submitted with `wait = true`) is committed; its result.
    pub fn wait(&self, ticket: u64) -> Outcome {
        let mut done = self.shared.done.lock();
        loop {
            if let Some(outcome) = done.waited.remove(&ticket) {
                return outcome;
            }
            if done.committed >= ticket || done.stopped {
                return Err(JournalError::Closed {
                    path: self.shared.path.clone(),
                });
            }
            self.shared.committed.wait(&mut done);
        }
    }

    /// Submit and wait.
    pub fn call(&self, op: Op) -> Outcome {
        let ticket = self.submit(op, true)?;
        self.wait(ticket)
    }

    /// Highest processed ticket, the results of non-waited tickets since the last drain,
    /// and whether the writer has stopped (no ticket beyond the first will ever be processed).
    pub fn drain(&self) -> (u64, Vec<(u64, Outcome)>, bool) {
        let mut sink = [0u8; 256];
        // SAFETY: reading into a local buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.shared.pipe[0], sink.as_mut_ptr().cast(), sink.len()) } > 0 {
        }
        let mut done = self.shared.done.lock();
        let drained = std::mem::take(&mut done.drained);
        (done.committed, drained, done.stopped)
    }

    /// Commit what is queued, stop the writer and release the file. Idempotent.
    pub fn close(&self) {
        self.shared.queue.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.queue.lock().closing
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
        for fd in self.shared.pipe {
            // SAFETY: the pipe is ours and the writer has stopped using it.
            unsafe { libc::close(fd) };
        }
    }
}

fn write_loop(shared: &Shared, mut store: Store, options: JournalOptions) {
    let mut tidy = false;
    loop {
        let batch = {
            let mut queue = shared.queue.lock();
            while queue.ops.is_empty() && !queue.closing {
                if tidy {
                    let timed_out = shared
                        .work
                        .wait_for(&mut queue, options.idle_interval)
                        .timed_out();
                    if timed_out && queue.ops.is_empty() {
                        // The tidy-up runs unlocked: submitters never wait on I/O.
                        drop(queue);
                        let _ = store.tidy();
                        tidy = false;
                        queue = shared.queue.lock();
                    }
                } else {
                    shared.work.wait(&mut queue);
                }
            }
            if queue.ops.is_empty() {
                break;
            }
            if !options.max_wait.is_zero() && queue.ops.len() < options.max_batch_ops {
                let deadline = Instant::now() + options.max_wait;
                while queue.ops.len() < options.max_batch_ops && !queue.closing {
                    if shared.work.wait_until(&mut queue, deadline).timed_out() {
                        break;
                    }
                }
            }
            let n = queue.ops.len().min(options.max_batch_ops);
            queue.ops.drain(..n).collect::<Vec<_>>()
        };
        commit_batch(shared, &mut store, batch);
        tidy = true;
    }
    let _ = store.tidy();
    // `store` drops here: the connection closes, then the lock file is released.
}

fn commit_batch(shared: &Shared, store: &mut Store, batch: Vec<(u64, Op, bool)>) {
    let tickets: Vec<(u64, bool)> = batch
        .iter()
        .map(|(ticket, _, wait)| (*ticket, *wait))
        .collect();
    let mut results = Vec::with_capacity(batch.len());
    let mut failure = store.begin().err();
    if failure.is_none() {
        for (ticket, op, wait) in batch {
            match store.apply(op) {
                // Nothing to report: the commit itself is the answer.
                Ok(Value::None) if !wait => {}
                Ok(value) => results.push((ticket, Ok(value), wait)),
                Err(e @ JournalError::Invalid(_)) => results.push((ticket, Err(e), wait)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if failure.is_none() {
        failure = store.commit().err();
    }
    if let Some(error) = &failure {
        store.rollback();
        results = tickets
            .iter()
            .map(|&(ticket, wait)| (ticket, Err(error.clone()), wait))
            .collect();
    }
    let mut done = shared.done.lock();
    for (ticket, outcome, wait) in results {
        if wait {
            done.waited.insert(ticket, outcome);
        } else {
            done.drained.push((ticket, outcome));
        }
    }
    done.committed = tickets
        .last()
        .map(|(ticket, _)| *ticket)
        .unwrap_or(done.committed);
    drop(done);
    shared.committed.notify_all();
    notify(shared);
}

fn notify(shared: &Shared) {
    let byte = 1u8;
    // SAFETY: writing one byte from a local to our own pipe. A full pipe (EAGAIN) already
    // holds a wake-up, so a failed write loses nothing.
    unsafe { libc::write(shared.pipe[1], (&byte as *const u8).cast(), 1) };
}
