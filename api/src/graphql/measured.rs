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
use lru::LruCache;

use super::cost::Cost;
use super::persisted::DocumentId;

/// Most documents kept.
const MAX_ENTRIES: usize = 512;
/// Most bytes charged for all of them.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What an entry is charged: its tree is many times the size of its text.
fn charge(text_bytes: usize) -> usize {
    text_bytes.saturating_mul(16).saturating_add(512)
}

/// A document as the cost check left it.
pub struct Measured {
    pub document: ExecutableDocument,
    /// Its tokens, as `cost::scan` counted them.
    pub tokens: u64,
    pub cost: Cost,
    /// The length of its text, for its charge.
    pub text_bytes: usize,
}

pub struct MeasuredDocuments {
    inner: Mutex<Inner>,
}

struct Inner {
    entries: LruCache<DocumentId, Arc<Measured>>,
    bytes: usize,
}

impl Default for MeasuredDocuments {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: LruCache::new(NonZeroUsize::new(MAX_ENTRIES).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }
}

impl MeasuredDocuments {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data, consistent after every write: a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for this text, which becomes the most recently used.
    pub fn get(&self, id: &DocumentId) -> Option<Arc<Measured>> {
        self.lock().entries.get(id).cloned()
    }

    pub fn insert(&self, id: DocumentId, measured: Arc<Measured>) {
        let size = charge(measured.text_bytes);
        if size > MAX_BYTES {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, old)) = inner.entries.push(id, measured) {
            inner.bytes = inner.bytes.saturating_sub(charge(old.text_bytes));
        }
        inner.bytes = inner.bytes.saturating_add(size);
        while inner.bytes > MAX_BYTES {
            let Some((_, old)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes = inner.bytes.saturating_sub(charge(old.text_bytes));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
