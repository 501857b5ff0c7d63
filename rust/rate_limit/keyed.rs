//! One exact sliding window per key, at most `max_keys` keys held.
//!
//! Keys sit in a slab threaded by an intrusive list ordered by their latest
//! admitted acquisition (times are clamped to the latest seen, so moving a key
//! to the back on admission keeps the list sorted). A key's window is empty
//! exactly when its latest acquisition is `window` old, so if any key is idle,
//! the front one is: evicting the front forgets idle keys first, and otherwise
//! the key whose window will empty soonest. Windows are pruned lazily, only
//! when their key is touched.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::window::WindowLog;
use super::{count, positive, request, Result};

const NIL: u32 = u32::MAX;
/// Runs a new key's window has room for before its first growth.
const INITIAL_RUNS: u32 = 2;

#[derive(Debug)]
struct Slot {
    key: Box<str>,
    log: WindowLog,
    /// Neighbours in admission order (`NIL` at the ends).
    prev: u32,
    next: u32,
}

/// How keys left the map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyedStats {
    /// Keys forgotten with an empty window: lossless.
    pub idle_evictions: u64,
    /// Keys forgotten while acquisitions still counted: that key's guarantee is relaxed.
    pub active_evictions: u64,
}

#[derive(Debug)]
pub struct KeyedLimiter {
    limit: u32,
    window: f64,
    max_keys: u32,
    hasher: DefaultHashBuilder,
    /// Slab indices, found by hashing the slot's key.
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Oldest and newest latest-admission.
    head: u32,
    tail: u32,
    latest: f64,
    stats: KeyedStats,
}

impl KeyedLimiter {
    pub fn new(limit: i64, window: f64, max_keys: i64) -> Result<Self> {
        Ok(Self {
            limit: count("limit", limit, 1)?,
            window: positive("window", window)?,
            max_keys: count("max_keys", max_keys, 1)?,
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            latest: f64::NEG_INFINITY,
            stats: KeyedStats::default(),
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> f64 {
        self.window
    }

    pub fn max_keys(&self) -> u32 {
        self.max_keys
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn stats(&self) -> KeyedStats {
        self.stats
    }

    fn check_n(&self, n: i64) -> Result<u32> {
        request(n, self.limit)
    }

    fn advance(&mut self, now: f64) -> f64 {
        self.latest = self.latest.max(now);
        self.latest
    }

    fn find(&self, key: &str) -> (u64, Option<u32>) {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        (
            hash,
            self.table
                .find(hash, |&i| &*slots[i as usize].key == key)
                .copied(),
        )
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn push_back(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        slot.prev = self.tail;
        slot.next = NIL;
        match self.tail {
            NIL => self.head = i,
            t => self.slots[t as usize].next = i,
        }
        self.tail = i;
    }

    /// Drop the front key; returns its slot for reuse.
    fn evict_front(&mut self, now: f64) -> u32 {
        let i = self.head;
        self.unlink(i);
        let slot = &mut self.slots[i as usize];
        slot.log.prune(self.window, now);
        if slot.log.is_empty() {
            self.stats.idle_evictions += 1;
        } else {
            self.stats.active_evictions += 1;
        }
        let hash = self.hasher.hash_one(&*slot.key);
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        i
    }

    /// Admit `n` acquisitions for `key` at `now` if its window has room.
    pub fn try_acquire(&mut self, key: &str, n: i64, now: f64) -> Result<bool> {
        let n = self.check_n(n)?;
        let now = self.advance(now);
        let (hash, found) = self.find(key);
        if let Some(i) = found {
            let log = &mut self.slots[i as usize].log;
            log.prune(self.window, now);
            if !log.admits(n, self.limit) {
                return Ok(false);
            }
            log.record(n, now);
            if self.tail != i {
                self.unlink(i);
                self.push_back(i);
            }
            return Ok(true);
        }
        // A new key: its empty window admits any n <= limit.
        // Most keys see few acquisitions per window (a recipient, a sheet): start small.
        let mut log = WindowLog::with_capacity(self.limit.min(INITIAL_RUNS) as usize);
        log.record(n, now);
        let slot = Slot {
            key: key.into(),
            log,
            prev: NIL,
            next: NIL,
        };
        let i = if self.table.len() >= self.max_keys as usize {
            let i = self.evict_front(now);
            self.slots[i as usize] = slot;
            i
        } else if let Some(i) = self.free.pop() {
            self.slots[i as usize] = slot;
            i
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&*slots[j as usize].key));
        self.push_back(i);
        Ok(true)
    }

    /// Seconds from the latest time seen until `key` would admit `n` (0.0 for an unknown key).
    pub fn time_until(&mut self, key: &str, n: i64, now: f64) -> Result<f64> {
        let n = self.check_n(n)?;
        let now = self.advance(now);
        let Some(i) = self.find(key).1 else {
            return Ok(0.0);
        };
        let log = &mut self.slots[i as usize].log;
        log.prune(self.window, now);
        Ok(log.wait(n, self.limit, self.window, now))
    }

    /// Forget every key whose window is empty at `now`; returns how many.
    pub fn purge_idle(&mut self, now: f64) -> usize {
        let now = self.advance(now);
        let mut purged = 0;
        while self.head != NIL {
            let log = &mut self.slots[self.head as usize].log;
            log.prune(self.window, now);
            if !log.is_empty() {
                break;
            }
            let i = self.evict_front(now);
            self.slots[i as usize].key = Box::from("");
            self.free.push(i);
            purged += 1;
        }
        purged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_exact_window() {
        let mut k = KeyedLimiter::new(2, 1.0, 10).unwrap();
        assert!(k.try_acquire("a", 2, 0.0).unwrap());
        assert!(!k.try_acquire("a", 1, 0.5).unwrap());
        assert!(k.try_acquire("b", 1, 0.5).unwrap());
        assert!((k.time_until("a", 1, 0.5).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(k.time_until("zzz", 2, 0.5).unwrap(), 0.0);
        assert!(k.try_acquire("a", 2, 1.0).unwrap());
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn a_full_map_forgets_idle_keys_first() {
        let mut k = KeyedLimiter::new(1, 10.0, 2).unwrap();
        assert!(k.try_acquire("old", 1, 0.0).unwrap());
        assert!(k.try_acquire("busy", 1, 5.0).unwrap());
        // "old" is idle from t=10 on: it goes, and "busy" keeps its window.
        assert!(k.try_acquire("new", 1, 10.0).unwrap());
        assert_eq!(
            k.stats(),
            KeyedStats {
                idle_evictions: 1,
                active_evictions: 0
            }
        );
        assert!(!k.try_acquire("busy", 1, 10.0).unwrap());
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn with_no_idle_key_the_least_recently_admitted_goes_and_is_counted() {
        let mut k = KeyedLimiter::new(1, 10.0, 2).unwrap();
        assert!(k.try_acquire("a", 1, 0.0).unwrap());
        assert!(k.try_acquire("b", 1, 1.0).unwrap());
        assert!(k.try_acquire("c", 1, 2.0).unwrap());
        assert_eq!(k.stats().active_evictions, 1);
        assert!(
            k.try_acquire("a", 1, 3.0).unwrap(),
            "a was forgotten: its guarantee is relaxed"
        );
        assert!(!k.try_acquire("c", 1, 3.0).unwrap());
    }

    #[test]
    fn purge_idle_drops_only_empty_windows_and_slots_are_reused() {
        let mut k = KeyedLimiter::new(1, 1.0, 100).unwrap();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            assert!(k.try_acquire(key, 1, i as f64).unwrap());
        }
        assert_eq!(k.purge_idle(2.0), 2);
        assert_eq!(k.len(), 1);
        assert!(k.try_acquire("d", 1, 2.0).unwrap());
        assert_eq!(k.slots.len(), 3);
        assert!(!k.try_acquire("c", 1, 2.5).unwrap());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(KeyedLimiter::new(1, 1.0, 0).is_err());
        assert!(KeyedLimiter::new(0, 1.0, 1).is_err());
        assert!(KeyedLimiter::new(1, -1.0, 1).is_err());
        let mut k = KeyedLimiter::new(2, 1.0, 1).unwrap();
        assert!(k.try_acquire("a", 3, 0.0).is_err());
        assert!(k.time_until("a", 0, 0.0).is_err());
    }
}
