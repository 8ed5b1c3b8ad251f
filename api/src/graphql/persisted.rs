//! Persisted queries, as Apollo's clients speak them: an operation may be sent as the SHA-256
//! of its document in `extensions.persistedQuery { version: 1, sha256Hash }` instead of (or
//! with) the document itself.
//!
//! - **Automatic persisted queries (APQ)**: a hash this replica does not know is answered with
//!   `PERSISTED_QUERY_NOT_FOUND` (message `PersistedQueryNotFound`, what Apollo's link retries
//!   on); the client sends hash and document, the hash must be the document's, and once the
//!   document has passed the cost limits it is remembered in a bounded LRU cache.
//! - **Trusted documents**: a manifest of the app's operations (`manifest`), loaded at
//!   start-up, runs by hash without registration and is never evicted. With
//!   `PHOTON_PERSISTED_DOCUMENTS_ONLY` nothing else runs.
//!
//! Resolution only finds the document: every document, cached or listed, is then measured by
//! `cost::admit` like one sent in full, so a persisted document never bypasses the limits.

pub mod manifest;

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::bail;
use async_graphql::{ErrorExtensions, Request, ServerError, Value};
use sha2::{Digest, Sha256};

use self::manifest::Manifest;
use super::bounded_cache::{BoundedCache, Charge, Stored};
use super::cost::{self, Budget, CostLimits};
use super::measured::Measured;
use crate::app::AppState;
use crate::error::ErrorCode;

/// The message Apollo's persisted query link matches on, next to the code.
const NOT_FOUND_MESSAGE: &str = "PersistedQueryNotFound";
/// The request extension that carries the hash.
const EXTENSION: &str = "persistedQuery";

/// Persisted query settings (see the README's "Persisted queries and trusted documents").
#[derive(Debug, Clone, clap::Args)]
pub struct PersistedSettings {
    /// Automatic persisted queries one replica remembers; past that the least recently used
    /// is forgotten (its client sends the document again when told).
    #[arg(long, env = "PHOTON_PERSISTED_QUERY_CACHE_ENTRIES", default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub persisted_query_cache_entries: u64,

    /// Bytes of documents the automatic persisted query cache holds at most (each entry is
    /// charged its document's length and 128 bytes).
    #[arg(long, env = "PHOTON_PERSISTED_QUERY_CACHE_BYTES", default_value_t = 8 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1024 * 1024..=1024 * 1024 * 1024))]
    pub persisted_query_cache_bytes: u64,

    /// Trusted documents: path of an Apollo persisted query manifest
    /// (`@apollo/generate-persisted-query-manifest`), checked at start-up. Its operations run
    /// by hash without being registered first.
    #[arg(long, env = "PHOTON_PERSISTED_DOCUMENTS")]
    pub persisted_documents: Option<PathBuf>,

    /// Run only the operations listed in PHOTON_PERSISTED_DOCUMENTS, over HTTP and WebSocket;
    /// anything else (GraphiQL's introspection included) is refused with
    /// PERSISTED_QUERY_NOT_LISTED.
    #[arg(long, env = "PHOTON_PERSISTED_DOCUMENTS_ONLY", default_value_t = false,
        action = clap::ArgAction::Set)]
    pub persisted_documents_only: bool,
}

/// The persisted query configuration the server runs with, manifest loaded and checked.
#[derive(Debug, Clone)]
pub struct PersistedConfig {
    pub cache_entries: NonZeroUsize,
    pub cache_bytes: usize,
    pub manifest: Arc<Manifest>,
    pub only_listed: bool,
}

impl PersistedSettings {
    /// Loads and checks the manifest (blocking file I/O: call it before serving).
    pub fn resolve(self, limits: &CostLimits) -> anyhow::Result<PersistedConfig> {
        let manifest = match &self.persisted_documents {
            Some(path) => Manifest::load(path, limits)?,
            None if self.persisted_documents_only => bail!(
                "PHOTON_PERSISTED_DOCUMENTS_ONLY needs the manifest of the operations to allow \
                 in PHOTON_PERSISTED_DOCUMENTS"
            ),
            None => Manifest::default(),
        };
        if self.persisted_documents_only && manifest.is_empty() {
            bail!("PHOTON_PERSISTED_DOCUMENTS_ONLY with an empty manifest would refuse everything");
        }
        Ok(PersistedConfig {
            cache_entries: usize::try_from(self.persisted_query_cache_entries)
                .ok()
                .and_then(NonZeroUsize::new)
                .unwrap_or(NonZeroUsize::MIN),
            cache_bytes: usize::try_from(self.persisted_query_cache_bytes).unwrap_or(usize::MAX),
            manifest: Arc::new(manifest),
            only_listed: self.persisted_documents_only,
        })
    }
}

/// A document's id: the SHA-256 of its text, as Apollo's clients compute it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocumentId([u8; 32]);

impl DocumentId {
    pub fn of(document: &str) -> Self {
        Self(Sha256::digest(document.as_bytes()).into())
    }

    /// 64 hex digits, in either case.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::digest::hex(&self.0))
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

/// Why a persisted query was refused before anything ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistedError {
    /// A hash alone that this replica does not know.
    NotFound,
    /// Only listed documents run, and this is not one.
    NotListed,
    /// The hash is not the SHA-256 of the document sent with it.
    HashMismatch,
    /// `version` is not 1.
    UnsupportedVersion,
    /// The extension is not `{ version, sha256Hash }` with a hex SHA-256.
    Malformed(&'static str),
}

impl PersistedError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::PersistedQueryNotFound,
            Self::NotListed => ErrorCode::PersistedQueryNotListed,
            Self::HashMismatch => ErrorCode::BadUserInput,
            Self::UnsupportedVersion | Self::Malformed(_) => ErrorCode::BadRequest,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Self::NotFound => NOT_FOUND_MESSAGE,
            Self::NotListed => "only the app's own operations run on this server",
            // Apollo Server's words, which clients and their tests may know.
            Self::HashMismatch => "provided sha does not match query",
            Self::UnsupportedVersion => "unsupported persisted query version; use version 1",
            Self::Malformed(message) => message,
        }
    }

    /// Whether a client should try again with the document (the one refusal that is part of
    /// the normal flow, and so never an error status).
    pub fn is_not_found(&self) -> bool {
        *self == Self::NotFound
    }

    pub fn to_server_error(&self) -> ServerError {
        let code = self.code();
        let mismatch = *self == Self::HashMismatch;
        async_graphql::Error::new(self.message())
            .extend_with(|_, ext| {
                ext.set("code", code);
                if mismatch {
                    ext.set("field", "extensions.persistedQuery.sha256Hash");
                }
            })
            .into_server_error(async_graphql::Pos::default())
    }

    fn outcome(&self) -> Outcome {
        match self {
            Self::NotFound => Outcome::Miss,
            _ => Outcome::Refused,
        }
    }
}

/// The `outcome` label of `photon_persisted_queries_total`.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Hit,
    Miss,
    Registered,
    Refused,
}

impl Outcome {
    fn count(self) {
        let outcome = match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Registered => "registered",
            Self::Refused => "refused",
        };
        metrics::counter!(crate::metrics::PERSISTED_QUERIES, "outcome" => outcome).increment(1);
    }
}

/// What one text is charged beyond its bytes: the key, the `Arc` and the LRU's links.
const ENTRY_OVERHEAD_BYTES: usize = 128;

impl Charge for Arc<str> {
    fn charge(&self) -> usize {
        self.len().saturating_add(ENTRY_OVERHEAD_BYTES)
    }
}

/// A document to remember once it has passed the cost limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a resolved document is registered after its cost check"]
pub struct Pending {
    /// The document's id, when finding it told it (it came with its hash, or was looked up
    /// by it): the cost check's cache needs it, and need not hash the text again.
    id: Option<DocumentId>,
    /// New here: registered once admitted.
    new: bool,
}

impl Pending {
    pub fn id(&self) -> Option<DocumentId> {
        self.id
    }
}

/// The listed operations and this replica's APQ cache.
pub struct PersistedDocuments {
    manifest: Arc<Manifest>,
    only_listed: bool,
    cache: Mutex<BoundedCache<Arc<str>>>,
}

impl PersistedDocuments {
    pub fn new(config: &PersistedConfig) -> Self {
        if !config.manifest.is_empty() {
            tracing::info!(
                operations = config.manifest.len(),
                only_listed = config.only_listed,
                "trusted documents loaded"
            );
        }
        metrics::gauge!(crate::metrics::PERSISTED_QUERY_CACHE).set(0.0);
        Self {
            manifest: config.manifest.clone(),
            only_listed: config.only_listed,
            cache: Mutex::new(BoundedCache::new(config.cache_entries, config.cache_bytes)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BoundedCache<Arc<str>>> {
        // The cache is consistent after every call, so a panic elsewhere leaves it usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Finds the document a request runs: its own text, or the one its hash names (put into
    /// `request.query`). Refuses what only-listed mode does not allow. The returned
    /// [`Pending`] goes to [`register`](Self::register) once the document is admitted.
    pub fn resolve(&self, request: &mut Request) -> Result<Pending, PersistedError> {
        let result = self.lookup(request);
        match &result {
            Ok(Lookup::Text) => {}
            Ok(Lookup::Found(_)) => Outcome::Hit.count(),
            Ok(Lookup::New(_)) => {}
            Err(error) => error.outcome().count(),
        }
        result.map(|lookup| match lookup {
            Lookup::Text => Pending {
                id: None,
                new: false,
            },
            Lookup::Found(id) => Pending {
                id: Some(id),
                new: false,
            },
            Lookup::New(id) => Pending {
                id: Some(id),
                new: true,
            },
        })
    }

    fn lookup(&self, request: &mut Request) -> Result<Lookup, PersistedError> {
        let Some(id) = requested_id(request)? else {
            if !self.only_listed {
                return Ok(Lookup::Text);
            }
            // A client without the persisted query link may still send a listed document.
            let id = DocumentId::of(&request.query);
            return match self.manifest.get(&id) {
                Some(_) => Ok(Lookup::Found(id)),
                None => Err(PersistedError::NotListed),
            };
        };
        if request.query.is_empty() {
            if let Some(listed) = self.manifest.get(&id) {
                request.query = listed.body.to_string();
                return Ok(Lookup::Found(id));
            }
            if self.only_listed {
                return Err(PersistedError::NotListed);
            }
            return match self.cache().get(&id) {
                Some(document) => {
                    request.query = document.to_string();
                    Ok(Lookup::Found(id))
                }
                None => Err(PersistedError::NotFound),
            };
        }
        // The hash must be the document's: otherwise anyone could file their document under
        // the hash of another client's.
        if DocumentId::of(&request.query) != id {
            return Err(PersistedError::HashMismatch);
        }
        if self.manifest.get(&id).is_some() {
            return Ok(Lookup::Found(id));
        }
        if self.only_listed {
            return Err(PersistedError::NotListed);
        }
        Ok(Lookup::New(id))
    }

    /// Remembers a newly sent document, once it has passed the cost limits (`cost::admit`
    /// succeeded) and parses: the cache holds only documents that could run.
    pub fn register(&self, pending: Pending, request: &mut Request) {
        let Pending {
            id: Some(id),
            new: true,
        } = pending
        else {
            return;
        };
        if request.parsed_query().is_err() {
            return;
        }
        let document: Arc<str> = Arc::from(request.query.as_str());
        let mut cache = self.cache();
        let stored = cache.insert(id, document);
        let entries = cache.len();
        drop(cache);
        match stored {
            Stored::Yes { evicted } => {
                Outcome::Registered.count();
                if evicted > 0 {
                    tracing::debug!(evicted, "persisted query cache full; forgot the oldest");
                }
            }
            Stored::TooLarge => {
                tracing::debug!(%id, "persisted query larger than the whole cache; not kept");
            }
        }
        metrics::gauge!(crate::metrics::PERSISTED_QUERY_CACHE).set(entries as f64);
    }

    /// Entries in the APQ cache (listed operations not included).
    pub fn cached(&self) -> usize {
        self.cache().len()
    }
}

enum Lookup {
    /// No hash: the request's own text runs.
    Text,
    /// The hash named a listed or cached document (now in `request.query`), or the text is
    /// a listed one.
    Found(DocumentId),
    /// Hash and matching document, not known yet: to be registered.
    New(DocumentId),
}

/// The hash in `extensions.persistedQuery`, if the request carries one.
fn requested_id(request: &Request) -> Result<Option<DocumentId>, PersistedError> {
    let malformed = PersistedError::Malformed(
        "extensions.persistedQuery must be { \"version\": 1, \"sha256Hash\": <64 hex digits> }",
    );
    let extension = match request.extensions.get(EXTENSION) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(extension)) => extension,
        Some(_) => return Err(malformed),
    };
    match extension.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => return Err(PersistedError::UnsupportedVersion),
    }
    match extension.get("sha256Hash") {
        Some(Value::String(hash)) => DocumentId::parse_hex(hash).map(Some).ok_or(malformed),
        _ => Err(malformed),
    }
}

/// One operation over a WebSocket: resolves its document, measures it, and registers it once
/// admitted; the document's entry, as `cost::admit` gives it. The error is the operation's
/// refusal.
pub fn admit(
    state: &AppState,
    request: &mut Request,
) -> Result<Option<Arc<Measured>>, ServerError> {
    let pending = state
        .persisted
        .resolve(request)
        .map_err(|error| error.to_server_error())?;
    let budget = &mut Budget::default();
    let known = pending.id();
    let measured = match cost::admit(request, known, &state.config.cost, budget, &state.measured) {
        Ok(measured) => measured,
        Err(refusal) => {
            tracing::info!(limit = refusal.limit.name(), "document refused by its cost");
            return Err(refusal.to_server_error());
        }
    };
    state.persisted.register(pending, request);
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CostLimits {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            cost: crate::graphql::cost::CostSettings,
        }
        CostLimits::from(&<Cli as clap::Parser>::parse_from(["photon"]).cost)
    }

    fn documents(entries: usize, manifest: Manifest, only_listed: bool) -> PersistedDocuments {
        PersistedDocuments::new(&PersistedConfig {
            cache_entries: NonZeroUsize::new(entries).unwrap(),
            cache_bytes: usize::MAX,
            manifest: Arc::new(manifest),
            only_listed,
        })
    }

    fn new(query: &str) -> Pending {
        Pending {
            id: Some(DocumentId::of(query)),
            new: true,
        }
    }

    fn found(query: &str) -> Pending {
        Pending {
            id: Some(DocumentId::of(query)),
            new: false,
        }
    }

    fn hashed(query: &str, id: &str) -> Request {
        let mut request = Request::new(query);
        let extension: Value =
            serde_json::from_value(serde_json::json!({ "version": 1, "sha256Hash": id })).unwrap();
        request.extensions.insert(EXTENSION.to_owned(), extension);
        request
    }

    fn listed(body: &str) -> Manifest {
        let text = serde_json::json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": DocumentId::of(body).to_string(), "name": "Me", "type": "query", "body": body }],
        });
        Manifest::parse(&text.to_string(), &limits()).unwrap()
    }

    #[test]
    fn ids_are_sha256_in_hex() {
        let id = DocumentId::of("{ __typename }");
        let hex = id.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(DocumentId::parse_hex(&hex), Some(id));
        assert_eq!(DocumentId::parse_hex(&hex.to_uppercase()), Some(id));
        assert_eq!(DocumentId::parse_hex(&hex[1..]), None);
        assert_eq!(DocumentId::parse_hex(&format!("{}g", &hex[1..])), None);
        assert_eq!(
            DocumentId::of("").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn apq_misses_registers_then_hits() {
        let documents = documents(10, Manifest::default(), false);
        let query = "{ __typename }";
        let id = DocumentId::of(query).to_string();
        let mut miss = hashed("", &id);
        assert_eq!(documents.resolve(&mut miss), Err(PersistedError::NotFound));

        let mut register = hashed(query, &id);
        let pending = documents.resolve(&mut register).unwrap();
        assert_eq!(pending, new(query));
        documents.register(pending, &mut register);
        assert_eq!(documents.cached(), 1);

        let mut hit = hashed("", &id);
        assert_eq!(documents.resolve(&mut hit), Ok(found(query)));
        assert_eq!(hit.query, query);
    }

    #[test]
    fn an_unparsable_document_is_not_registered() {
        let documents = documents(10, Manifest::default(), false);
        let query = "{ unclosed";
        let mut request = hashed(query, &DocumentId::of(query).to_string());
        let pending = documents.resolve(&mut request).unwrap();
        documents.register(pending, &mut request);
        assert_eq!(documents.cached(), 0);
    }

    #[test]
    fn bad_extensions_are_refused_with_their_reason() {
        let documents = documents(10, Manifest::default(), false);
        let mut other_hash = hashed(
            "{ __typename }",
            &DocumentId::of("{ me { id } }").to_string(),
        );
        assert_eq!(
            documents.resolve(&mut other_hash),
            Err(PersistedError::HashMismatch)
        );
        let mut request = hashed("", &DocumentId::of("x").to_string());
        if let Some(Value::Object(extension)) = request.extensions.get_mut(EXTENSION) {
            extension.insert(async_graphql::Name::new("version"), Value::from(2));
        }
        assert_eq!(
            documents.resolve(&mut request),
            Err(PersistedError::UnsupportedVersion)
        );
        let mut short = hashed("", "abc");
        assert!(matches!(
            documents.resolve(&mut short),
            Err(PersistedError::Malformed(_))
        ));
        let mut not_an_object = Request::new("{ __typename }");
        not_an_object
            .extensions
            .insert(EXTENSION.to_owned(), Value::from("yes"));
        assert!(matches!(
            documents.resolve(&mut not_an_object),
            Err(PersistedError::Malformed(_))
        ));
        let error = PersistedError::NotFound.to_server_error();
        assert_eq!(error.message, "PersistedQueryNotFound");
        assert_eq!(
            super::super::errors::code_of(&error),
            Some(ErrorCode::PersistedQueryNotFound.as_str())
        );
    }

    #[test]
    fn only_listed_mode_runs_listed_documents_by_hash_or_text_and_nothing_else() {
        let body = "query Me { me { id } }";
        let documents = documents(10, listed(body), true);
        let mut by_hash = hashed("", &DocumentId::of(body).to_string());
        assert_eq!(documents.resolve(&mut by_hash), Ok(found(body)));
        assert_eq!(by_hash.query, body);
        let mut by_text = Request::new(body);
        assert_eq!(documents.resolve(&mut by_text), Ok(found(body)));

        let other = "{ __typename }";
        let mut text = Request::new(other);
        assert_eq!(documents.resolve(&mut text), Err(PersistedError::NotListed));
        let mut unknown = hashed("", &DocumentId::of(other).to_string());
        assert_eq!(
            documents.resolve(&mut unknown),
            Err(PersistedError::NotListed)
        );
        let mut registration = hashed(other, &DocumentId::of(other).to_string());
        assert_eq!(
            documents.resolve(&mut registration),
            Err(PersistedError::NotListed)
        );
        assert_eq!(documents.cached(), 0);
    }

    #[test]
    fn outcomes_are_counted() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let documents = documents(1, Manifest::default(), false);
            let query = "{ __typename }";
            let id = DocumentId::of(query).to_string();
            let _ = documents.resolve(&mut hashed("", &id));
            let mut register = hashed(query, &id);
            let pending = documents.resolve(&mut register).unwrap();
            documents.register(pending, &mut register);
            let _ = documents.resolve(&mut hashed("", &id));
            let _ = documents.resolve(&mut hashed("{ me { id } }", &id));
        });
        let mut counts = std::collections::HashMap::new();
        let mut entries = None;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            match (key.name(), value) {
                ("photon_persisted_queries_total", DebugValue::Counter(n)) => {
                    let outcome = key.labels().next().unwrap().value().to_owned();
                    counts.insert(outcome, n);
                }
                ("photon_persisted_query_cache_entries", DebugValue::Gauge(v)) => {
                    entries = Some(v.into_inner());
                }
                _ => {}
            }
        }
        for outcome in ["miss", "registered", "hit", "refused"] {
            assert_eq!(counts.get(outcome), Some(&1), "{outcome}: {counts:?}");
        }
        assert_eq!(entries, Some(1.0));
    }
}
