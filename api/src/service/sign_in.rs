//! Sign-in flows that end in a token pair, and the token lifecycle (refresh, logout).

use chrono::{DateTime, Duration, Utc};
use entity::{identity, user};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::jwt::JwtKeys;
use crate::auth::refresh::{self, RefreshSettings};
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::service::users;

/// What issues tokens: the JWT keys, the refresh-token lifetime, and how long after a
/// rotation a retry with the old token is still honoured.
pub struct Tokens {
    pub jwt: JwtKeys,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
}

/// What a successful sign-in or refresh hands the client.
pub struct TokenPair {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub user: user::Model,
}

/// Tokens stay out of logs even when a pair is debug-printed.
impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token", &"[redacted]")
            .field("user_id", &self.user.id)
            .finish()
    }
}

impl Tokens {
    /// Mints an access token and starts a refresh-token family for `user`.
    pub(crate) async fn sign_in(
        &self,
        db: &impl ConnectionTrait,
        user: user::Model,
    ) -> ApiResult<TokenPair> {
        let access = self.jwt.issue(user.id)?;
        let refresh_token = refresh::start_family(db, user.id, self.refresh_ttl).await?;
        Ok(TokenPair {
            access_token: access.token,
            access_token_expires_at: access.expires_at,
            refresh_token,
            user,
        })
    }
}

/// Links a provider's account to a user; harmless when the link exists.
pub async fn link_identity(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    provider: &str,
    subject: &str,
) -> ApiResult<()> {
    identity::Entity::insert(identity::ActiveModel {
        id: Set(Uuid::now_v7()),
        provider: Set(provider.to_owned()),
        subject: Set(subject.to_owned()),
        user_id: Set(user_id),
        created_at: Set(clock::now()),
    })
    .on_conflict_do_nothing_on([identity::Column::Provider, identity::Column::Subject])
    .exec(db)
    .await?;
    Ok(())
}

/// Signs in as any e-mail address, creating the account on first use. For local development
/// only: refused unless dev sign-in is `enabled`.
pub async fn dev_sign_in(
    db: &DatabaseConnection,
    tokens: &Tokens,
    enabled: bool,
    email: &str,
    name: Option<&str>,
) -> ApiResult<TokenPair> {
    if !enabled {
        return Err(ApiError::Forbidden(
            "dev sign-in is disabled on this server",
        ));
    }
    let txn = db.begin().await?;
    let user = users::upsert_by_email(&txn, email, name).await?;
    let address = user.email.clone().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("an account found by e-mail has none"))
    })?;
    link_identity(&txn, user.id, "dev", &address).await?;
    let pair = tokens.sign_in(&txn, user).await?;
    txn.commit().await?;
    Ok(pair)
}

/// Trades a refresh token for a new pair (rotation); a retry within the grace window gets a
/// fresh pair too.
pub async fn refresh(
    db: &DatabaseConnection,
    tokens: &Tokens,
    token: &str,
) -> ApiResult<TokenPair> {
    let (user_id, refresh_token) =
        refresh::rotate(db, token, tokens.refresh_ttl, tokens.refresh_reuse_grace).await?;
    let user = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    let access = tokens.jwt.issue(user.id)?;
    Ok(TokenPair {
        access_token: access.token,
        access_token_expires_at: access.expires_at,
        refresh_token,
        user,
    })
}

/// Revokes the refresh token's family. Access tokens already issued stay valid until they
/// expire (minutes): checking a revocation list on every request would cost a query each.
pub async fn logout(db: &DatabaseConnection, token: &str) -> ApiResult<bool> {
    refresh::revoke(db, token).await
}

/// Mints an access token for an e-mail address, creating the user if needed (`photon token`).
pub async fn mint_token(
    db: &DatabaseConnection,
    tokens: &Tokens,
    email: &str,
) -> ApiResult<String> {
    let user = users::upsert_by_email(db, email, None).await?;
    Ok(tokens.jwt.issue(user.id)?.token)
}

/// Settings: access and refresh tokens, and the developer sign-in.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// HS256 secret that signs access tokens, at least 32 bytes. Generated and kept in the data
    /// directory on the embedded default; required otherwise.
    #[arg(long, env = "PHOTON_JWT_SECRET", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub jwt_secret: Option<secrecy::SecretString>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "PHOTON_ACCESS_TOKEN_TTL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token, in days; every use rotates it and starts the clock again.
    #[arg(long, env = "PHOTON_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=365))]
    pub refresh_token_ttl_days: u32,

    #[command(flatten)]
    pub refresh: RefreshSettings,

    /// Enables `devSignIn` (anyone can sign in as any e-mail). Defaults to on only for the
    /// embedded default (no DATABASE_URL) with both the bind address and PHOTON_PUBLIC_URL on
    /// loopback and no OAuth provider configured; off otherwise.
    #[arg(long, env = "PHOTON_DEV_SIGN_IN")]
    pub dev_sign_in: Option<bool>,
}
