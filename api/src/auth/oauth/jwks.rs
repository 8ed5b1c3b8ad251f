//! An OpenID provider's signing keys (its JWKS), fetched when first needed and kept.
//!
//! Providers rotate keys by publishing the new one before signing with it, so a token whose
//! `kid` we do not know is the cue to fetch the set again. That refetch is rate-limited (one
//! per [`MIN_UNKNOWN_KID_REFETCH`]), so a stream of made-up `kid`s cannot turn us into a
//! load generator against the provider. The set is also refetched once it is older than
//! [`MAX_AGE`], so a key the provider withdrew stops being trusted.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use serde::Deserialize;

use super::providers::{ProfileError, read_json};

/// How long a fetched set is trusted before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The least time between two refetches caused by an unknown `kid`.
pub const MIN_UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);

/// Why no key came out.
#[derive(Debug)]
pub enum JwksError {
    /// The set has no key with this `kid`, even after a refetch (or a refetch was too soon).
    UnknownKid,
    /// The JWKS endpoint failed or answered garbage; the text is for the log.
    Fetch(String),
}

/// `{"keys": [...]}`, each key read on its own: a key of a type we cannot read (a provider
/// may add one) must not hide the others.
#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Default)]
struct Loaded {
    keys: Arc<Vec<Jwk>>,
    fetched_at: Option<Instant>,
}

/// One provider's key cache.
pub struct Jwks {
    url: String,
    loaded: RwLock<Loaded>,
    /// Held while fetching, so concurrent sign-ins wait for one fetch instead of each making
    /// their own; it keeps when the last unknown-`kid` refetch happened.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: String) -> Self {
        Self {
            url,
            loaded: RwLock::default(),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached key with this `kid`, if the cache is still fresh.
    fn cached(&self, kid: &str) -> (Option<Jwk>, bool) {
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = loaded.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        (find(&loaded.keys, kid), fresh)
    }

    /// The provider's key with this `kid`, fetching the set if it is unknown or stale.
    pub async fn key(&self, http: &reqwest::Client, kid: &str) -> Result<Jwk, JwksError> {
        if let (Some(key), true) = self.cached(kid) {
            return Ok(key);
        }
        let mut last_unknown_kid_refetch = self.fetching.lock().await;
        // Another sign-in may have fetched while this one waited.
        let (cached, fresh) = self.cached(kid);
        match (cached, fresh) {
            (Some(key), true) => return Ok(key),
            // A fresh set without this key: refetch, unless that was done a moment ago.
            (None, true) => {
                if last_unknown_kid_refetch.is_some_and(|at| at.elapsed() < MIN_UNKNOWN_KID_REFETCH)
                {
                    return Err(JwksError::UnknownKid);
                }
                *last_unknown_kid_refetch = Some(Instant::now());
            }
            // Never fetched, or stale: fetch.
            (_, false) => {}
        }
        match self.fetch(http).await {
            Ok(keys) => {
                let found = find(&keys, kid);
                *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Loaded {
                    keys: Arc::new(keys),
                    fetched_at: Some(Instant::now()),
                };
                found.ok_or(JwksError::UnknownKid)
            }
            // A provider that is briefly down does not stop sign-ins with keys we already
            // had (stale by at most one failed refetch; the next sign-in tries again).
            Err(err) => match self.cached(kid) {
                (Some(key), _) => {
                    tracing::warn!(error = %err, "JWKS refetch failed; using the keys we had");
                    Ok(key)
                }
                (None, _) => Err(JwksError::Fetch(err)),
            },
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Vec<Jwk>, String> {
        let request = http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json");
        let set: RawSet = read_json(request, "jwks").await.map_err(|err| match err {
            ProfileError::Provider(reason) => reason,
            ProfileError::EmailUnverified => "jwks: unexpected answer".to_owned(),
        })?;
        let keys: Vec<Jwk> = set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter(|key| key.common.key_id.is_some())
            // A key published for encryption does not vouch for signatures.
            .filter(|key| !matches!(key.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .collect();
        tracing::info!(url = %self.url, keys = keys.len(), "fetched a provider's signing keys");
        Ok(keys)
    }
}

fn find(keys: &[Jwk], kid: &str) -> Option<Jwk> {
    keys.iter()
        .find(|key| key.common.key_id.as_deref() == Some(kid))
        .cloned()
}
