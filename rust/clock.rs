//! The core's default clock.
//!
//! Every time-dependent method takes `now: Option<f64>` (seconds on any monotonic
//! scale) so tests drive time by hand. Without it the structure reads
//! `CLOCK_MONOTONIC`, the very clock behind Python's `time.monotonic()`, so a
//! caller may mix explicit `now=time.monotonic()` values with defaulted calls.

/// Seconds on the same scale as Python's `time.monotonic()`.
#[cfg(unix)]
pub fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on unix.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Seconds since the first call in this process (no shared scale off unix).
#[cfg(not(unix))]
pub fn monotonic() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// `now` if the caller gave one, else the monotonic clock.
#[inline]
pub fn resolve(now: Option<f64>) -> f64 {
    now.unwrap_or_else(monotonic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let a = monotonic();
        let b = monotonic();
        assert!(b >= a);
    }

    #[test]
    fn resolve_prefers_the_given_time() {
        assert_eq!(resolve(Some(12.5)), 12.5);
    }
}
