//! Counts of non-negative values in geometric buckets (the DDSketch construction).
//!
//! A value `v` above `MIN_VALUE` goes to bucket `i = ceil(ln(v) / ln(GAMMA))`, whose
//! bounds are `(GAMMA^(i-1), GAMMA^i]`; it is reported as the bucket's midpoint
//! `2 * GAMMA^i / (GAMMA + 1)`, within `RELATIVE_ERROR` of every value in the bucket.
//! Values in `[0, MIN_VALUE]` are counted as zeros (below any timer's resolution).
//! Histograms merge by adding counts, so a process counts locally and ships a delta.
//!
//! Buckets live in one dense vector over the range of indices seen so far: recording is
//! an index computation and an increment, and a quantile is one ascending scan. The
//! range stays small for latencies (about 1,400 buckets cover 1 µs to 1 hour).

use std::fmt;
use std::sync::LazyLock;

/// Guaranteed bound on |reported - true| / true for any quantile of positive values.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Values at or below this (seconds) are counted as zero: below timer resolution.
pub const MIN_VALUE: f64 = 1e-9;
/// The ratio between consecutive bucket bounds.
pub const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

static LOG_GAMMA: LazyLock<f64> = LazyLock::new(|| GAMMA.ln());

/// The bucket index of a value above `MIN_VALUE`.
#[inline]
pub fn bucket_index(value: f64) -> i64 {
    (value.ln() / *LOG_GAMMA).ceil() as i64
}

/// The value reported for bucket `index`: within `RELATIVE_ERROR` of all its values.
#[inline]
pub fn representative(index: i64) -> f64 {
    2.0 * GAMMA.powf(index as f64) / (GAMMA + 1.0)
}

/// The lowest and highest bucket index a finite value above `MIN_VALUE` can have.
fn index_range() -> (i64, i64) {
    (bucket_index(MIN_VALUE), bucket_index(f64::MAX))
}

/// A value that is not a latency: negative, NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidLatency(pub f64);

/// Why an operation was refused (the histogram is left unchanged).
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramError {
    InvalidLatency(InvalidLatency),
    /// A quantile outside `[0, 1]`.
    InvalidQuantile(f64),
    /// `subtract` of counts this histogram does not hold.
    NotMergedIn,
    /// `cumulative_counts` bounds that are not strictly increasing (or NaN).
    BoundsNotIncreasing,
    /// Parts whose `count` is not `zeros` plus the bucket counts.
    InconsistentCount {
        count: u64,
        counted: u64,
    },
    /// A bucket index no finite value can have.
    IndexOutOfRange(i64),
}

impl fmt::Display for HistogramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistogramError::InvalidLatency(InvalidLatency(v)) => {
                write!(f, "a latency must be a finite non-negative number, got {v:?}")
            }
            HistogramError::InvalidQuantile(q) => {
                write!(f, "a quantile must be within [0, 1], got {q:?}")
            }
            HistogramError::NotMergedIn => write!(
                f,
                "cannot subtract counts that were never merged in (a bucket, zeros or count would go below 0)"
            ),
            HistogramError::BoundsNotIncreasing => {
                write!(f, "bounds must be strictly increasing numbers")
            }
            HistogramError::InconsistentCount { count, counted } => write!(
                f,
                "count ({count}) must equal zeros plus the bucket counts ({counted})"
            ),
            HistogramError::IndexOutOfRange(index) => {
                let (low, high) = index_range();
                write!(f, "bucket index must be within [{low}, {high}], got {index}")
            }
        }
    }
}

impl std::error::Error for HistogramError {}

impl From<InvalidLatency> for HistogramError {
    fn from(bad: InvalidLatency) -> Self {
        HistogramError::InvalidLatency(bad)
    }
}

/// Counts of non-negative values in geometric buckets, with exact count, sum, min and max.
#[derive(Debug, Clone)]
pub struct LogHistogram {
    /// `counts[k]` is the count of bucket `offset + k`.
    counts: Vec<u64>,
    offset: i64,
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            counts: Vec::new(),
            offset: 0,
            zeros: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: 0.0,
        }
    }
}

/// Equal when they hold the same counts and totals, however their bucket vectors grew.
impl PartialEq for LogHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.buckets().eq(other.buckets())
            && (self.zeros, self.count, self.sum, self.min, self.max)
                == (other.zeros, other.count, other.sum, other.min, other.max)
    }
}

impl LogHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// A histogram from its parts (the wire form); refused if they cannot belong together.
    pub fn from_parts(
        buckets: impl IntoIterator<Item = (i64, u64)>,
        zeros: u64,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Result<Self, HistogramError> {
        let (low, high) = index_range();
        let mut h = LogHistogram {
            zeros,
            count,
            sum,
            min,
            max,
            ..Self::default()
        };
        let mut counted = zeros;
        for (index, n) in buckets {
            if !(low..=high).contains(&index) {
                return Err(HistogramError::IndexOutOfRange(index));
            }
            *h.bucket_mut(index) += n;
            counted = counted.saturating_add(n);
        }
        if counted != count {
            return Err(HistogramError::InconsistentCount { count, counted });
        }
        Ok(h)
    }

    pub fn zeros(&self) -> u64 {
        self.zeros
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// The smallest value recorded; infinity when empty.
    pub fn min(&self) -> f64 {
        self.min
    }
    /// The largest value recorded; 0.0 when empty.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Replace the extremes: after `subtract`, a sliding window knows them from its slots.
    pub fn set_extremes(&mut self, min: f64, max: f64) {
        self.min = min;
        self.max = max;
    }

    /// The exact mean of the recorded values; 0.0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The non-empty buckets as `(index, count)`, lowest index first.
    pub fn buckets(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        let offset = self.offset;
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(move |(k, &n)| (offset + k as i64, n))
    }

    fn bucket_mut(&mut self, index: i64) -> &mut u64 {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        } else if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat(0).take(grow));
            self.offset = index;
        } else if index - self.offset >= self.counts.len() as i64 {
            self.counts.resize((index - self.offset + 1) as usize, 0);
        }
        &mut self.counts[(index - self.offset) as usize]
    }

    /// Count one value; a negative, NaN or infinite one is refused and changes nothing.
    #[inline]
    pub fn record(&mut self, value: f64) -> Result<(), InvalidLatency> {
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
        if value <= MIN_VALUE {
            self.zeros += 1;
        } else {
            *self.bucket_mut(bucket_index(value)) += 1;
        }
        Ok(())
    }

    /// Count each value in order, stopping at the first refused one (those before it stay counted).
    pub fn record_all(&mut self, values: &[f64]) -> Result<(), InvalidLatency> {
        values.iter().try_for_each(|&v| self.record(v))
    }

    /// Add `other`'s counts to this histogram.
    pub fn merge(&mut self, other: &LogHistogram) {
        for (index, n) in other.buckets() {
            *self.bucket_mut(index) += n;
        }
        self.zeros += other.zeros;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Remove `other`'s counts, which must have been merged in before (sliding windows).
    ///
    /// `min` and `max` cannot be subtracted and are left as they were; the sum drops to
    /// exactly 0.0 when nothing is left, so float rounding cannot leave a residue.
    pub fn subtract(&mut self, other: &LogHistogram) -> Result<(), HistogramError> {
        let held = |index: i64| -> u64 {
            let k = index - self.offset;
            if k >= 0 && k < self.counts.len() as i64 {
                self.counts[k as usize]
            } else {
                0
            }
        };
        if other.zeros > self.zeros
            || other.count > self.count
            || other.buckets().any(|(index, n)| n > held(index))
        {
            return Err(HistogramError::NotMergedIn);
        }
        for (index, n) in other.buckets() {
            *self.bucket_mut(index) -= n;
        }
        self.zeros -= other.zeros;
        self.count -= other.count;
        self.sum = if self.count > 0 {
            self.sum - other.sum
        } else {
            0.0
        };
        Ok(())
    }

    /// The `q`-quantile (0 <= q <= 1) within `RELATIVE_ERROR`; 0.0 when empty.
    ///
    /// The value at rank `q * (count - 1)`: 0.0 if that rank falls among the zeros, else
    /// its bucket's representative clamped to `[min, max]`; `q = 1` is the exact max.
    pub fn quantile(&self, q: f64) -> Result<f64, HistogramError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(HistogramError::InvalidQuantile(q));
        }
        if self.count == 0 {
            return Ok(0.0);
        }
        if q == 1.0 {
            return Ok(self.max);
        }
        let rank = q * (self.count - 1) as f64;
        let mut seen = self.zeros as f64;
        if rank < seen {
            return Ok(0.0);
        }
        for (index, n) in self.buckets() {
            seen += n as f64;
            if rank < seen {
                return Ok(representative(index).max(self.min).min(self.max));
            }
        }
        Ok(self.max)
    }

    /// For each upper bound (strictly increasing), how many values are at or below it.
    ///
    /// A bucket counts under the first bound at or above its representative value, so a
    /// count at a bound is exact up to the relative error; zeros count under every bound
    /// from 0 on. Values above the last bound are in none (they are `count - last`).
    pub fn cumulative_counts(&self, bounds: &[f64]) -> Result<Vec<u64>, HistogramError> {
        if bounds.iter().any(|b| b.is_nan()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(HistogramError::BoundsNotIncreasing);
        }
        let mut counts = vec![0u64; bounds.len()];
        let first_at_or_above = |value: f64| bounds.partition_point(|&b| b < value);
        let zero_position = first_at_or_above(0.0);
        if zero_position < counts.len() {
            counts[zero_position] += self.zeros;
        }
        for (index, n) in self.buckets() {
            let position = first_at_or_above(representative(index));
            if position < counts.len() {
                counts[position] += n;
            }
        }
        let mut running = 0u64;
        for c in counts.iter_mut() {
            running += *c;
            *c = running;
        }
        Ok(counts)
    }
}
