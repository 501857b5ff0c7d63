//! The priority queue's algorithm: one FIFO per level, a bitmask of the non-empty
//! levels, and the optional anti-starvation accounting. Pure Rust, generic over
//! the item type, so `cargo test` covers it without Python.

use std::collections::VecDeque;

/// The most levels a queue may have: the non-empty levels are one `u64` bitmask,
/// so finding the next level to serve is a single `trailing_zeros`.
pub const MAX_LEVELS: usize = 64;

/// Why a queue could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `levels` was 0 or above [`MAX_LEVELS`].
    Levels,
}

/// Why a push was refused; the queue is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The priority is not in `0..levels`.
    Priority,
    /// The items do not all fit under `maxsize`.
    Full,
}

/// A multi-level FIFO queue: level 0 is served first, FIFO within a level.
///
/// With `starvation_limit = k > 0`, each non-empty level counts the pops served
/// from a *higher* level (smaller index) since it was last served or became
/// non-empty. A level whose count reaches `k` is *overdue*. A pop serves the
/// highest overdue level if there is one, else the highest non-empty level;
/// serving a level resets its count. The head of level `L` is therefore passed
/// over by at most `k + L - 1` pops from higher levels before it is served.
#[derive(Debug)]
pub struct Levels<T> {
    queues: Box<[VecDeque<T>]>,
    /// Bit `i` set iff `queues[i]` is non-empty.
    nonempty: u64,
    /// Bit `i` set iff level `i` is non-empty and `passed_over[i] >= starvation_limit`.
    overdue: u64,
    /// Per level: pops served from a higher level since it was last served or emptied.
    passed_over: Box<[usize]>,
    len: usize,
    maxsize: usize,
    starvation_limit: usize,
}

impl<T> Levels<T> {
    /// A queue with `levels` levels, at most `maxsize` items (0 = unbounded) and
    /// the anti-starvation rule after `starvation_limit` pass-overs (0 = off).
    pub fn new(
        levels: usize,
        maxsize: usize,
        starvation_limit: usize,
    ) -> Result<Self, ConfigError> {
        if levels == 0 || levels > MAX_LEVELS {
            return Err(ConfigError::Levels);
        }
        Ok(Self {
            queues: (0..levels).map(|_| VecDeque::new()).collect(),
            nonempty: 0,
            overdue: 0,
            passed_over: vec![0; levels].into_boxed_slice(),
            len: 0,
            maxsize,
            starvation_limit,
        })
    }

    pub fn levels(&self) -> usize {
        self.queues.len()
    }

    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    pub fn starvation_limit(&self) -> usize {
        self.starvation_limit
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items waiting at each level.
    pub fn depths(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.queues.iter().map(VecDeque::len)
    }

    /// Whether `count` more items fit under `maxsize`.
    fn fits(&self, count: usize) -> bool {
        self.maxsize == 0 || count <= self.maxsize.saturating_sub(self.len)
    }

    fn check_priority(&self, priority: usize) -> Result<(), PushError> {
        if priority < self.queues.len() {
            Ok(())
        } else {
            Err(PushError::Priority)
        }
    }

    /// Append `item` at `priority`; on error the item is handed back untouched.
    pub fn push(&mut self, item: T, priority: usize) -> Result<(), (PushError, T)> {
        if let Err(e) = self.check_priority(priority) {
            return Err((e, item));
        }
        if !self.fits(1) {
            return Err((PushError::Full, item));
        }
        self.queues[priority].push_back(item);
        self.nonempty |= 1 << priority;
        self.len += 1;
        Ok(())
    }

    /// Append every item at `priority`, all or none. On error `items` is left as it was.
    pub fn push_all(&mut self, items: &mut Vec<T>, priority: usize) -> Result<(), PushError> {
        self.check_priority(priority)?;
        if !self.fits(items.len()) {
            return Err(PushError::Full);
        }
        if !items.is_empty() {
            self.len += items.len();
            self.queues[priority].extend(items.drain(..));
            self.nonempty |= 1 << priority;
        }
        Ok(())
    }

    /// Remove and return the next item by the rule above; `None` when empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.nonempty == 0 {
            return None;
        }
        let served = if self.overdue != 0 {
            self.overdue
        } else {
            self.nonempty
        }
        .trailing_zeros() as usize;
        let queue = &mut self.queues[served];
        let item = queue.pop_front();
        if queue.is_empty() {
            self.nonempty &= !(1 << served);
        }
        self.len -= 1;
        if self.starvation_limit != 0 {
            self.account_pass_overs(served);
        }
        item
    }

    /// After serving `served`: reset its count and count one pass-over for every
    /// lower level that is waiting.
    fn account_pass_overs(&mut self, served: usize) {
        self.passed_over[served] = 0;
        self.overdue &= !(1 << served);
        // Bits strictly above `served` (shifting by 64 would overflow, hence the check).
        let mut waiting = if served + 1 < MAX_LEVELS {
            self.nonempty & (u64::MAX << (served + 1))
        } else {
            0
        };
        while waiting != 0 {
            let level = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            self.passed_over[level] += 1;
            if self.passed_over[level] >= self.starvation_limit {
                self.overdue |= 1 << level;
            }
        }
    }

    /// Remove up to `n` items in `pop()` order, lazily; the iterator's length is exact.
    pub fn pop_up_to(&mut self, n: usize) -> PopUpTo<'_, T> {
        let remaining = n.min(self.len);
        PopUpTo {
            levels: self,
            remaining,
        }
    }

    /// Empty every level and forget all pass-over counts, handing the items back
    /// so the caller decides where they are dropped.
    pub fn take_all(&mut self) -> Vec<VecDeque<T>> {
        self.nonempty = 0;
        self.overdue = 0;
        self.len = 0;
        self.passed_over.fill(0);
        self.queues.iter_mut().map(std::mem::take).collect()
    }
}

/// The iterator of [`Levels::pop_up_to`].
pub struct PopUpTo<'a, T> {
    levels: &'a mut Levels<T>,
    remaining: usize,
}

impl<T> Iterator for PopUpTo<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.levels.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for PopUpTo<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut Levels<u32>) -> Vec<u32> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn serves_highest_level_first_and_fifo_within_a_level() {
        let mut q = Levels::new(3, 0, 0).unwrap();
        for (item, priority) in [(1, 2), (2, 1), (3, 0), (4, 1), (5, 0), (6, 2)] {
            q.push(item, priority).unwrap();
        }
        assert_eq!(q.depths().collect::<Vec<_>>(), [2, 2, 2]);
        assert_eq!(drain(&mut q), [3, 5, 2, 4, 1, 6]);
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn rejects_bad_config_and_priority() {
        assert_eq!(
            Levels::<u32>::new(0, 0, 0).unwrap_err(),
            ConfigError::Levels
        );
        assert_eq!(
            Levels::<u32>::new(MAX_LEVELS + 1, 0, 0).unwrap_err(),
            ConfigError::Levels
        );
        let mut q = Levels::new(2, 0, 0).unwrap();
        assert_eq!(q.push(7, 2), Err((PushError::Priority, 7)));
        assert!(q.is_empty());
    }

    #[test]
    fn maxsize_bounds_push_and_push_all_is_all_or_none() {
        let mut q = Levels::new(2, 3, 0).unwrap();
        q.push(1, 0).unwrap();
        let mut batch = vec![2, 3, 4];
        assert_eq!(q.push_all(&mut batch, 1), Err(PushError::Full));
        assert_eq!(batch, [2, 3, 4]);
        assert_eq!(q.len(), 1);
        batch.truncate(2);
        q.push_all(&mut batch, 1).unwrap();
        assert!(batch.is_empty());
        assert_eq!(q.push(9, 0), Err((PushError::Full, 9)));
        assert_eq!(drain(&mut q), [1, 2, 3]);
    }

    #[test]
    fn pop_up_to_has_exact_length_and_pop_order() {
        let mut q = Levels::new(2, 0, 0).unwrap();
        q.push_all(&mut vec![10, 11], 1).unwrap();
        q.push(1, 0).unwrap();
        let it = q.pop_up_to(10);
        assert_eq!(it.len(), 3);
        assert_eq!(it.collect::<Vec<_>>(), [1, 10, 11]);
        assert_eq!(q.pop_up_to(5).len(), 0);
    }

    #[test]
    fn starvation_limit_serves_a_passed_over_level() {
        let mut q = Levels::new(2, 0, 2).unwrap();
        q.push(100, 1).unwrap();
        q.push_all(&mut (0..6).collect(), 0).unwrap();
        // Two pops from level 0 pass level 1 over twice, so the third pop serves it.
        assert_eq!(drain(&mut q), [0, 1, 100, 2, 3, 4, 5]);
    }

    #[test]
    fn overdue_levels_are_served_highest_first() {
        let mut q = Levels::new(3, 0, 1).unwrap();
        q.push_all(&mut vec![0, 1, 2], 0).unwrap();
        q.push_all(&mut vec![10, 11], 1).unwrap();
        q.push_all(&mut vec![20, 21], 2).unwrap();
        assert_eq!(drain(&mut q), [0, 10, 20, 1, 11, 21, 2]);
    }

    #[test]
    fn take_all_empties_and_resets_counts() {
        let mut q = Levels::new(2, 0, 1).unwrap();
        q.push_all(&mut vec![0, 1], 0).unwrap();
        q.push(10, 1).unwrap();
        assert_eq!(q.pop(), Some(0));
        let taken = q.take_all();
        assert_eq!(taken.iter().map(VecDeque::len).sum::<usize>(), 2);
        assert!(q.is_empty());
        q.push_all(&mut vec![2, 3], 0).unwrap();
        q.push(11, 1).unwrap();
        assert_eq!(drain(&mut q), [2, 11, 3]);
    }

    #[test]
    fn head_of_level_is_passed_over_at_most_limit_plus_level_minus_one_times() {
        // A steady stream at every higher level: count pass-overs of each head.
        for limit in 1..4 {
            let mut q = Levels::new(4, 0, limit).unwrap();
            let mut passes = [0usize; 4];
            let mut next = 0u32;
            for _ in 0..200 {
                for level in 0..4 {
                    if q.depths().nth(level) == Some(0) {
                        q.push(next, level).unwrap();
                        next += 1;
                    }
                }
                let before: Vec<usize> = q.depths().collect();
                q.pop().unwrap();
                let after: Vec<usize> = q.depths().collect();
                let served = (0..4).find(|&l| after[l] < before[l]).unwrap();
                passes[served] = 0;
                for (level, passed) in passes.iter_mut().enumerate().skip(served + 1) {
                    *passed += 1;
                    assert!(*passed < limit + level, "level {level} limit {limit}");
                }
            }
        }
    }
}
