//! `oauth_states`: sign-ins in progress at a provider. One row per `/auth/{provider}/start`,
//! keyed by the SHA-256 of the `state` sent to the provider, deleted when the callback
//! consumes it (or by the sweeper once expired).

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_states")]
pub struct Model {
    /// Lower-case hex SHA-256 of the state; the state itself is never stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_hash: String,
    /// `github`, `discord`, `apple` or `google`: a state is only good at the provider it was made for.
    pub provider: String,
    /// The app URI the login code (or the error) goes to; on the allow-list when stored.
    pub redirect_uri: String,
    /// The app's PKCE challenge (S256), which the login code will be bound to.
    pub code_challenge: String,
    /// Our own PKCE verifier for the provider's token endpoint. Useless without the
    /// authorization code, which only the browser sees.
    pub pkce_verifier: String,
    /// Lower-case hex SHA-256 of the OpenID Connect `nonce` sent to Apple or Google, which
    /// their ID token must carry back; `None` for GitHub and Discord.
    pub nonce_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

/// The verifier stays out of logs even when a row is debug-printed.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("oauth_state::Model")
            .field("provider", &self.provider)
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
