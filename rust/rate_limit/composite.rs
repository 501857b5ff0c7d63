//! Atomic composition: admit only when every limiter admits, then consume from
//! all of them; otherwise consume from none.

use std::ops::DerefMut;

use super::{LimitError, Result};

/// What a composite needs from each member. `admits` may refresh state (refill,
/// expiry) but never consumes; `consume` follows an `admits(n, now) == true`
/// with no other call in between, at the same `now`.
pub trait Limit {
    /// `Ok` if `n` is a request this limiter could ever admit.
    fn check(&self, n: u32) -> Result<()>;
    fn admits(&mut self, n: u32, now: f64) -> bool;
    fn consume(&mut self, n: u32);
    /// Seconds from the latest time seen until `n` would be admitted.
    fn wait(&mut self, n: u32, now: f64) -> f64;
}

/// `Err(Empty)` for no members.
pub fn non_empty(len: usize) -> Result<()> {
    if len == 0 {
        Err(LimitError::Empty)
    } else {
        Ok(())
    }
}

/// Take `n` from every member, or from none. `M` is anything that lends a
/// limiter mutably (a `&mut` or a lock guard), so callers need not collect twice.
pub fn try_acquire_all<M: DerefMut<Target = dyn Limit + 'static>>(
    members: &mut [M],
    n: u32,
    now: f64,
) -> Result<bool> {
    // One pass: a refusal does not stop the checks, so a request some member
    // could never admit is an error whatever the others say. `admits` past a
    // refusal only refreshes (refill, expiry), which no caller can observe.
    let mut admitted = true;
    for m in members.iter_mut() {
        m.check(n)?;
        admitted &= m.admits(n, now);
    }
    if admitted {
        for m in members.iter_mut() {
            m.consume(n);
        }
    }
    Ok(admitted)
}

/// Seconds until every member admits `n`: the largest member wait, since each
/// member, once ready, stays ready while nothing is consumed.
pub fn time_until_all<M: DerefMut<Target = dyn Limit + 'static>>(
    members: &mut [M],
    n: u32,
    now: f64,
) -> Result<f64> {
    for m in members.iter() {
        m.check(n)?;
    }
    Ok(members
        .iter_mut()
        .map(|m| m.wait(n, now))
        .fold(0.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::super::token_bucket::TokenBucket;
    use super::super::window::WindowLimiter;
    use super::*;

    #[test]
    fn a_refusal_consumes_nothing_anywhere() {
        let mut bucket = TokenBucket::new(1.0, 5.0, 0.0).unwrap();
        let mut window = WindowLimiter::new(2, 10.0).unwrap();
        for _ in 0..2 {
            assert!(
                try_acquire_all(&mut [&mut bucket as &mut dyn Limit, &mut window], 1, 0.0).unwrap()
            );
        }
        assert!(
            !try_acquire_all(&mut [&mut bucket as &mut dyn Limit, &mut window], 1, 0.0).unwrap()
        );
        assert_eq!(
            bucket.tokens(0.0),
            3.0,
            "the refused call took nothing from the bucket"
        );
        assert!(
            (time_until_all(&mut [&mut bucket as &mut dyn Limit, &mut window], 1, 0.0).unwrap()
                - 10.0)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn a_request_one_member_can_never_admit_is_an_error() {
        let mut bucket = TokenBucket::new(1.0, 5.0, 0.0).unwrap();
        let mut window = WindowLimiter::new(2, 10.0).unwrap();
        assert!(
            try_acquire_all(&mut [&mut bucket as &mut dyn Limit, &mut window], 3, 0.0).is_err()
        );
        assert_eq!(bucket.tokens(0.0), 5.0);
        assert!(non_empty(0).is_err());
    }
}
