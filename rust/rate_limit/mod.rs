//! Rate limiters: a token bucket, an exact sliding-window log, their atomic
//! composition and a per-key window map in bounded memory.
//!
//! Every module but `py.rs` is pure Rust (no pyo3) so `cargo test` covers the
//! algorithms without Python. Shared rules live here:
//!
//! * **Time** is `f64` seconds on any monotonic scale. A `now` earlier than the
//!   latest one a limiter has seen is treated as that latest time, so a clock that
//!   steps back can never un-spend tokens or revive expired acquisitions.
//! * **Errors** name the argument at fault ([`LimitError`]).
//! * **Waits**: `time_until` returns 0.0 exactly when `try_acquire` would admit,
//!   and acquiring at `now + time_until(..)` (computed in f64) is admitted: the
//!   delay is nudged past float rounding by [`settle_delay`].

pub mod composite;
pub mod keyed;
pub mod py;
pub mod token_bucket;
pub mod window;

use std::fmt;

/// A bad argument; its message names the argument and the rule it broke.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitError {
    /// A float argument that must be finite and > 0 (`rate`, `burst`, `window`, `n`).
    NotPositive { name: &'static str, value: f64 },
    /// An integer argument below its minimum (`limit`, `n`, `max_keys`, ...).
    TooSmall {
        name: &'static str,
        value: i64,
        min: i64,
    },
    /// An integer argument above what the limiter can count.
    TooLarge {
        name: &'static str,
        value: i64,
        max: i64,
    },
    /// A `now` that is NaN or infinite.
    BadTime { value: f64 },
    /// A request larger than the limiter's capacity, which could never be admitted.
    NeverAdmitted {
        n: f64,
        capacity_name: &'static str,
        capacity: f64,
    },
    /// A composite limiter built from no limiters.
    Empty,
    /// The same limiter passed twice to a composite.
    Duplicate { index: usize },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPositive { name, value } => {
                write!(f, "{name} must be a finite number > 0, got {value}")
            }
            Self::TooSmall { name, value, min } => {
                write!(f, "{name} must be >= {min}, got {value}")
            }
            Self::TooLarge { name, value, max } => {
                write!(f, "{name} must be <= {max}, got {value}")
            }
            Self::BadTime { value } => {
                write!(f, "now must be a finite number of seconds, got {value}")
            }
            Self::NeverAdmitted {
                n,
                capacity_name,
                capacity,
            } => write!(
                f,
                "n={n} exceeds {capacity_name}={capacity}: such a request could never be admitted"
            ),
            Self::Empty => write!(f, "limiters must hold at least one limiter"),
            Self::Duplicate { index } => write!(
                f,
                "limiters[{index}] appears twice: each limiter may be composed once"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

pub type Result<T> = std::result::Result<T, LimitError>;

/// `value` if finite and > 0.
pub fn positive(name: &'static str, value: f64) -> Result<f64> {
    if value > 0.0 && value.is_finite() {
        Ok(value)
    } else {
        Err(LimitError::NotPositive { name, value })
    }
}

/// `value` as a count if `min <= value <= u32::MAX`.
pub fn count(name: &'static str, value: i64, min: i64) -> Result<u32> {
    if value < min {
        return Err(LimitError::TooSmall { name, value, min });
    }
    u32::try_from(value).map_err(|_| LimitError::TooLarge {
        name,
        value,
        max: u32::MAX.into(),
    })
}

/// `n` as a request a window of `limit` could admit: `1 <= n <= limit`.
pub fn request(n: i64, limit: u32) -> Result<u32> {
    let n = count("n", n, 1)?;
    if n > limit {
        return Err(LimitError::NeverAdmitted {
            n: f64::from(n),
            capacity_name: "limit",
            capacity: f64::from(limit),
        });
    }
    Ok(n)
}

/// `now` if finite.
pub fn finite_time(now: f64) -> Result<f64> {
    if now.is_finite() {
        Ok(now)
    } else {
        Err(LimitError::BadTime { value: now })
    }
}

/// The smallest float above a finite `x >= 0`.
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        f64::from_bits(1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

/// The smallest float delay `d >= estimate` (near it) with `ready(now + d)`.
///
/// `estimate` is the exact-arithmetic answer; float rounding of `now + d` may land
/// just short of the instant `ready` accepts, so the delay grows by a few ulps
/// until the very sum a caller would compute is accepted. `ready` must be
/// monotone in time (once ready, ready later too), which every limiter here is.
pub fn settle_delay(now: f64, estimate: f64, ready: impl Fn(f64) -> bool) -> f64 {
    let mut delay = estimate.max(0.0);
    let mut step = 0.0_f64;
    // Each round at least doubles the nudge; 64 rounds cover any finite gap.
    for _ in 0..64 {
        if ready(now + delay) {
            return delay;
        }
        let sum = now + delay;
        step = (next_up(sum.abs()) - sum.abs())
            .max(step * 2.0)
            .max(next_up(delay) - delay);
        delay += step;
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            positive("rate", 0.0).unwrap_err().to_string(),
            "rate must be a finite number > 0, got 0"
        );
        assert!(positive("burst", f64::NAN).is_err());
        assert!(positive("burst", f64::INFINITY).is_err());
        assert_eq!(
            count("limit", 0, 1).unwrap_err().to_string(),
            "limit must be >= 1, got 0"
        );
        assert!(count("limit", i64::from(u32::MAX) + 1, 1).is_err());
        assert_eq!(count("n", 3, 1), Ok(3));
        assert!(finite_time(f64::NAN).is_err());
    }

    #[test]
    fn settle_delay_lands_on_a_ready_sum() {
        let now = 1e6 + 0.1;
        let target = 1e6 + 0.3;
        let d = settle_delay(now, target - now, |t| t >= target);
        assert!(now + d >= target);
        assert!(d - (target - now) < 1e-9);
        assert_eq!(settle_delay(5.0, 0.0, |_| true), 0.0);
    }
}
