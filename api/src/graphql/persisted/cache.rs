//! The automatic persisted query cache: documents by their SHA-256, least recently used going
//! first once either the entry bound or the byte bound is reached. Clients fill it, so both
//! bounds hold whatever they send.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::DocumentId;

/// What one entry is charged beyond its document: the key, the `Arc` and the LRU's links.
const ENTRY_OVERHEAD_BYTES: usize = 128;

pub(super) struct DocumentCache {
    entries: LruCache<DocumentId, Arc<str>>,
    bytes: usize,
    max_bytes: usize,
}

/// What storing a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// It is in the cache now (`evicted` others went to make room).
    Yes { evicted: usize },
    /// It alone is larger than the byte bound.
    TooLarge,
}

fn charge(document: &str) -> usize {
    document.len().saturating_add(ENTRY_OVERHEAD_BYTES)
}

impl DocumentCache {
    pub(super) fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            entries: LruCache::new(max_entries),
            bytes: 0,
            max_bytes,
        }
    }

    /// The document, which becomes the most recently used.
    pub(super) fn get(&mut self, id: &DocumentId) -> Option<Arc<str>> {
        self.entries.get(id).cloned()
    }

    pub(super) fn insert(&mut self, id: DocumentId, document: Arc<str>) -> Stored {
        let size = charge(&document);
        if size > self.max_bytes {
            return Stored::TooLarge;
        }
        let mut evicted = 0;
        // `push` hands back what it displaced: the same key's old value, or the least
        // recently used entry when the cache was full.
        if let Some((old_id, old)) = self.entries.push(id, document) {
            self.bytes = self.bytes.saturating_sub(charge(&old));
            if old_id != id {
                evicted += 1;
            }
        }
        self.bytes = self.bytes.saturating_add(size);
        while self.bytes > self.max_bytes {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(charge(&old));
            evicted += 1;
        }
        Stored::Yes { evicted }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DocumentId {
        DocumentId([n; 32])
    }

    fn doc(len: usize) -> Arc<str> {
        Arc::from("x".repeat(len))
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = DocumentCache::new(NonZeroUsize::new(2).unwrap(), usize::MAX);
        cache.insert(id(1), doc(1));
        cache.insert(id(2), doc(1));
        // Reading 1 makes 2 the least recently used.
        assert!(cache.get(&id(1)).is_some());
        assert_eq!(cache.insert(id(3), doc(1)), Stored::Yes { evicted: 1 });
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(1)).is_some() && cache.get(&id(3)).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_byte_bound_evicts_as_many_as_it_takes() {
        let max = 3 * charge(&doc(100));
        let mut cache = DocumentCache::new(NonZeroUsize::new(100).unwrap(), max);
        for n in 0..3 {
            assert_eq!(cache.insert(id(n), doc(100)), Stored::Yes { evicted: 0 });
        }
        assert_eq!(cache.bytes(), max);
        // One twice as large pushes the two oldest out.
        assert_eq!(cache.insert(id(9), doc(200)), Stored::Yes { evicted: 2 });
        assert!(cache.get(&id(0)).is_none() && cache.get(&id(1)).is_none());
        assert!(cache.get(&id(2)).is_some() && cache.get(&id(9)).is_some());
        assert!(cache.bytes() <= max);
        assert_eq!(cache.insert(id(10), doc(max)), Stored::TooLarge);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn storing_a_document_again_charges_it_once() {
        let mut cache = DocumentCache::new(NonZeroUsize::new(10).unwrap(), usize::MAX);
        cache.insert(id(1), doc(10));
        assert_eq!(cache.insert(id(1), doc(10)), Stored::Yes { evicted: 0 });
        assert_eq!(cache.bytes(), charge(&doc(10)));
        assert_eq!(cache.len(), 1);
    }
}
