//! Refresh tokens: opaque random strings, stored only as SHA-256 hashes. A sign-in starts a
//! *family*; each use rotates the token (the old one is revoked, a new one joins the family).
//! Presenting a revoked token means it leaked or was replayed, so the whole family is revoked
//! and every device holding one of its tokens must sign in again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use entity::refresh_token;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait, sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::digest::hex;
use crate::error::{ApiError, ApiResult};
use crate::service::clock;

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
    let mut revoked = 0;
    loop {
        let result = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(clock::now()))
            .filter(refresh_token::Column::FamilyId.eq(family_id))
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
/// new token. A token used twice, even by two requests racing, revokes its family.
pub async fn rotate(
    db: &DatabaseConnection,
    token: &str,
    ttl: Duration,
) -> ApiResult<(Uuid, String)> {
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?
    else {
        return Err(INVALID);
    };
    if row.revoked_at.is_some() {
        let revoked = revoke_family(db, row.family_id).await?;
        tracing::warn!(
            user_id = %row.user_id,
            family_id = %row.family_id,
            revoked,
            "refresh token reused; family revoked"
        );
        return Err(INVALID);
    }
    if row.expires_at <= clock::now() {
        return Err(INVALID);
    }
    let txn = db.begin().await?;
    // Only one request can flip `revoked_at` from NULL: the loser of a race sees 0 rows and is
    // treated as a reuse.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(clock::now()))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        txn.rollback().await?;
        revoke_family(db, row.family_id).await?;
        tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token raced; family revoked");
        return Err(INVALID);
    }
    let new_token = insert(&txn, row.user_id, row.family_id, ttl).await?;
    txn.commit().await?;
    Ok((row.user_id, new_token))
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
