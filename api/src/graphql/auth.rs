//! Sign-in and tokens.

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::users::User;
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::oauth_sign_in;
use crate::service::sign_in::{self, TokenPair};

pub struct AuthPayload(pub(super) TokenPair);

/// Tokens for a signed-in user. Send the access token as `Authorization: Bearer …`; when it
/// expires, trade the refresh token for a new pair with `refreshToken`.
#[Object]
impl AuthPayload {
    /// A JWT, valid for minutes.
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }

    /// Opaque and single-use: every `refreshToken` call returns a new one. Using an old one
    /// again signs out every device of that sign-in.
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }

    /// When the access token stops working; refresh shortly before.
    async fn access_token_expires_at(&self) -> DateTime<Utc> {
        self.0.access_token_expires_at
    }

    /// The signed-in user.
    async fn user(&self) -> User {
        User::viewer(self.0.user.clone())
    }
}

/// A way to sign in.
#[derive(SimpleObject)]
pub struct AuthProvider {
    /// `apple`, `google`, `github` or `discord`.
    name: String,
    /// Where the app's in-app browser starts the sign-in, once the app has appended
    /// `?redirect_uri=<an allowed app URI>&code_challenge=<S256 PKCE challenge>`. The browser
    /// comes back to `redirect_uri?code=<login code>` (swap it with `exchangeLoginCode`) or
    /// `redirect_uri?error=<reason>`.
    start_url: String,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The sign-in providers this server has enabled, for the login screen. Empty until
    /// credentials for Apple, Google, GitHub or Discord are configured.
    async fn auth_providers(&self, ctx: &Context<'_>) -> Result<Vec<AuthProvider>> {
        let oauth = &ctx.deps()?.oauth;
        Ok(oauth
            .enabled()
            .map(|provider| AuthProvider {
                name: provider.name().to_owned(),
                start_url: oauth.start_url(provider),
            })
            .collect())
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Signs in as any e-mail address, creating the account if needed. Local development
    /// only: FORBIDDEN unless the server enables dev sign-in.
    async fn dev_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any address; the account is created on first use.")] email: String,
        #[graphql(desc = "Display name for a new account (default: the e-mail's local part).")]
        name: Option<String>,
    ) -> Result<AuthPayload> {
        ctx.rate_limit(Rule::SignIn)?;
        let deps = ctx.deps()?;
        let enabled = deps.config.dev_sign_in;
        let pair =
            sign_in::dev_sign_in(&deps.db, &deps.tokens, enabled, &email, name.as_deref()).await?;
        Ok(AuthPayload(pair))
    }

    /// Finishes a provider sign-in (Apple, Google, GitHub or Discord): swaps the one-time
    /// login code the browser brought back to the app for tokens. The code works once, for 60 seconds, and only
    /// with the verifier of the `code_challenge` the sign-in started with; any failure is
    /// UNAUTHENTICATED and uses the code up, so the app starts the sign-in again.
    async fn exchange_login_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `code` parameter of the app's redirect URI.")] code: String,
        #[graphql(
            desc = "The PKCE code verifier whose S256 challenge the app passed to the start URL."
        )]
        code_verifier: String,
    ) -> Result<AuthPayload> {
        ctx.rate_limit(Rule::SignIn)?;
        let deps = ctx.deps()?;
        let pair =
            oauth_sign_in::exchange_login_code(&deps.db, &deps.tokens, &code, &code_verifier)
                .await?;
        Ok(AuthPayload(pair))
    }

    /// Trades a refresh token for a new access token and refresh token.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token from the last AuthPayload.")] refresh_token: String,
    ) -> Result<AuthPayload> {
        ctx.rate_limit(Rule::Refresh)?;
        let deps = ctx.deps()?;
        Ok(AuthPayload(
            sign_in::refresh(&deps.db, &deps.tokens, &refresh_token).await?,
        ))
    }

    /// Signs out: the refresh token and every token rotated from the same sign-in stop
    /// working. Returns false if the token was unknown or already revoked.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token from the last AuthPayload.")] refresh_token: String,
    ) -> Result<bool> {
        Ok(sign_in::logout(&ctx.deps()?.db, &refresh_token).await?)
    }
}
