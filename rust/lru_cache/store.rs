//! The byte-budgeted LRU store, generic over key and value so it needs no Python.
//!
//! Layout: a slab `Vec` of slots holds the entries; an intrusive circular doubly
//! linked list threaded through the slots by `u32` indices keeps recency order,
//! from slot 0, a sentinel that holds no entry (its `next` is the most recent entry,
//! its `prev` the least recent), so linking and unlinking take no branch; a
//! `hashbrown::HashTable<u32>` maps a key's hash to its slot. The
//! caller supplies each key's 32-bit hash and an equality test, so a Python
//! binding can reuse the hash a `str` caches and compare objects by identity first.
//! Freed slots are chained into a free list through their `next` field and reused.
//!
//! A slot is split in two parallel arrays: the 32-byte `Slot` holds what every hit
//! touches (key, value, links, hash, flags) and never straddles a cache line; the
//! `Cold` part (deadlines and cost) is read only for entries with a TTL and on removal.

use super::tags::TagIndex;
use super::ttl::{Deadline, Freshness};
use hashbrown::HashTable;

/// The end of the free list.
const NIL: u32 = u32::MAX;
/// The recency list's sentinel slot: `next` is the most recently used entry, `prev`
/// the least; both are the sentinel itself when the store is empty.
const SENTINEL: u32 = 0;
/// `Slot::meta` bit set when the entry has a TTL (its deadline must be checked).
const TIMED: u32 = 1 << 31;
/// `Slot::meta` (without `TIMED`) of an entry that carries no tag.
const UNTAGGED: u32 = !TIMED;
/// Slot numbers stay below `UNTAGGED`, so tag handles (at most one per slot) fit beside `TIMED`.
const MAX_SLOTS: usize = UNTAGGED as usize;

/// Lifetime counters of a store; [`Store::clear`] keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that returned a fresh entry.
    pub hits: u64,
    /// Reads that returned nothing (absent, expired, or stale for a fresh-only read).
    pub misses: u64,
    /// Reads that returned a stale entry.
    pub stale_hits: u64,
    /// Entries dropped, least recently used first, to stay within the byte budget.
    pub evictions: u64,
    /// Entries dropped for being past their stale window.
    pub expirations: u64,
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a, V> {
    Fresh(&'a V),
    Stale(&'a V),
    Miss,
}

/// Where a read left the entry: hit (slot, stale), miss, or expired and still held.
enum Found {
    Hit(u32, bool),
    Miss,
    Expired(u32),
}

/// An entry's cost exceeds the whole budget.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub cost: u64,
    pub max_bytes: u64,
}

#[derive(Debug)]
#[repr(C, align(32))]
struct Slot<K, V> {
    /// `None` while the slot is on the free list.
    entry: Option<(K, V)>,
    prev: u32,
    next: u32,
    hash: u32,
    /// `TIMED` bit, plus the handle into the tag index or `UNTAGGED`.
    meta: u32,
}

#[derive(Debug)]
struct Cold {
    deadline: Deadline,
    cost: u64,
}

/// Bytes of one slot: the per-entry cost of the slab, before the hash table's share.
pub const fn slot_bytes<K, V>() -> usize {
    std::mem::size_of::<Slot<K, V>>() + std::mem::size_of::<Cold>()
}

/// Spreads a 32-bit hash over 64 bits: hashbrown takes the bucket from the low bits
/// and a 7-bit tag from the top ones, and a multiply by an odd constant feeds every
/// input bit into the top while keeping the (already uniform) low bits a bijection.
#[inline]
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `Store::unlink` then `Store::push_front` on the slab itself, so that its pointer
/// and length are not reloaded after every store (the hit path).
#[inline(always)]
fn move_to_front<K, V>(slots: &mut [Slot<K, V>], i: u32) {
    let head = slots[SENTINEL as usize].next;
    if head == i {
        return;
    }
    let slot = &mut slots[i as usize];
    let (prev, next) = (slot.prev, slot.next);
    slot.prev = SENTINEL;
    slot.next = head;
    slots[prev as usize].next = next;
    slots[next as usize].prev = prev;
    slots[head as usize].prev = i;
    slots[SENTINEL as usize].next = i;
}

/// An LRU map of `K` to `V` under a byte budget, with per-entry TTL, stale window and tags.
#[derive(Debug)]
pub struct Store<K, V> {
    table: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    cold: Vec<Cold>,
    free: u32,
    len: usize,
    bytes_used: u64,
    max_bytes: u64,
    tags: TagIndex,
    stats: Stats,
}

impl<K, V> Store<K, V> {
    pub fn new(max_bytes: u64) -> Self {
        Store {
            table: HashTable::new(),
            slots: vec![Slot {
                entry: None,
                prev: SENTINEL,
                next: SENTINEL,
                hash: 0,
                meta: UNTAGGED,
            }],
            cold: vec![Cold {
                deadline: Deadline::NEVER,
                cost: 0,
            }],
            free: NIL,
            len: 0,
            bytes_used: 0,
            max_bytes,
            tags: TagIndex::default(),
            stats: Stats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    #[inline]
    fn find(&self, hash: u32, eq: impl Fn(&K) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(spread(hash), |&i| {
                let slot = &slots[i as usize];
                slot.hash == hash && slot.entry.as_ref().is_some_and(|(k, _)| eq(k))
            })
            .copied()
    }

    /// Whether an entry for the key is held, whatever its freshness; no side effect.
    pub fn contains(&self, hash: u32, eq: impl Fn(&K) -> bool) -> bool {
        self.find(hash, eq).is_some()
    }

    /// Reads the entry for the key as of `now` (read only if the entry has a TTL).
    ///
    /// A fresh entry is a hit; a stale one is a stale hit when `accept_stale`, else a
    /// miss that leaves it in place; an expired one is dropped and counted as an
    /// expiration and a miss. A returned entry becomes the most recently used.
    pub fn read(
        &mut self,
        hash: u32,
        eq: impl Fn(&K) -> bool,
        accept_stale: bool,
        now: impl FnOnce() -> f64,
    ) -> Read<'_, V> {
        match self.read_in_place(hash, eq, accept_stale, now) {
            Found::Hit(i, stale) => self.hit(i, stale),
            Found::Miss => Read::Miss,
            Found::Expired(i) => {
                self.remove_slot(i);
                self.stats.expirations += 1;
                self.stats.misses += 1;
                Read::Miss
            }
        }
    }

    /// [`Store::read`] for a caller that must not drop a key or value now: an expired
    /// entry is left in place, uncounted, and reported as `None` so that the caller
    /// can retry with [`Store::read`] once it may.
    #[inline]
    pub fn read_unexpired(
        &mut self,
        hash: u32,
        eq: impl Fn(&K) -> bool,
        accept_stale: bool,
        now: impl FnOnce() -> f64,
    ) -> Option<Read<'_, V>> {
        match self.read_in_place(hash, eq, accept_stale, now) {
            Found::Hit(i, stale) => Some(self.hit(i, stale)),
            Found::Miss => Some(Read::Miss),
            Found::Expired(_) => None,
        }
    }

    /// The shared part of the reads: counts hits and misses, moves a hit to the
    /// front, and leaves an expired entry alone (uncounted) for the caller.
    #[inline(always)]
    fn read_in_place(
        &mut self,
        hash: u32,
        eq: impl Fn(&K) -> bool,
        accept_stale: bool,
        now: impl FnOnce() -> f64,
    ) -> Found {
        let Some(i) = self.find(hash, eq) else {
            self.stats.misses += 1;
            return Found::Miss;
        };
        // One borrow of each field, so the slab's pointer and length stay in registers.
        let Store {
            slots, cold, stats, ..
        } = self;
        let freshness = if slots[i as usize].meta & TIMED != 0 {
            cold[i as usize].deadline.at(now())
        } else {
            Freshness::Fresh
        };
        let stale = match freshness {
            Freshness::Fresh => {
                stats.hits += 1;
                false
            }
            Freshness::Stale if accept_stale => {
                stats.stale_hits += 1;
                true
            }
            Freshness::Stale => {
                stats.misses += 1;
                return Found::Miss;
            }
            Freshness::Expired => return Found::Expired(i),
        };
        move_to_front(slots, i);
        Found::Hit(i, stale)
    }

    /// The value of slot `i`, just read.
    #[inline(always)]
    fn hit(&self, i: u32, stale: bool) -> Read<'_, V> {
        let value = match &self.slots[i as usize].entry {
            Some((_, v)) => v,
            None => unreachable!("a slot in the table holds an entry"),
        };
        if stale {
            Read::Stale(value)
        } else {
            Read::Fresh(value)
        }
    }

    /// Stores `value` under `key` as the most recently used entry, replacing any entry
    /// for the key and evicting least recently used ones until `cost` fits.
    ///
    /// `ttl` of `None` (or infinite) keeps the entry fresh forever; `now` is read only
    /// for a finite `ttl`. An entry that would be expired on arrival (`ttl` and
    /// `stale_ttl` both 0) is not stored, and the old entry for the key is dropped.
    /// Tags are a set: a repeated name is stored once. The caller computes `cost`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert<'t>(
        &mut self,
        hash: u32,
        eq: impl Fn(&K) -> bool,
        key: K,
        value: V,
        cost: u64,
        ttl: Option<f64>,
        stale_ttl: f64,
        tags: impl IntoIterator<Item = &'t str>,
        now: impl FnOnce() -> f64,
    ) -> Result<(), TooLarge> {
        if cost > self.max_bytes {
            return Err(TooLarge {
                cost,
                max_bytes: self.max_bytes,
            });
        }
        if let Some(old) = self.find(hash, eq) {
            self.remove_slot(old);
        }
        let deadline = match ttl {
            Some(ttl) if ttl.is_finite() => {
                let now = now();
                let deadline = Deadline::after(now, ttl, stale_ttl);
                if deadline.at(now) == Freshness::Expired {
                    return Ok(());
                }
                deadline
            }
            _ => Deadline::NEVER,
        };
        while self.bytes_used + cost > self.max_bytes
            || (self.free == NIL && self.slots.len() >= MAX_SLOTS)
        {
            self.evict_lru();
        }
        let timed = if deadline.needs_clock() { TIMED } else { 0 };
        let i = self.alloc(
            Slot {
                entry: Some((key, value)),
                prev: SENTINEL,
                next: SENTINEL,
                hash,
                meta: timed | UNTAGGED,
            },
            Cold { deadline, cost },
        );
        let mut names = tags.into_iter().peekable();
        if names.peek().is_some() {
            self.slots[i as usize].meta = timed | self.tags.attach(i, names);
        }
        let slots = &self.slots;
        self.table
            .insert_unique(spread(hash), i, |&j| spread(slots[j as usize].hash));
        self.push_front(i);
        self.bytes_used += cost;
        self.len += 1;
        Ok(())
    }

    /// Drops the entry for the key; whether there was one (expired or not).
    pub fn remove(&mut self, hash: u32, eq: impl Fn(&K) -> bool) -> bool {
        match self.find(hash, eq) {
            Some(i) => {
                self.remove_slot(i);
                true
            }
            None => false,
        }
    }

    /// Keys of the entries carrying `tag`, in no particular order.
    pub fn tagged(&self, tag: &str) -> Vec<&K> {
        self.tags
            .slots(tag)
            .into_iter()
            .filter_map(|i| self.slots[i as usize].entry.as_ref().map(|(k, _)| k))
            .collect()
    }

    /// Drops every entry carrying `tag`; how many. O(entries with that tag).
    pub fn remove_tag(&mut self, tag: &str) -> usize {
        let slots = self.tags.slots(tag);
        for &i in &slots {
            self.remove_slot(i);
        }
        slots.len()
    }

    /// Drops every entry past its stale window at `now`; how many. O(slots).
    pub fn purge_expired(&mut self, now: f64) -> usize {
        let mut purged = 0;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.entry.is_some()
                && slot.meta & TIMED != 0
                && self.cold[i].deadline.at(now) == Freshness::Expired
            {
                self.remove_slot(i as u32);
                purged += 1;
            }
        }
        self.stats.expirations += purged as u64;
        purged
    }

    /// Drops every entry and frees the memory; the lifetime counters are kept.
    pub fn clear(&mut self) {
        *self = Store {
            stats: self.stats,
            ..Store::new(self.max_bytes)
        };
    }

    fn alloc(&mut self, slot: Slot<K, V>, cold: Cold) -> u32 {
        if self.free == NIL {
            self.slots.push(slot);
            self.cold.push(cold);
            (self.slots.len() - 1) as u32
        } else {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            self.slots[i as usize] = slot;
            self.cold[i as usize] = cold;
            i
        }
    }

    fn evict_lru(&mut self) {
        let lru = self.slots[SENTINEL as usize].prev;
        debug_assert_ne!(lru, SENTINEL, "the budget holds any single entry");
        self.remove_slot(lru);
        self.stats.evictions += 1;
    }

    /// Unlinks slot `i` from the table, the recency list and the tag index, drops its
    /// entry and puts the slot on the free list.
    fn remove_slot(&mut self, i: u32) {
        let (hash, tags) = {
            let slot = &self.slots[i as usize];
            (slot.hash, slot.meta & UNTAGGED)
        };
        let cost = self.cold[i as usize].cost;
        if let Ok(found) = self.table.find_entry(spread(hash), |&j| j == i) {
            found.remove();
        }
        self.unlink(i);
        if tags != UNTAGGED {
            self.tags.detach(tags);
        }
        let slot = &mut self.slots[i as usize];
        slot.entry = None;
        slot.meta = UNTAGGED;
        slot.next = self.free;
        self.free = i;
        self.bytes_used -= cost;
        self.len -= 1;
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let slot = &self.slots[i as usize];
            (slot.prev, slot.next)
        };
        self.slots[prev as usize].next = next;
        self.slots[next as usize].prev = prev;
    }

    #[inline(always)]
    fn push_front(&mut self, i: u32) {
        let old_head = self.slots[SENTINEL as usize].next;
        {
            let slot = &mut self.slots[i as usize];
            slot.prev = SENTINEL;
            slot.next = old_head;
        }
        self.slots[old_head as usize].prev = i;
        self.slots[SENTINEL as usize].next = i;
    }

    /// Keys from most to least recently used.
    #[cfg(test)]
    fn keys_by_recency(&self) -> Vec<&K> {
        let mut keys = Vec::new();
        let mut i = self.slots[SENTINEL as usize].next;
        while i != SENTINEL {
            let slot = &self.slots[i as usize];
            keys.push(&slot.entry.as_ref().expect("listed slots hold entries").0);
            i = slot.next;
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn h(key: &str) -> u32 {
        let mut s = DefaultHasher::new();
        key.hash(&mut s);
        s.finish() as u32
    }

    fn set(store: &mut Store<String, u8>, key: &str, cost: u64) {
        put(store, key, cost, None, 0.0, &[], 0.0);
    }

    fn put(
        store: &mut Store<String, u8>,
        key: &str,
        cost: u64,
        ttl: Option<f64>,
        stale_ttl: f64,
        tags: &[&str],
        now: f64,
    ) {
        store
            .insert(
                h(key),
                |k: &String| k == key,
                key.to_owned(),
                0,
                cost,
                ttl,
                stale_ttl,
                tags.iter().copied(),
                || now,
            )
            .expect("fits");
    }

    fn get<'a>(store: &'a mut Store<String, u8>, key: &str, stale: bool, now: f64) -> Read<'a, u8> {
        store.read(h(key), |k: &String| k == key, stale, || now)
    }

    fn order(store: &Store<String, u8>) -> Vec<&str> {
        store
            .keys_by_recency()
            .into_iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn a_hot_slot_of_two_pointers_fills_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<Box<u8>, Box<u8>>>(), 32);
        assert_eq!(slot_bytes::<Box<u8>, Box<u8>>(), 56);
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut s = Store::new(30);
        set(&mut s, "a", 10);
        set(&mut s, "b", 10);
        set(&mut s, "c", 10);
        assert_eq!(get(&mut s, "a", false, 0.0), Read::Fresh(&0));
        set(&mut s, "d", 10);
        assert_eq!(order(&s), vec!["d", "a", "c"]);
        assert_eq!(s.bytes_used(), 30);
        assert_eq!(s.stats().evictions, 1);
        set(&mut s, "e", 25);
        assert_eq!(order(&s), vec!["e"]);
        assert_eq!(s.stats().evictions, 4);
    }

    #[test]
    fn replacing_a_key_frees_its_old_cost_first() {
        let mut s = Store::new(30);
        set(&mut s, "a", 10);
        set(&mut s, "b", 10);
        set(&mut s, "a", 20);
        assert_eq!(order(&s), vec!["a", "b"]);
        assert_eq!(s.bytes_used(), 30);
        assert_eq!(s.stats().evictions, 0);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn refuses_an_entry_larger_than_the_budget() {
        let mut s: Store<String, u8> = Store::new(10);
        set(&mut s, "a", 5);
        let err = s.insert(
            h("b"),
            |k: &String| k == "b",
            "b".into(),
            0,
            11,
            None,
            0.0,
            [],
            || 0.0,
        );
        assert_eq!(
            err,
            Err(TooLarge {
                cost: 11,
                max_bytes: 10
            })
        );
        assert_eq!(order(&s), vec!["a"]);
    }

    #[test]
    fn stale_entries_serve_lookups_only_and_expire_later() {
        let mut s = Store::new(100);
        put(&mut s, "a", 1, Some(10.0), 5.0, &[], 0.0);
        assert_eq!(get(&mut s, "a", false, 9.0), Read::Fresh(&0));
        assert_eq!(get(&mut s, "a", false, 10.0), Read::Miss);
        assert_eq!(get(&mut s, "a", true, 12.0), Read::Stale(&0));
        assert_eq!(s.len(), 1);
        assert_eq!(get(&mut s, "a", true, 15.0), Read::Miss);
        assert_eq!(s.len(), 0);
        assert_eq!(s.bytes_used(), 0);
        let st = s.stats();
        assert_eq!(
            (st.hits, st.misses, st.stale_hits, st.expirations),
            (1, 2, 1, 1)
        );
    }

    #[test]
    fn read_unexpired_leaves_an_expired_entry_for_read_to_drop() {
        let mut s = Store::new(100);
        put(&mut s, "a", 1, Some(10.0), 5.0, &[], 0.0);
        put(&mut s, "b", 1, None, 0.0, &[], 0.0);
        let a = |k: &String| k == "a";
        assert_eq!(
            s.read_unexpired(h("a"), a, true, || 12.0),
            Some(Read::Stale(&0))
        );
        assert_eq!(order(&s), vec!["a", "b"]);
        assert_eq!(s.read_unexpired(h("a"), a, true, || 15.0), None);
        assert_eq!(
            (s.len(), s.stats().misses, s.stats().expirations),
            (2, 0, 0)
        );
        assert_eq!(s.read(h("a"), a, true, || 15.0), Read::Miss);
        assert_eq!(order(&s), vec!["b"]);
        assert_eq!((s.stats().misses, s.stats().expirations), (1, 1));
        assert_eq!(s.read_unexpired(h("a"), a, true, || 15.0), Some(Read::Miss));
    }

    #[test]
    fn an_entry_dead_on_arrival_is_not_stored_and_drops_the_old_one() {
        let mut s = Store::new(100);
        set(&mut s, "a", 1);
        put(&mut s, "a", 1, Some(0.0), 0.0, &[], 5.0);
        assert!(s.is_empty());
        put(&mut s, "a", 1, Some(0.0), 1.0, &[], 5.0);
        assert_eq!(get(&mut s, "a", true, 5.5), Read::Stale(&0));
    }

    #[test]
    fn purge_drops_only_expired_entries() {
        let mut s = Store::new(100);
        put(&mut s, "a", 1, Some(1.0), 0.0, &[], 0.0);
        put(&mut s, "b", 1, Some(1.0), 5.0, &[], 0.0);
        put(&mut s, "c", 1, None, 0.0, &[], 0.0);
        assert_eq!(s.purge_expired(2.0), 1);
        assert_eq!(order(&s), vec!["c", "b"]);
        assert_eq!(s.purge_expired(6.0), 1);
        assert_eq!(order(&s), vec!["c"]);
        assert_eq!(s.stats().expirations, 2);
    }

    #[test]
    fn tags_list_and_invalidate_their_entries() {
        let mut s = Store::new(100);
        put(&mut s, "a", 1, None, 0.0, &["x", "y"], 0.0);
        put(&mut s, "b", 1, None, 0.0, &["y"], 0.0);
        put(&mut s, "c", 1, None, 0.0, &[], 0.0);
        let mut y: Vec<&String> = s.tagged("y");
        y.sort();
        assert_eq!(y, vec!["a", "b"]);
        assert_eq!(s.remove_tag("y"), 2);
        assert_eq!(order(&s), vec!["c"]);
        assert!(s.tagged("x").is_empty());
        assert_eq!(s.remove_tag("y"), 0);
        assert_eq!(s.bytes_used(), 1);
    }

    #[test]
    fn slots_are_reused_after_removal() {
        let mut s = Store::new(1000);
        for round in 0..10 {
            for k in 0..50 {
                set(&mut s, &format!("{round}-{k}"), 1);
            }
            for k in 0..50 {
                assert!(s.remove(h(&format!("{round}-{k}")), |key: &String| *key
                    == format!("{round}-{k}")));
            }
        }
        assert!(s.slots.len() <= 1 + 50, "50 entries and the sentinel");
        assert!(s.is_empty());
    }

    #[test]
    fn clear_keeps_the_counters() {
        let mut s = Store::new(100);
        set(&mut s, "a", 1);
        get(&mut s, "a", false, 0.0);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.bytes_used(), 0);
        assert_eq!(s.stats().hits, 1);
        assert!(!s.contains(h("a"), |k: &String| k == "a"));
    }

    /// A naive model: a Vec in recency order (front = most recent).
    #[derive(Default)]
    struct Model {
        entries: Vec<(String, u64, Deadline, Vec<String>)>,
        used: u64,
    }

    /// Random operations against the model, driven by a fixed-seed xorshift.
    #[test]
    fn agrees_with_a_naive_model() {
        let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let max = 60;
        let mut s: Store<String, u8> = Store::new(max);
        let mut m = Model::default();
        let mut now = 0.0;
        let tags = ["p", "q", "r"];
        for _ in 0..20_000 {
            now += next(3) as f64 * 0.5;
            let key = format!("k{}", next(12));
            match next(6) {
                0 | 1 => {
                    let cost = 1 + next(20);
                    let ttl = match next(3) {
                        0 => None,
                        _ => Some(next(4) as f64),
                    };
                    let stale = next(3) as f64;
                    let my_tags: Vec<&str> =
                        tags.iter().copied().filter(|_| next(2) == 0).collect();
                    put(&mut s, &key, cost, ttl, stale, &my_tags, now);
                    if let Some(p) = m.entries.iter().position(|e| e.0 == key) {
                        m.used -= m.entries.remove(p).1;
                    }
                    let d = match ttl {
                        Some(t) => Deadline::after(now, t, stale),
                        None => Deadline::NEVER,
                    };
                    if d.at(now) != Freshness::Expired {
                        while m.used + cost > max {
                            m.used -= m.entries.pop().expect("non-empty").1;
                        }
                        m.used += cost;
                        let t = my_tags.iter().map(|t| t.to_string()).collect();
                        m.entries.insert(0, (key, cost, d, t));
                    }
                }
                2 | 3 => {
                    let stale_ok = next(2) == 0;
                    let got = get(&mut s, &key, stale_ok, now);
                    let expected = match m.entries.iter().position(|e| e.0 == key) {
                        None => Read::Miss,
                        Some(p) => match m.entries[p].2.at(now) {
                            Freshness::Fresh => {
                                let e = m.entries.remove(p);
                                m.entries.insert(0, e);
                                Read::Fresh(&0)
                            }
                            Freshness::Stale if stale_ok => {
                                let e = m.entries.remove(p);
                                m.entries.insert(0, e);
                                Read::Stale(&0)
                            }
                            Freshness::Stale => Read::Miss,
                            Freshness::Expired => {
                                m.used -= m.entries.remove(p).1;
                                Read::Miss
                            }
                        },
                    };
                    assert_eq!(got, expected);
                }
                4 => {
                    let tag = tags[next(3) as usize];
                    let n = s.remove_tag(tag);
                    let before = m.entries.len();
                    m.entries.retain(|e| !e.3.iter().any(|t| t == tag));
                    assert_eq!(n, before - m.entries.len());
                    m.used = m.entries.iter().map(|e| e.1).sum();
                }
                _ => {
                    let n = s.purge_expired(now);
                    let before = m.entries.len();
                    m.entries.retain(|e| e.2.at(now) != Freshness::Expired);
                    assert_eq!(n, before - m.entries.len());
                    m.used = m.entries.iter().map(|e| e.1).sum();
                }
            }
            let keys: Vec<&str> = m.entries.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(order(&s), keys);
            assert_eq!(s.bytes_used(), m.used);
            assert!(s.bytes_used() <= max);
            assert_eq!(s.len(), m.entries.len());
        }
    }
}
