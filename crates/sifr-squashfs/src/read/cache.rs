//! A small bounded cache of decoded blocks, shared between threads.
//!
//! Keys are block positions in the image; values are `Arc`ed so a hit hands out a cheap clone
//! and the lock is held only for the lookup. The cache is split into shards (one mutex each) by
//! key so that parallel FUSE readers rarely contend. Each shard is a tiny vector with an access
//! stamp: at the sizes used here (tens of entries) a linear scan beats a linked LRU and needs no
//! extra crate. This module must not do I/O; a miss is filled by the caller outside the lock,
//! so two threads may decode the same block at once (harmless, the second insert wins).

use std::sync::{Arc, Mutex, PoisonError};

const SHARDS: usize = 8;

struct Entry<V> {
    key: u64,
    value: Arc<V>,
    stamp: u64,
}

struct Shard<V> {
    entries: Vec<Entry<V>>,
    clock: u64,
}

/// A bounded, sharded least-recently-used cache from `u64` to `Arc<V>`.
pub(crate) struct Cache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    per_shard: usize,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

impl<V> Cache<V> {
    /// A cache holding about `capacity` entries (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: Vec::with_capacity(per_shard),
                    clock: 0,
                })
            })
            .collect();
        Cache { shards, per_shard }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard<V>> {
        // Block positions are multiples of small sizes; mix the bits before picking a shard.
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59;
        &self.shards[h as usize % SHARDS]
    }

    pub(crate) fn get(&self, key: u64) -> Option<Arc<V>> {
        let mut s = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.clock += 1;
        let now = s.clock;
        s.entries.iter_mut().find(|e| e.key == key).map(|e| {
            e.stamp = now;
            Arc::clone(&e.value)
        })
    }

    pub(crate) fn insert(&self, key: u64, value: Arc<V>) {
        let mut s = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.clock += 1;
        let stamp = s.clock;
        if let Some(e) = s.entries.iter_mut().find(|e| e.key == key) {
            e.value = value;
            e.stamp = stamp;
            return;
        }
        if s.entries.len() >= self.per_shard
            && let Some(oldest) = s
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.stamp)
                .map(|(i, _)| i)
        {
            s.entries.swap_remove(oldest);
        }
        s.entries.push(Entry { key, value, stamp });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_stays_bounded() {
        let c = Cache::new(8); // one entry per shard
        for k in 0..100u64 {
            c.insert(k, Arc::new(k));
        }
        let held = (0..100u64).filter(|&k| c.get(k).is_some()).count();
        assert!(held <= 8, "held {held}");
        c.insert(7, Arc::new(70));
        assert_eq!(*c.get(7).unwrap(), 70);
    }
}
