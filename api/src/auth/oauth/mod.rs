//! Sign-in with GitHub and Discord: the OAuth2 authorization-code flow with PKCE, ending in
//! a one-time login code handed to the app.
//!
//! 1. The app opens `GET /auth/{provider}/start?redirect_uri=…&code_challenge=…` in an
//!    in-app browser, with a PKCE challenge (S256) of its own.
//! 2. We remember the sign-in under a random `state`, with a PKCE verifier of our own for
//!    the provider, and send the browser to the provider's consent page.
//! 3. The provider sends it back to `GET /auth/{provider}/callback?code=…&state=…`. We
//!    consume the state, swap the code for an access token, read the profile, sign the
//!    verified e-mail's account in, and send the browser to `redirect_uri?code=<login code>`
//!    (or `?error=<code>`).
//! 4. The app calls `exchangeLoginCode(code, codeVerifier)` and gets its tokens. No token
//!    ever appears in a URL; the login code is worthless without the app's verifier.

pub mod providers;

use std::time::Duration;

use anyhow::Context;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet};
use oauth2::{RedirectUrl, TokenUrl};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

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
    /// `None`: sign-in with GitHub is off.
    pub github: Option<ClientCredentials>,
    /// `None`: sign-in with Discord is off.
    pub discord: Option<ClientCredentials>,
    pub urls: ProviderUrls,
}

impl OAuthSettings {
    fn credentials(&self, provider: Provider) -> Option<&ClientCredentials> {
        match provider {
            Provider::GitHub => self.github.as_ref(),
            Provider::Discord => self.discord.as_ref(),
        }
    }

    /// Whether any provider is configured (which turns the dev sign-in's default off).
    pub fn any_enabled(&self) -> bool {
        Provider::ALL
            .into_iter()
            .any(|p| self.credentials(p).is_some())
    }
}

/// An `oauth2` client with the authorization and token endpoints set.
pub(crate) type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Longest wait for one call to a provider. A callback makes up to three in a row (token,
/// then one or two profile reads), which must all fit in the API's 30-second request limit.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(8);
const PROVIDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The enabled providers' clients, built once at start-up.
pub struct OAuth {
    clients: Vec<(Provider, ConfiguredClient)>,
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
        for provider in Provider::ALL {
            let Some(credentials) = settings.credentials(provider) else {
                continue;
            };
            let redirect = format!("{routes_base}{}/callback", provider.name());
            let client = BasicClient::new(ClientId::new(credentials.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    credentials.client_secret.expose_secret().to_owned(),
                ))
                .set_auth_uri(AuthUrl::new(settings.urls.authorize(provider))?)
                .set_token_uri(TokenUrl::new(settings.urls.token(provider))?)
                .set_redirect_uri(RedirectUrl::new(redirect)?)
                // Both providers take the client's credentials as form fields; GitHub
                // documents no other way.
                .set_auth_type(AuthType::RequestBody);
            clients.push((provider, client));
        }
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

/// Settings: sign-in with GitHub and Discord, and the app URIs sign-in may return to.
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
