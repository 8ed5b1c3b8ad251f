//! Documents by their SHA-256 in a least-recently-used cache bounded twice, in entries and in
//! bytes charged: clients fill it, so both bounds must hold whatever they send. The automatic
//! persisted query store (`persisted`) keeps texts in one, the parsed-document cache
//! (`measured`) parsed and measured trees.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::persisted::DocumentId;

/// What an entry is charged against the byte bound.
pub trait Charge {
    fn charge(&self) -> usize;
}

pub struct BoundedCache<V> {
    entries: LruCache<DocumentId, V>,
    bytes: usize,
    max_bytes: usize,
}

/// What storing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It is in the cache now (`evicted` others went to make room).
    Yes { evicted: usize },
    /// It alone is larger than the byte bound.
    TooLarge,
}

impl<V: Charge + Clone> BoundedCache<V> {
    pub fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            entries: LruCache::new(max_entries),
            bytes: 0,
            max_bytes,
        }
    }

    /// The entry, which becomes the most recently used.
    pub fn get(&mut self, id: &DocumentId) -> Option<V> {
        self.entries.get(id).cloned()
    }

    pub fn insert(&mut self, id: DocumentId, value: V) -> Stored {
        let size = value.charge();
        if size > self.max_bytes {
            return Stored::TooLarge;
        }
        let mut evicted = 0;
        // `push` hands back what it displaced: the same key's old value, or the least
        // recently used entry when the cache was full.
        if let Some((old_id, old)) = self.entries.push(id, value) {
            self.bytes = self.bytes.saturating_sub(old.charge());
            if old_id != id {
                evicted += 1;
            }
        }
        self.bytes = self.bytes.saturating_add(size);
        while self.bytes > self.max_bytes {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(old.charge());
            evicted += 1;
        }
        Stored::Yes { evicted }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry charged its length.
    #[derive(Clone)]
    struct Doc(usize);

    impl Charge for Doc {
        fn charge(&self) -> usize {
            self.0
        }
    }

    fn id(n: u8) -> DocumentId {
        DocumentId::of(&n.to_string())
    }

    fn cache(entries: usize, max_bytes: usize) -> BoundedCache<Doc> {
        BoundedCache::new(NonZeroUsize::new(entries).unwrap(), max_bytes)
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = cache(2, usize::MAX);
        cache.insert(id(1), Doc(1));
        cache.insert(id(2), Doc(1));
        // Reading 1 makes 2 the least recently used.
        assert!(cache.get(&id(1)).is_some());
        assert_eq!(cache.insert(id(3), Doc(1)), Stored::Yes { evicted: 1 });
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(1)).is_some() && cache.get(&id(3)).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_byte_bound_evicts_as_many_as_it_takes() {
        let max = 300;
        let mut cache = cache(100, max);
        for n in 0..3 {
            assert_eq!(cache.insert(id(n), Doc(100)), Stored::Yes { evicted: 0 });
        }
        assert_eq!(cache.bytes(), max);
        // One twice as large pushes the two oldest out.
        assert_eq!(cache.insert(id(9), Doc(200)), Stored::Yes { evicted: 2 });
        assert!(cache.get(&id(0)).is_none() && cache.get(&id(1)).is_none());
        assert!(cache.get(&id(2)).is_some() && cache.get(&id(9)).is_some());
        assert!(cache.bytes() <= max);
        assert_eq!(cache.insert(id(10), Doc(max + 1)), Stored::TooLarge);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn storing_an_entry_again_charges_it_once() {
        let mut cache = cache(10, usize::MAX);
        cache.insert(id(1), Doc(10));
        assert_eq!(cache.insert(id(1), Doc(10)), Stored::Yes { evicted: 0 });
        assert_eq!(cache.bytes(), 10);
        assert_eq!(cache.len(), 1);
    }
}
