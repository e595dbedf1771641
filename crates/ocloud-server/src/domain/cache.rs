//! Read caches keyed by the database generation ([`crate::store::Housekeeping::generation`]):
//! an entry is used only while nothing at all was committed since it was made, by this
//! process or another one, so a cached answer is never stale — a revoked token, a blocked
//! account or a changed folder are seen by the very next request.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::Access;
use super::tree::ListingKey;

/// Entries kept per cache before it is emptied (a cheap bound instead of an LRU).
const MAX_ENTRIES: usize = 10_000;

struct Generational<K, V> {
    generation: u64,
    /// foldhash rather than SipHash: hashing a key was most of a cached listing's lookup.
    /// Still seeded per process, and the keys are a token's SHA-256 or a listing the caller
    /// could read, so a client cannot pick colliding ones.
    map: HashMap<K, V, foldhash::fast::RandomState>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Generational<K, V> {
    fn new() -> Self {
        Generational { generation: 0, map: HashMap::default() }
    }

    fn get<Q: std::hash::Hash + Eq + ?Sized>(&mut self, generation: u64, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        if generation != self.generation {
            self.map.clear();
            self.generation = generation;
            return None;
        }
        self.map.get(k).cloned()
    }

    fn put(&mut self, generation: u64, k: K, v: V) {
        if generation != self.generation {
            self.map.clear();
            self.generation = generation;
        }
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(k, v);
    }
}

/// The caches of a service.
pub struct Caches {
    auth: Mutex<Generational<Vec<u8>, (Access, i64)>>,
    listings: Mutex<Generational<ListingKey, Bytes>>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches { auth: Mutex::new(Generational::new()), listings: Mutex::new(Generational::new()) }
    }
}

impl Caches {
    /// The access of a token hash, with the token's expiry (unix seconds).
    pub fn auth(&self, generation: u64, hash: &[u8]) -> Option<(Access, i64)> {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).get(generation, hash)
    }

    /// Remembers a token's access.
    pub fn put_auth(&self, generation: u64, hash: Vec<u8>, access: Access, expires_at: i64) {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).put(generation, hash, (access, expires_at));
    }

    /// A serialised listing.
    pub fn listing(&self, generation: u64, key: &ListingKey) -> Option<Bytes> {
        self.listings.lock().unwrap_or_else(|p| p.into_inner()).get(generation, key)
    }

    /// Remembers a serialised listing.
    pub fn put_listing(&self, generation: u64, key: ListingKey, body: Bytes) {
        self.listings.lock().unwrap_or_else(|p| p.into_inner()).put(generation, key, body);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_generation_empties_the_cache() {
        let mut g = super::Generational::new();
        g.put(1, "a", 1);
        assert_eq!(g.get(1, &"a"), Some(1));
        assert_eq!(g.get(2, &"a"), None);
        g.put(2, "b", 2);
        assert_eq!(g.get(2, &"b"), Some(2));
    }
}
