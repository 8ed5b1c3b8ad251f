//! Documents already parsed and measured, by the SHA-256 of their text.
//!
//! Every phone runs the same app, so the same few documents arrive over and over, and parsing
//! is the first cost of every request (a profile of the session screen showed the parser on
//! each one). An entry keeps the parsed document and what the cost check counted, so a
//! document seen before costs a hash, a look-up and a copy of its tree instead of a scan, a
//! parse and a walk. Only documents that parsed and passed the cost check are kept, and least
//! recently used ones go first once either bound is reached: clients choose what fills it.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::ExecutableDocument;

use super::bounded_cache::{BoundedCache, Charge};
use super::cost::Cost;
use super::persisted::DocumentId;

/// Most documents kept.
const MAX_ENTRIES: usize = 512;
/// Most bytes charged for all of them.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// A document as the cost check left it.
#[derive(Debug)]
pub struct Measured {
    pub document: ExecutableDocument,
    /// Its tokens, as `cost::scan` counted them.
    pub tokens: u64,
    pub cost: Cost,
    /// The length of its text, for its charge.
    pub text_bytes: usize,
}

impl Charge for Arc<Measured> {
    /// Its tree is many times the size of its text.
    fn charge(&self) -> usize {
        self.text_bytes.saturating_mul(16).saturating_add(512)
    }
}

pub struct MeasuredDocuments {
    cache: Mutex<BoundedCache<Arc<Measured>>>,
}

impl Default for MeasuredDocuments {
    fn default() -> Self {
        let entries = NonZeroUsize::new(MAX_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self {
            cache: Mutex::new(BoundedCache::new(entries, MAX_BYTES)),
        }
    }
}

impl MeasuredDocuments {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedCache<Arc<Measured>>> {
        // Consistent after every call: a panic elsewhere leaves it usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for this text, which becomes the most recently used.
    pub fn get(&self, id: &DocumentId) -> Option<Arc<Measured>> {
        self.lock().get(id)
    }

    /// Keeps the entry, unless it alone is larger than the whole cache.
    pub fn insert(&self, id: DocumentId, measured: Arc<Measured>) {
        let _ = self.lock().insert(id, measured);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
