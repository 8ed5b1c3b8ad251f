//! Refresh tokens: opaque random strings, stored only as SHA-256 hashes. A sign-in starts a
//! *family*; each use rotates the token (the old one is revoked, a new one joins the family).
//! Presenting a revoked token means it leaked or was replayed, so the whole family is revoked
//! and every device holding one of its tokens must sign in again.
//!
//! Except within a short grace window after the token was rotated: a retry after a lost
//! response, or two tabs refreshing at once, present the same token twice in honest use. Such a
//! retry gets a fresh token in the same family (the pair it missed cannot be sent again: only
//! hashes are stored). That is safe within the window because whoever presents the token held
//! a valid one moments ago and could have refreshed with it then; the family stays one unit
//! that logout or a later reuse revokes whole; and a reuse after the window still revokes it.
//! A family already revoked (logout, or a detected reuse) is never revived.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use entity::refresh_token;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, SimpleExpr},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock;
use crate::digest::hex;
use crate::error::{ApiError, ApiResult};

/// How refresh-token reuse is told from an honest retry.
#[derive(Debug, Clone, clap::Args)]
pub struct RefreshSettings {
    /// Seconds after a refresh token is rotated during which presenting it again (a retry
    /// after a lost response, two tabs racing) gets a fresh token pair in the same family
    /// instead of revoking the family; 0 treats every second use as a reuse.
    #[arg(
        long,
        env = "PHOTON_REFRESH_REUSE_GRACE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=300)
    )]
    pub refresh_reuse_grace_secs: u64,
}

impl RefreshSettings {
    pub fn reuse_grace(&self) -> Duration {
        // The range check keeps this far from overflowing.
        Duration::seconds(i64::try_from(self.refresh_reuse_grace_secs).unwrap_or(0))
    }
}

/// Prefix that lets secret scanners recognise a leaked Photon refresh token.
const TOKEN_PREFIX: &str = "phrt_";

const INVALID: ApiError = ApiError::Unauthenticated("invalid, expired or revoked refresh token");

fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Stores a new token in `family_id` and returns its plain text (the only time it exists).
async fn insert(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
) -> ApiResult<String> {
    let token = generate();
    let now = clock::now();
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(hash(&token)),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        revoked_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(token)
}

/// Starts a new family for a fresh sign-in.
pub async fn start_family(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ttl: Duration,
) -> ApiResult<String> {
    insert(db, user_id, Uuid::now_v7(), ttl).await
}

/// Revokes every live token of a family; returns how many.
///
/// It runs until a pass finds nothing: on Postgres, a pass that had to wait for a concurrent
/// rotation's row lock cannot see the token that rotation inserted (the statement's snapshot
/// predates it), but the next pass, a new statement, can.
async fn revoke_family(db: &impl ConnectionTrait, family_id: Uuid) -> ApiResult<u64> {
    revoke_live(db, refresh_token::Column::FamilyId.eq(family_id)).await
}

/// Revokes every live token matching `which`, pass after pass until one finds nothing (see
/// [`revoke_family`] for why one pass is not enough); returns how many.
async fn revoke_live(db: &impl ConnectionTrait, which: SimpleExpr) -> ApiResult<u64> {
    let mut revoked = 0;
    loop {
        let result = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(clock::now()))
            .filter(which.clone())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Ok(revoked);
        }
        revoked += result.rows_affected;
    }
}

/// Swaps a valid refresh token for a new one in the same family; returns the user and the
/// new token. A token used twice, even by two requests racing, revokes its family, unless the
/// second use comes within `grace` of the first (see the module docs).
pub async fn rotate(
    db: &DatabaseConnection,
    token: &str,
    ttl: Duration,
    grace: Duration,
) -> ApiResult<(Uuid, String)> {
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?
    else {
        return Err(INVALID);
    };
    if row.revoked_at.is_some() {
        return retry_or_revoke(db, &row, ttl, grace).await;
    }
    if row.expires_at <= clock::now() {
        return Err(INVALID);
    }
    let txn = db.begin().await?;
    // Only one request can flip `revoked_at` from NULL: the loser of a race sees 0 rows and is
    // treated as a second use.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(clock::now()))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        txn.rollback().await?;
        return retry_or_revoke(db, &row, ttl, grace).await;
    }
    let new_token = insert(&txn, row.user_id, row.family_id, ttl).await?;
    txn.commit().await?;
    Ok((row.user_id, new_token))
}

/// A second use of a revoked token: a fresh token in the same family if the token was
/// revoked less than `grace` ago and the family is still live; otherwise the family is
/// revoked.
async fn retry_or_revoke(
    db: &DatabaseConnection,
    row: &refresh_token::Model,
    ttl: Duration,
    grace: Duration,
) -> ApiResult<(Uuid, String)> {
    let now = clock::now();
    if grace > Duration::zero() && row.expires_at > now {
        let txn = db.begin().await?;
        // Read again: a racing request may have revoked it after this one looked.
        let recent = refresh_token::Entity::find_by_id(row.id)
            .filter(refresh_token::Column::RevokedAt.gt(now - grace))
            .one(&txn)
            .await?
            .is_some();
        // Locks the family's live tokens (a no-op write), so a logout revoking them waits for
        // this transaction and its next pass revokes the token added here too. None live: the
        // family was revoked (logout or a reuse), and stays so.
        let live = if recent {
            refresh_token::Entity::update_many()
                .col_expr(
                    refresh_token::Column::RevokedAt,
                    Expr::col(refresh_token::Column::RevokedAt),
                )
                .filter(refresh_token::Column::FamilyId.eq(row.family_id))
                .filter(refresh_token::Column::RevokedAt.is_null())
                .exec(&txn)
                .await?
                .rows_affected
        } else {
            0
        };
        if live > 0 {
            let new_token = insert(&txn, row.user_id, row.family_id, ttl).await?;
            txn.commit().await?;
            tracing::info!(
                user_id = %row.user_id,
                family_id = %row.family_id,
                "refresh token presented again within the grace window; new token in its family"
            );
            return Ok((row.user_id, new_token));
        }
        txn.rollback().await?;
    }
    let revoked = revoke_family(db, row.family_id).await?;
    tracing::warn!(
        user_id = %row.user_id,
        family_id = %row.family_id,
        revoked,
        "refresh token reused; family revoked"
    );
    Err(INVALID)
}

/// Uses a live `token` up for good and returns its user; `None` if it was unknown, expired or
/// revoked. Of two requests racing with one token, exactly one gets it (the conditional write
/// decides), so in a transaction that is later rolled back the token survives.
pub async fn consume(db: &impl ConnectionTrait, token: &str) -> ApiResult<Option<Uuid>> {
    let token_hash = hash(token);
    let now = clock::now();
    let used = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(&token_hash))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    if used.rows_affected != 1 {
        return Ok(None);
    }
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .one(db)
        .await?
        .map(|row| row.user_id))
}

/// Revokes every live refresh token of `user_id`, in every family; returns how many.
pub async fn revoke_user(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<u64> {
    revoke_live(db, refresh_token::Column::UserId.eq(user_id)).await
}

/// The user a refresh token was issued to, whatever its state (nothing is locked or changed).
pub async fn issued_to(db: &impl ConnectionTrait, token: &str) -> ApiResult<Option<Uuid>> {
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?
        .map(|row| row.user_id))
}

/// Revokes the family of `token` (logout). Returns whether the token was known and live.
pub async fn revoke(db: &DatabaseConnection, token: &str) -> ApiResult<bool> {
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    Ok(revoke_family(db, row.family_id).await? > 0)
}
