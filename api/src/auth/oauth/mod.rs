//! Sign-in with Apple, Google, GitHub and Discord: the OAuth2 authorization-code flow with
//! PKCE (OpenID Connect, with a nonce, for Apple and Google), ending in a one-time login code
//! handed to the app.
//!
//! 1. The app opens `GET /auth/{provider}/start?redirect_uri=…&code_challenge=…` in an
//!    in-app browser, with a PKCE challenge (S256) of its own.
//! 2. We remember the sign-in under a random `state`, with a PKCE verifier of our own for
//!    the provider, and send the browser to the provider's consent page.
//! 3. The provider sends it back to `GET /auth/{provider}/callback?code=…&state=…` (Apple:
//!    a form `POST` to the same path). We consume the state, swap the code for tokens, read
//!    the account (GitHub and Discord: their profile APIs; Apple and Google: the ID token,
//!    checked against their published keys and our nonce), sign the verified e-mail's
//!    account in, and send the browser to `redirect_uri?code=<login code>` (or
//!    `?error=<code>`).
//! 4. The app calls `exchangeLoginCode(code, codeVerifier)` and gets its tokens. No token
//!    ever appears in a URL; the login code is worthless without the app's verifier.

pub mod apple;
pub mod id_token;
pub mod jwks;
pub mod providers;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::Algorithm;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet};
use oauth2::{
    ExtraTokenFields, RedirectUrl, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

pub use apple::{AppleCredentials, AppleKey};
pub use providers::{Provider, ProviderUrls};

/// An OAuth app's credentials, as registered with the provider.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Which providers are configured, and where they live.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// `None`: sign in with Apple is off.
    pub apple: Option<AppleCredentials>,
    /// `None`: sign-in with Google is off.
    pub google: Option<ClientCredentials>,
    /// `None`: sign-in with GitHub is off.
    pub github: Option<ClientCredentials>,
    /// `None`: sign-in with Discord is off.
    pub discord: Option<ClientCredentials>,
    pub urls: ProviderUrls,
}

impl OAuthSettings {
    /// The client id and, except for Apple (whose secret is made per request), the secret.
    fn credentials(&self, provider: Provider) -> Option<(&str, Option<&SecretString>)> {
        fn pair(c: &ClientCredentials) -> (&str, Option<&SecretString>) {
            (c.client_id.as_str(), Some(&c.client_secret))
        }
        match provider {
            Provider::Apple => self.apple.as_ref().map(|c| (c.client_id.as_str(), None)),
            Provider::Google => self.google.as_ref().map(pair),
            Provider::GitHub => self.github.as_ref().map(pair),
            Provider::Discord => self.discord.as_ref().map(pair),
        }
    }

    /// Whether any provider is configured (which turns the dev sign-in's default off).
    pub fn any_enabled(&self) -> bool {
        Provider::ALL
            .into_iter()
            .any(|p| self.credentials(p).is_some())
    }
}

/// What a token response has beyond OAuth2's fields: OpenID Connect's `id_token` (Apple and
/// Google; GitHub and Discord send none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenFields {
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

pub(crate) type OidcTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;

/// An `oauth2` client with the authorization and token endpoints set.
pub(crate) type ConfiguredClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What an OpenID provider's ID tokens are checked against.
pub(crate) struct OpenId {
    pub client_id: String,
    pub issuers: Vec<String>,
    pub algorithms: &'static [Algorithm],
    pub jwks: jwks::Jwks,
}

/// Longest wait for one call to a provider. A callback makes up to three in a row (token,
/// then one or two profile or key reads), which must all fit in the API's 30-second request
/// limit.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(8);
const PROVIDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The enabled providers' clients, built once at start-up.
pub struct OAuth {
    clients: Vec<(Provider, ConfiguredClient)>,
    /// Apple's and Google's ID token checks.
    openid: Vec<(Provider, OpenId)>,
    /// Makes Apple's client secrets.
    apple_secrets: Option<apple::ClientSecrets>,
    /// Talks to the providers. It never follows redirects: a token endpoint that redirects
    /// could otherwise send our client secret and codes wherever it pointed.
    pub(crate) http: reqwest::Client,
    pub(crate) urls: ProviderUrls,
    /// `{PHOTON_PUBLIC_URL}/auth/`, where the start and callback routes live.
    routes_base: String,
    /// The app URIs a login code may be handed to.
    app_redirect_uris: Vec<String>,
}

impl OAuth {
    pub fn new(
        settings: &OAuthSettings,
        public_url: &Url,
        app_redirect_uris: &[String],
    ) -> anyhow::Result<Self> {
        let routes_base = format!("{}/auth/", public_url.as_str().trim_end_matches('/'));
        let mut clients = Vec::new();
        let mut openid = Vec::new();
        for provider in Provider::ALL {
            let Some((client_id, client_secret)) = settings.credentials(provider) else {
                continue;
            };
            let redirect = format!("{routes_base}{}/callback", provider.name());
            let mut client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
                .set_auth_uri(AuthUrl::new(settings.urls.authorize(provider))?)
                .set_token_uri(TokenUrl::new(settings.urls.token(provider))?)
                .set_redirect_uri(RedirectUrl::new(redirect)?)
                // Every provider takes the client's credentials as form fields; GitHub and
                // Apple document no other way.
                .set_auth_type(AuthType::RequestBody);
            if let Some(secret) = client_secret {
                client =
                    client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
            }
            clients.push((provider, client));
            if let Some(jwks_url) = settings.urls.jwks(provider) {
                openid.push((
                    provider,
                    OpenId {
                        client_id: client_id.to_owned(),
                        issuers: settings.urls.issuers(provider),
                        // Google signs with RS256; Apple has used RS256 and announced ES256.
                        algorithms: match provider {
                            Provider::Apple => &[Algorithm::RS256, Algorithm::ES256],
                            _ => &[Algorithm::RS256],
                        },
                        jwks: jwks::Jwks::new(jwks_url),
                    },
                ));
            }
        }
        let apple_secrets = match &settings.apple {
            Some(credentials) => {
                let audience = settings.urls.issuers(Provider::Apple).remove(0);
                Some(apple::ClientSecrets::new(credentials.clone(), audience)?)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_CONNECT_TIMEOUT)
            // GitHub's API refuses requests without one.
            .user_agent(concat!("photon/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for sign-in providers")?;
        Ok(Self {
            clients,
            openid,
            apple_secrets,
            http,
            urls: settings.urls.clone(),
            routes_base,
            app_redirect_uris: app_redirect_uris
                .iter()
                .map(|uri| uri.trim().to_owned())
                .filter(|uri| !uri.is_empty())
                .collect(),
        })
    }

    pub(crate) fn client(&self, provider: Provider) -> Option<&ConfiguredClient> {
        self.clients
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, client)| client)
    }

    /// The ID token checks of an enabled OpenID provider.
    pub(crate) fn openid(&self, provider: Provider) -> Option<&OpenId> {
        self.openid
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, openid)| openid)
    }

    /// The client secret to send with a code, when it is made per request (Apple's).
    pub(crate) fn fresh_client_secret(
        &self,
        provider: Provider,
    ) -> anyhow::Result<Option<ClientSecret>> {
        match (provider, &self.apple_secrets) {
            (Provider::Apple, Some(secrets)) => {
                let secret = secrets.current(chrono::Utc::now())?;
                Ok(Some(ClientSecret::new(secret.expose_secret().to_owned())))
            }
            _ => Ok(None),
        }
    }

    /// The enabled providers, in login-screen order.
    pub fn enabled(&self) -> impl Iterator<Item = Provider> + '_ {
        self.clients.iter().map(|(p, _)| *p)
    }

    /// Where the app starts a sign-in with `provider` (it appends `redirect_uri` and
    /// `code_challenge`).
    pub fn start_url(&self, provider: Provider) -> String {
        format!("{}{}/start", self.routes_base, provider.name())
    }

    /// Exact match only: a prefix or pattern would let a look-alike URI collect codes.
    pub(crate) fn allows_redirect(&self, uri: &str) -> bool {
        self.app_redirect_uris.iter().any(|allowed| allowed == uri)
    }
}

/// Settings: sign-in with Apple, Google, GitHub and Discord, and the app URIs sign-in may
/// return to.
#[derive(Debug, Clone, clap::Args)]
pub struct OAuthArgs {
    /// Comma-separated allow-list of app URIs that sign-in may hand a login code to.
    #[arg(
        long,
        env = "PHOTON_APP_REDIRECT_URIS",
        value_delimiter = ',',
        default_value = "photon://auth"
    )]
    pub app_redirect_uris: Vec<String>,

    /// The Services ID of Sign in with Apple; with APPLE_TEAM_ID, APPLE_KEY_ID and
    /// APPLE_PRIVATE_KEY it enables sign in with Apple.
    #[arg(long, env = "APPLE_CLIENT_ID")]
    pub apple_client_id: Option<String>,

    /// The Apple developer team's id (the client secret's issuer).
    #[arg(long, env = "APPLE_TEAM_ID")]
    pub apple_team_id: Option<String>,

    /// The id of the Sign in with Apple key.
    #[arg(long, env = "APPLE_KEY_ID")]
    pub apple_key_id: Option<String>,

    /// Path of the Sign in with Apple key (the `.p8` file: an EC P-256 key in PKCS#8 PEM).
    #[arg(long, env = "APPLE_PRIVATE_KEY")]
    pub apple_private_key: Option<PathBuf>,

    /// Apple's issuer, which serves `/auth/authorize`, `/auth/token` and `/auth/keys`.
    #[arg(
        long,
        env = "APPLE_BASE_URL",
        default_value = "https://appleid.apple.com"
    )]
    pub apple_base_url: url::Url,

    /// Client id of the Google OAuth client; with GOOGLE_CLIENT_SECRET it enables sign-in
    /// with Google.
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,

    /// Client secret of the Google OAuth client.
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub google_client_secret: Option<secrecy::SecretString>,

    /// The issuer of Google's ID tokens (the bare host is accepted as well).
    #[arg(
        long,
        env = "GOOGLE_ISSUER_URL",
        default_value = "https://accounts.google.com"
    )]
    pub google_issuer_url: url::Url,

    /// Google's authorization endpoint.
    #[arg(
        long,
        env = "GOOGLE_AUTHORIZE_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth"
    )]
    pub google_authorize_url: url::Url,

    /// Google's token endpoint.
    #[arg(
        long,
        env = "GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: url::Url,

    /// Google's signing keys (JWKS).
    #[arg(
        long,
        env = "GOOGLE_JWKS_URL",
        default_value = "https://www.googleapis.com/oauth2/v3/certs"
    )]
    pub google_jwks_url: url::Url,

    /// Client id of the GitHub OAuth app; with GITHUB_CLIENT_SECRET it enables sign-in
    /// with GitHub.
    #[arg(long, env = "GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// Client secret of the GitHub OAuth app.
    #[arg(long, env = "GITHUB_CLIENT_SECRET", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub github_client_secret: Option<secrecy::SecretString>,

    /// GitHub's web base (`/login/oauth/authorize` and `/login/oauth/access_token`).
    #[arg(long, env = "GITHUB_BASE_URL", default_value = "https://github.com")]
    pub github_base_url: url::Url,

    /// GitHub's API base (`/user`, `/user/emails`).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: url::Url,

    /// Client id of the Discord application; with DISCORD_CLIENT_SECRET it enables sign-in
    /// with Discord.
    #[arg(long, env = "DISCORD_CLIENT_ID")]
    pub discord_client_id: Option<String>,

    /// Client secret of the Discord application.
    #[arg(long, env = "DISCORD_CLIENT_SECRET", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub discord_client_secret: Option<secrecy::SecretString>,

    /// Discord's base (`/oauth2/authorize`, `/api/oauth2/token`, `/api/users/@me`).
    #[arg(long, env = "DISCORD_BASE_URL", default_value = "https://discord.com")]
    pub discord_base_url: url::Url,
}
