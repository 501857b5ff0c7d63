//! An exact sliding-window log: never more than `limit` acquisitions in any
//! half-open interval `[t, t + window)`.
//!
//! An acquisition admitted at `s` counts against every `now` with
//! `now - s < window` and stops counting once `now - s >= window`. Admitted
//! instants are kept as runs `(instant, count)`, so memory is O(distinct
//! instants inside the window) <= O(limit).

use std::collections::VecDeque;

use super::composite::Limit;
use super::{count, positive, request, settle_delay, Result};

#[derive(Debug, Clone, Copy)]
struct Run {
    at: f64,
    count: u32,
}

/// The admitted acquisitions still inside the window, oldest first.
#[derive(Debug, Clone, Default)]
pub struct WindowLog {
    runs: VecDeque<Run>,
    total: u64,
}

impl WindowLog {
    /// An empty log with room for `runs` runs before it grows.
    pub fn with_capacity(runs: usize) -> Self {
        Self {
            runs: VecDeque::with_capacity(runs),
            total: 0,
        }
    }

    /// Forget acquisitions that no longer count at `now`.
    pub fn prune(&mut self, window: f64, now: f64) {
        while let Some(front) = self.runs.front() {
            if now - front.at < window {
                break;
            }
            self.total -= u64::from(front.count);
            self.runs.pop_front();
        }
    }

    /// Acquisitions counting right now (after `prune`).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Whether `n` more fit under `limit` (after `prune`).
    pub fn admits(&self, n: u32, limit: u32) -> bool {
        self.total + u64::from(n) <= u64::from(limit)
    }

    /// Record `n` acquisitions at `now` (not earlier than any recorded).
    pub fn record(&mut self, n: u32, now: f64) {
        self.total += u64::from(n);
        match self.runs.back_mut() {
            Some(back) if back.at == now => back.count += n,
            _ => self.runs.push_back(Run { at: now, count: n }),
        }
    }

    /// Seconds from `now` until `n` fit under `limit` (after `prune`; `n <= limit`).
    pub fn wait(&self, n: u32, limit: u32, window: f64, now: f64) -> f64 {
        if self.admits(n, limit) {
            return 0.0;
        }
        // The oldest `need` acquisitions must expire; the run holding the last of them decides.
        let need = self.total + u64::from(n) - u64::from(limit);
        let mut seen = 0_u64;
        let mut at = now;
        for run in &self.runs {
            seen += u64::from(run.count);
            at = run.at;
            if seen >= need {
                break;
            }
        }
        settle_delay(now, at + window - now, |t| t - at >= window)
    }
}

/// One exact sliding window with its own clock floor.
#[derive(Debug, Clone)]
pub struct WindowLimiter {
    limit: u32,
    window: f64,
    log: WindowLog,
    latest: f64,
}

impl WindowLimiter {
    pub fn new(limit: i64, window: f64) -> Result<Self> {
        Ok(Self {
            limit: count("limit", limit, 1)?,
            window: positive("window", window)?,
            log: WindowLog::default(),
            latest: f64::NEG_INFINITY,
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> f64 {
        self.window
    }

    /// Clamp `now` to the latest time seen and drop what expired by then.
    fn advance(&mut self, now: f64) -> f64 {
        self.latest = self.latest.max(now);
        self.log.prune(self.window, self.latest);
        self.latest
    }

    fn check_n(&self, n: i64) -> Result<u32> {
        request(n, self.limit)
    }

    pub fn try_acquire(&mut self, n: i64, now: f64) -> Result<bool> {
        let n = self.check_n(n)?;
        let now = self.advance(now);
        let admitted = self.log.admits(n, self.limit);
        if admitted {
            self.log.record(n, now);
        }
        Ok(admitted)
    }

    /// Seconds from the latest time seen until `n` would be admitted; 0.0 if now.
    pub fn time_until(&mut self, n: i64, now: f64) -> Result<f64> {
        let n = self.check_n(n)?;
        let now = self.advance(now);
        Ok(self.log.wait(n, self.limit, self.window, now))
    }

    /// Acquisitions that would be admitted at `now`.
    pub fn tokens(&mut self, now: f64) -> u64 {
        self.advance(now);
        u64::from(self.limit).saturating_sub(self.log.total())
    }

    /// Change the limit; acquisitions already recorded keep counting.
    pub fn set_limit(&mut self, limit: i64) -> Result<()> {
        self.limit = count("limit", limit, 1)?;
        Ok(())
    }
}

impl Limit for WindowLimiter {
    fn check(&self, n: u32) -> Result<()> {
        self.check_n(i64::from(n)).map(|_| ())
    }

    fn admits(&mut self, n: u32, now: f64) -> bool {
        self.advance(now);
        self.log.admits(n, self.limit)
    }

    fn consume(&mut self, n: u32) {
        self.log.record(n, self.latest);
    }

    fn wait(&mut self, n: u32, now: f64) -> f64 {
        let now = self.advance(now);
        self.log.wait(n, self.limit, self.window, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_limit_then_refuses_until_the_oldest_is_window_old() {
        let mut w = WindowLimiter::new(2, 1.0).unwrap();
        assert!(w.try_acquire(1, 0.0).unwrap());
        assert!(w.try_acquire(1, 0.5).unwrap());
        assert!(!w.try_acquire(1, 0.999).unwrap());
        assert!((w.time_until(1, 0.999).unwrap() - 0.001).abs() < 1e-12);
        assert!(
            w.try_acquire(1, 1.0).unwrap(),
            "the window is half-open: s + window no longer counts s"
        );
        assert!(!w.try_acquire(1, 1.4).unwrap());
        assert!(w.try_acquire(1, 1.5).unwrap());
    }

    #[test]
    fn batches_share_one_run_and_expire_together() {
        let mut w = WindowLimiter::new(5, 10.0).unwrap();
        assert!(w.try_acquire(3, 1.0).unwrap());
        assert!(w.try_acquire(2, 1.0).unwrap());
        assert_eq!(w.log.runs.len(), 1);
        assert_eq!(w.tokens(5.0), 0);
        assert_eq!(w.time_until(4, 5.0).unwrap(), 6.0);
        assert_eq!(w.tokens(11.0), 5);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(WindowLimiter::new(0, 1.0).is_err());
        assert!(WindowLimiter::new(1, 0.0).is_err());
        let mut w = WindowLimiter::new(3, 1.0).unwrap();
        assert!(w.try_acquire(4, 0.0).is_err());
        assert!(w.time_until(0, 0.0).is_err());
        assert!(w.set_limit(0).is_err());
    }

    #[test]
    fn lowering_the_limit_keeps_past_acquisitions() {
        let mut w = WindowLimiter::new(4, 1.0).unwrap();
        assert!(w.try_acquire(3, 0.0).unwrap());
        w.set_limit(2).unwrap();
        assert_eq!(w.tokens(0.5), 0);
        assert!(!w.try_acquire(1, 0.5).unwrap());
        assert!(w.try_acquire(2, 1.0).unwrap());
    }

    #[test]
    fn time_going_back_counts_as_the_latest_time() {
        let mut w = WindowLimiter::new(1, 1.0).unwrap();
        assert!(w.try_acquire(1, 10.0).unwrap());
        assert!(!w.try_acquire(1, 0.0).unwrap());
        assert!(w.try_acquire(1, 11.0).unwrap());
    }
}
