//! A token bucket: `rate` tokens per second accrue up to `burst`; a request
//! for `n` tokens is admitted while at least `n` are held.

use super::composite::Limit;
use super::{positive, settle_delay, LimitError, Result};

/// Token bucket state, refilled lazily on every call (no timer).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// The latest time seen; tokens are counted as of this instant.
    last: f64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: f64) -> Result<Self> {
        let rate = positive("rate", rate)?;
        let burst = positive("burst", burst)?;
        Ok(Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Accrue tokens up to `now` (an earlier `now` counts as the latest time seen).
    fn refill(&mut self, now: f64) {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// `n` if it is a request the bucket could ever admit.
    fn check(&self, n: f64) -> Result<f64> {
        let n = positive("n", n)?;
        if n > self.burst {
            return Err(LimitError::NeverAdmitted {
                n,
                capacity_name: "burst",
                capacity: self.burst,
            });
        }
        Ok(n)
    }

    /// Take `n` tokens if held at `now`; all or nothing.
    pub fn try_acquire(&mut self, n: f64, now: f64) -> Result<bool> {
        let n = self.check(n)?;
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Seconds from the latest time seen until `n` tokens are held; 0.0 if they are now.
    pub fn time_until(&mut self, n: f64, now: f64) -> Result<f64> {
        let n = self.check(n)?;
        self.refill(now);
        Ok(self.delay(n))
    }

    fn delay(&self, n: f64) -> f64 {
        if self.tokens >= n {
            return 0.0;
        }
        let (tokens, last, rate, burst) = (self.tokens, self.last, self.rate, self.burst);
        settle_delay(last, (n - tokens) / rate, |t| {
            (tokens + (t - last) * rate).min(burst) >= n
        })
    }

    /// Tokens held at `now`.
    pub fn tokens(&mut self, now: f64) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Change the refill rate from `now` on; tokens accrued until `now` are kept.
    pub fn set_rate(&mut self, rate: f64, now: f64) -> Result<()> {
        let rate = positive("rate", rate)?;
        self.refill(now);
        self.rate = rate;
        Ok(())
    }
}

impl Limit for TokenBucket {
    fn check(&self, n: u32) -> Result<()> {
        TokenBucket::check(self, f64::from(n)).map(|_| ())
    }

    fn admits(&mut self, n: u32, now: f64) -> bool {
        self.refill(now);
        self.tokens >= f64::from(n)
    }

    fn consume(&mut self, n: u32) {
        self.tokens -= f64::from(n);
    }

    fn wait(&mut self, n: u32, now: f64) -> f64 {
        self.refill(now);
        self.delay(f64::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_and_refills_at_rate() {
        let mut b = TokenBucket::new(2.0, 4.0, 0.0).unwrap();
        assert_eq!(b.tokens(0.0), 4.0);
        assert!(b.try_acquire(4.0, 0.0).unwrap());
        assert!(!b.try_acquire(1.0, 0.25).unwrap());
        assert_eq!(b.tokens(0.5), 1.0);
        assert_eq!(b.tokens(100.0), 4.0, "never above burst");
    }

    #[test]
    fn time_until_is_zero_when_available_and_exact_otherwise() {
        let mut b = TokenBucket::new(3.0, 1.0, 10.0).unwrap();
        assert_eq!(b.time_until(1.0, 10.0).unwrap(), 0.0);
        assert!(b.try_acquire(1.0, 10.0).unwrap());
        let d = b.time_until(1.0, 10.0).unwrap();
        assert!((d - 1.0 / 3.0).abs() < 1e-12);
        assert!(!b.try_acquire(1.0, 10.0 + d * 0.99).unwrap());
        assert!(b.try_acquire(1.0, 10.0 + d).unwrap());
    }

    #[test]
    fn a_request_above_burst_is_an_error() {
        let mut b = TokenBucket::new(1.0, 2.0, 0.0).unwrap();
        assert!(matches!(
            b.time_until(3.0, 0.0),
            Err(LimitError::NeverAdmitted { .. })
        ));
        assert!(b.try_acquire(2.5, 0.0).is_err());
        assert!(b.try_acquire(0.0, 0.0).is_err());
        assert!(TokenBucket::new(0.0, 1.0, 0.0).is_err());
        assert!(TokenBucket::new(1.0, -1.0, 0.0).is_err());
    }

    #[test]
    fn set_rate_keeps_accrued_tokens() {
        let mut b = TokenBucket::new(1.0, 10.0, 0.0).unwrap();
        assert!(b.try_acquire(10.0, 0.0).unwrap());
        b.set_rate(100.0, 2.0).unwrap();
        assert_eq!(b.tokens(2.0), 2.0);
        assert!((b.tokens(2.05) - 7.0).abs() < 1e-9);
    }

    #[test]
    fn time_going_back_counts_as_the_latest_time() {
        let mut b = TokenBucket::new(1.0, 1.0, 5.0).unwrap();
        assert!(b.try_acquire(1.0, 5.0).unwrap());
        assert_eq!(b.tokens(1.0), 0.0);
        assert!(!b.try_acquire(1.0, 5.5).unwrap());
        assert!(b.try_acquire(1.0, 6.0).unwrap());
    }
}
