//! The server-side memory of a provider sign-in: the `state` that links a callback to its
//! start, the one-time login code that hands the result to the app, and the account the
//! provider's verified e-mail address leads to.
//!
//! States, OpenID nonces and codes are random, stored only as SHA-256 hashes, and consumed by
//! a `DELETE … RETURNING`: of two requests racing with the same value, exactly one gets the row.
//! A nonce is only ever compared for equality, so its hash serves as well as the value and
//! leaves a reader of the database nothing to put in a forged sign-in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use entity::{identity, login_code, oauth_state, user};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, TransactionTrait,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::oauth::providers::{Profile, Provider};
use crate::clock;
use crate::digest::hex;
use crate::error::{ApiError, ApiResult};
use crate::service::sign_in::{TokenPair, Tokens, link_identity};
use crate::service::{input, users};

/// How long a sign-in may stay at the provider (consent screens, two-factor prompts).
pub const STATE_TTL: Duration = Duration::minutes(10);
/// How long the app has to swap a login code: it does so the moment its deep link opens.
pub const LOGIN_CODE_TTL: Duration = Duration::seconds(60);

/// Whatever went wrong with a login code looks the same to its presenter.
const INVALID_CODE: ApiError =
    ApiError::Unauthenticated("invalid, expired or already used login code");

/// 256 random bits, URL-safe: unguessable, and fits any query string.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether an ID token's `nonce` is the one a sign-in stored (compared in constant time).
pub fn nonce_matches(row: &oauth_state::Model, nonce: Option<&str>) -> bool {
    match (row.nonce_hash.as_deref(), nonce) {
        (Some(expected), Some(nonce)) => {
            bool::from(hash(nonce).as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

/// The S256 PKCE challenge of a verifier: base64url(SHA-256(verifier)), no padding.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `value` can be an S256 challenge: 43 base64url characters (a 32-byte digest).
pub fn is_s256_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `value` can be a PKCE verifier (RFC 7636 §4.1): 43 to 128 unreserved characters.
fn is_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What a sign-in start remembers until its callback.
pub struct NewState<'a> {
    pub provider: Provider,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub pkce_verifier: &'a str,
    /// The OpenID Connect nonce sent to Apple or Google.
    pub nonce: Option<&'a str>,
}

/// Stores a sign-in in progress and returns its `state` (the only time it exists in clear).
pub async fn create_state(db: &impl ConnectionTrait, new: NewState<'_>) -> ApiResult<String> {
    let state = random_secret();
    let now = clock::now();
    oauth_state::Entity::insert(oauth_state::ActiveModel {
        state_hash: Set(hash(&state)),
        provider: Set(new.provider.name().to_owned()),
        redirect_uri: Set(new.redirect_uri.to_owned()),
        code_challenge: Set(new.code_challenge.to_owned()),
        pkce_verifier: Set(new.pkce_verifier.to_owned()),
        nonce_hash: Set(new.nonce.map(hash)),
        created_at: Set(now),
        expires_at: Set(now + STATE_TTL),
    })
    .exec(db)
    .await?;
    Ok(state)
}

/// Takes a sign-in's state out of storage: it is found once, even by callbacks racing each
/// other. Expired rows are returned too, so the caller can still tell the app where to go.
pub async fn consume_state(
    db: &impl ConnectionTrait,
    state: &str,
) -> ApiResult<Option<oauth_state::Model>> {
    let mut rows = oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::StateHash.eq(hash(state)))
        .exec_with_returning(db)
        .await?;
    Ok(rows.pop())
}

/// The name a new account gets: the display name, else the login, as long as it makes a
/// valid name (trimmed, bounded, no control characters); else `None` (the e-mail's local
/// part, see [`users::upsert_by_email`]).
fn account_name(profile: &Profile) -> Option<String> {
    [profile.display_name.as_deref(), profile.login.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|candidate| {
            let bounded: String = candidate
                .trim()
                .chars()
                .take(input::MAX_NAME_CHARS)
                .collect();
            input::label("name", &bounded, input::MAX_NAME_CHARS).ok()
        })
}

/// The account a provider's profile signs in to, created or linked as needed.
///
/// An identity already linked decides on its own: it keeps reaching its account even if the
/// provider's e-mail address has changed since (the account's address is not changed
/// behind the user's back). Otherwise the verified address decides: the account with that
/// address, created if there is none, gets this identity linked. Names and avatars the user
/// has are kept; a missing avatar is filled in from the provider.
async fn resolve_account(
    db: &impl ConnectionTrait,
    provider: Provider,
    profile: &Profile,
) -> ApiResult<user::Model> {
    let linked = identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider.name()))
        .filter(identity::Column::Subject.eq(&profile.subject))
        .one(db)
        .await?;
    let user = match linked {
        Some(identity) => user::Entity::find_by_id(identity.user_id)
            .one(db)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("identity without a user")))?,
        None => {
            let user = users::upsert_by_email(db, &profile.email, account_name(profile).as_deref())
                .await?;
            // A racing first sign-in of the same provider account links it to the same
            // address's account, so whichever insert wins, the link is right.
            link_identity(db, user.id, provider.name(), &profile.subject).await?;
            user
        }
    };
    let avatar = profile
        .avatar_url
        .as_deref()
        .and_then(|url| input::web_url("avatarUrl", url).ok());
    match avatar {
        Some(avatar) if user.avatar_url.is_none() => {
            let mut active: user::ActiveModel = user.into();
            active.avatar_url = Set(Some(avatar));
            active.updated_at = Set(clock::now());
            Ok(active.update(db).await?)
        }
        _ => Ok(user),
    }
}

/// Finishes a provider sign-in: creates or links the account and returns a one-time login
/// code bound to the app's PKCE challenge. All of it in one transaction, so a failure leaves
/// nothing behind.
pub async fn complete_sign_in(
    db: &DatabaseConnection,
    provider: Provider,
    profile: &Profile,
    code_challenge: &str,
) -> ApiResult<(user::Model, String)> {
    let txn = db.begin().await?;
    let user = resolve_account(&txn, provider, profile).await?;
    let code = random_secret();
    let now = clock::now();
    login_code::Entity::insert(login_code::ActiveModel {
        code_hash: Set(hash(&code)),
        user_id: Set(user.id),
        code_challenge: Set(code_challenge.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + LOGIN_CODE_TTL),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok((user, code))
}

/// Swaps a login code and the verifier of the challenge it is bound to for tokens.
///
/// The code is consumed before the verifier is checked, so a wrong verifier burns it: a
/// code is tried once, whoever tries it, and a stolen one cannot be probed.
pub async fn exchange_login_code(
    db: &DatabaseConnection,
    tokens: &Tokens,
    code: &str,
    code_verifier: &str,
) -> ApiResult<TokenPair> {
    let Some(row) = login_code::Entity::delete_many()
        .filter(login_code::Column::CodeHash.eq(hash(code)))
        .exec_with_returning(db)
        .await?
        .pop()
    else {
        tracing::info!("login code refused: unknown or already used");
        return Err(INVALID_CODE);
    };
    if row.expires_at <= clock::now() {
        tracing::info!(user_id = %row.user_id, "login code refused: expired");
        return Err(INVALID_CODE);
    }
    let expected = row.code_challenge.as_bytes();
    let matches = is_verifier(code_verifier)
        && bool::from(s256_challenge(code_verifier).as_bytes().ct_eq(expected));
    if !matches {
        tracing::warn!(user_id = %row.user_id, "login code refused: wrong PKCE verifier");
        return Err(INVALID_CODE);
    }
    let user = user::Entity::find_by_id(row.user_id)
        .one(db)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    tokens.sign_in(db, user).await
}

/// Deletes states and login codes that have expired; returns how many.
pub async fn prune_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ApiResult<u64> {
    let states = oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    let codes = login_code::Entity::delete_many()
        .filter(login_code::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    Ok(states + codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn challenges_and_verifiers_are_checked_for_shape() {
        assert!(!is_s256_challenge("short"));
        assert!(!is_s256_challenge(&"a".repeat(42)));
        assert!(!is_s256_challenge(&format!("{}=", "a".repeat(42))));
        assert!(is_verifier(&"a".repeat(43)));
        assert!(is_verifier(&"a~.-_".repeat(20)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{} ", "a".repeat(43))));
    }

    #[test]
    fn names_fall_back_to_the_login() {
        let profile = |display_name: Option<&str>, login: &str| Profile {
            subject: "1".to_owned(),
            email: "ana@example.com".to_owned(),
            login: Some(login.to_owned()),
            display_name: display_name.map(str::to_owned),
            avatar_url: None,
        };
        assert_eq!(
            account_name(&profile(Some(" Ana Lima "), "ana")).as_deref(),
            Some("Ana Lima")
        );
        assert_eq!(
            account_name(&profile(Some("  "), "ana")).as_deref(),
            Some("ana")
        );
        assert_eq!(account_name(&profile(None, "ana")).as_deref(), Some("ana"));
        assert_eq!(
            account_name(&profile(Some("evil\u{202E}name"), "ana")).as_deref(),
            Some("ana")
        );
        assert_eq!(
            account_name(&profile(Some(&"é".repeat(100)), "ana")).map(|n| n.chars().count()),
            Some(input::MAX_NAME_CHARS)
        );
        let mut nameless = profile(None, "");
        nameless.login = None;
        assert_eq!(
            account_name(&nameless),
            None,
            "the e-mail's local part will do"
        );
    }

    #[test]
    fn a_nonce_matches_only_the_one_stored() {
        let now = clock::now();
        let row = |nonce: Option<&str>| oauth_state::Model {
            state_hash: hash("state"),
            provider: "google".to_owned(),
            redirect_uri: "photon://auth".to_owned(),
            code_challenge: "c".repeat(43),
            pkce_verifier: "v".repeat(43),
            nonce_hash: nonce.map(hash),
            created_at: now,
            expires_at: now,
        };
        assert!(nonce_matches(&row(Some("n-1")), Some("n-1")));
        assert!(!nonce_matches(&row(Some("n-1")), Some("n-2")));
        assert!(!nonce_matches(&row(Some("n-1")), None));
        assert!(!nonce_matches(&row(None), Some("n-1")));
        assert!(!nonce_matches(&row(None), None));
    }
}
