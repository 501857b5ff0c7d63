//! When an entry stops being fresh and when it is gone.
//!
//! An entry set at time `t` with `ttl` and `stale_ttl` is *fresh* on
//! `[t, t + ttl)`, *stale* on `[t + ttl, t + ttl + stale_ttl)` and *expired* from
//! then on. Intervals are half-open so a `ttl` of 0 is never fresh.

/// Where an entry stands at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Expired,
}

/// The two instants that end an entry's fresh and stale periods.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deadline {
    pub fresh_until: f64,
    pub stale_until: f64,
}

impl Deadline {
    /// Never stale, never expired: an entry stored without a TTL.
    pub const NEVER: Deadline = Deadline {
        fresh_until: f64::INFINITY,
        stale_until: f64::INFINITY,
    };

    /// The deadline of an entry stored at `now` with a finite `ttl` and `stale_ttl`.
    pub fn after(now: f64, ttl: f64, stale_ttl: f64) -> Deadline {
        let fresh_until = now + ttl;
        Deadline {
            fresh_until,
            stale_until: fresh_until + stale_ttl,
        }
    }

    /// Whether answering [`Deadline::at`] needs the time (entries without a TTL do not).
    #[inline]
    pub fn needs_clock(&self) -> bool {
        self.fresh_until.is_finite()
    }

    /// Where the entry stands at `now`.
    #[inline]
    pub fn at(&self, now: f64) -> Freshness {
        if now < self.fresh_until {
            Freshness::Fresh
        } else if now < self.stale_until {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_stale_then_expired() {
        let d = Deadline::after(100.0, 10.0, 5.0);
        assert_eq!(d.at(100.0), Freshness::Fresh);
        assert_eq!(d.at(109.999), Freshness::Fresh);
        assert_eq!(d.at(110.0), Freshness::Stale);
        assert_eq!(d.at(114.999), Freshness::Stale);
        assert_eq!(d.at(115.0), Freshness::Expired);
    }

    #[test]
    fn zero_ttl_is_never_fresh() {
        let d = Deadline::after(3.0, 0.0, 0.0);
        assert_eq!(d.at(3.0), Freshness::Expired);
        let d = Deadline::after(3.0, 0.0, 1.0);
        assert_eq!(d.at(3.0), Freshness::Stale);
    }

    #[test]
    fn never_needs_no_clock() {
        assert!(!Deadline::NEVER.needs_clock());
        assert_eq!(Deadline::NEVER.at(1e300), Freshness::Fresh);
    }

    #[test]
    fn an_endless_stale_window_never_expires() {
        let d = Deadline::after(0.0, 1.0, f64::INFINITY);
        assert!(d.needs_clock());
        assert_eq!(d.at(1e300), Freshness::Stale);
    }
}
