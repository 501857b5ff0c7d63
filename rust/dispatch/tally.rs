//! Latencies counted into geometric buckets, exactly as `LatencyHistogram.record_many` counts them.
//!
//! A positive value `v` above `min_value` goes to bucket `ceil(ln(v) / ln(gamma))`; values
//! in `[0, min_value]` are counted as zeros. The running sum adds values one by one in
//! order, so it equals the Python loop's float sum bit for bit.

use hashbrown::HashMap;

/// A value that is not a latency: negative, NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidLatency(pub f64);

/// A delta of bucket counts plus the running totals of the histogram it is added to.
#[derive(Debug, Clone)]
pub struct Tally {
    log_gamma: f64,
    min_value: f64,
    /// New counts per bucket index (to be added to the histogram's own).
    pub buckets: HashMap<i64, u64>,
    pub zeros: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Tally {
    /// A tally continuing a histogram whose totals are `zeros`, `count`, `sum`, `min`, `max`.
    pub fn new(
        log_gamma: f64,
        min_value: f64,
        zeros: u64,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Self {
        Tally {
            log_gamma,
            min_value,
            buckets: HashMap::new(),
            zeros,
            count,
            sum,
            min,
            max,
        }
    }

    /// The bucket index of a value above `min_value`.
    pub fn index(&self, value: f64) -> i64 {
        (value.ln() / self.log_gamma).ceil() as i64
    }

    /// Count one value; a negative, NaN or infinite one is refused and changes nothing.
    pub fn add(&mut self, value: f64) -> Result<(), InvalidLatency> {
        if value.is_nan() || value < 0.0 || value == f64::INFINITY {
            return Err(InvalidLatency(value));
        }
        self.count += 1;
        self.sum += value;
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        if value <= self.min_value {
            self.zeros += 1;
        } else {
            *self.buckets.entry(self.index(value)).or_insert(0) += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Tally {
        let gamma: f64 = 1.01 / 0.99;
        Tally::new(gamma.ln(), 1e-9, 0, 0, 0.0, f64::INFINITY, 0.0)
    }

    #[test]
    fn values_land_in_the_bucket_whose_bounds_hold_them() {
        let mut t = fresh();
        let gamma: f64 = 1.01 / 0.99;
        for v in [1e-6, 3.3e-4, 0.5, 1.0, 42.0] {
            let i = t.index(v);
            assert!(
                gamma.powi(i as i32 - 1) < v * (1.0 + 1e-12)
                    && v <= gamma.powi(i as i32) * (1.0 + 1e-12)
            );
            t.add(v).unwrap();
        }
        assert_eq!(t.count, 5);
        assert_eq!(t.buckets.values().sum::<u64>(), 5);
    }

    #[test]
    fn totals_follow_every_value_and_tiny_ones_count_as_zeros() {
        let mut t = fresh();
        for v in [0.0, 1e-10, 0.25, 0.125] {
            t.add(v).unwrap();
        }
        assert_eq!((t.count, t.zeros), (4, 2));
        assert_eq!(t.sum, 0.0 + 1e-10 + 0.25 + 0.125);
        assert_eq!((t.min, t.max), (0.0, 0.25));
    }

    #[test]
    fn negative_nan_and_infinite_values_are_refused_without_a_trace() {
        let mut t = fresh();
        for v in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(t.add(v).is_err());
        }
        assert_eq!((t.count, t.zeros, t.sum), (0, 0, 0.0));
        assert!(t.buckets.is_empty());
    }

    #[test]
    fn a_tally_continues_the_totals_it_was_given() {
        let gamma: f64 = 1.01 / 0.99;
        let mut t = Tally::new(gamma.ln(), 1e-9, 3, 10, 2.5, 0.01, 0.9);
        t.add(1.5).unwrap();
        assert_eq!(
            (t.count, t.zeros, t.sum, t.min, t.max),
            (11, 3, 4.0, 0.01, 1.5)
        );
    }
}
