//! The sign-in providers: their endpoints and scopes, and GitHub's and Discord's profiles
//! read into one [`Profile`] that carries only what the provider vouches for (a verified
//! e-mail address). Apple's and Google's come from their ID tokens (see [`super::id_token`]).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

/// A sign-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Apple,
    Google,
    GitHub,
    Discord,
}

impl Provider {
    /// In the order the login screen lists them (Apple's guidelines want Sign in with Apple
    /// no less prominent than any other).
    pub const ALL: [Provider; 4] = [
        Provider::Apple,
        Provider::Google,
        Provider::GitHub,
        Provider::Discord,
    ];

    /// The name in URLs, in the API and in the `identities` table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Apple => "apple",
            Self::Google => "google",
            Self::GitHub => "github",
            Self::Discord => "discord",
        }
    }

    /// Whether the account comes from an OpenID Connect ID token (rather than a profile API
    /// read with the access token).
    pub fn is_oidc(self) -> bool {
        matches!(self, Self::Apple | Self::Google)
    }

    /// Whether the provider sends the browser back with a form POST (`response_mode=
    /// form_post`) rather than a GET: Apple does whenever name or e-mail is asked for.
    pub fn posts_callback(self) -> bool {
        self == Self::Apple
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The least each provider will grant that still yields a verified e-mail address.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            // Apple has no `openid` scope to ask for: every token response has an ID token.
            Self::Apple => &["name", "email"],
            Self::Google => &["openid", "email", "profile"],
            Self::GitHub => &["read:user", "user:email"],
            Self::Discord => &["identify", "email"],
        }
    }
}

/// Where the providers live. The defaults are the real services; tests point them at fakes
/// on loopback, and GitHub Enterprise users at their own server.
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    /// Apple's issuer, which also serves `/auth/authorize`, `/auth/token` and `/auth/keys`.
    pub apple_base: Url,
    /// The `iss` of Google's ID tokens.
    pub google_issuer: Url,
    pub google_authorize: Url,
    pub google_token: Url,
    /// Google's JWKS, the keys its ID tokens are signed with.
    pub google_jwks: Url,
    /// Serves `/login/oauth/authorize` and `/login/oauth/access_token`.
    pub github_base: Url,
    /// Serves `/user` and `/user/emails`.
    pub github_api: Url,
    /// Serves `/oauth2/authorize`, `/api/oauth2/token` and `/api/users/@me`.
    pub discord_base: Url,
}

/// `base` + `path`, whether or not the base ends in a slash (and keeping any path it has,
/// such as GitHub Enterprise's `/api/v3`).
fn join(base: &Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

impl ProviderUrls {
    pub fn authorize(&self, provider: Provider) -> String {
        match provider {
            Provider::Apple => join(&self.apple_base, "/auth/authorize"),
            Provider::Google => self.google_authorize.to_string(),
            Provider::GitHub => join(&self.github_base, "/login/oauth/authorize"),
            Provider::Discord => join(&self.discord_base, "/oauth2/authorize"),
        }
    }

    pub fn token(&self, provider: Provider) -> String {
        match provider {
            Provider::Apple => join(&self.apple_base, "/auth/token"),
            Provider::Google => self.google_token.to_string(),
            Provider::GitHub => join(&self.github_base, "/login/oauth/access_token"),
            Provider::Discord => join(&self.discord_base, "/api/oauth2/token"),
        }
    }

    /// Where an OpenID provider publishes its signing keys.
    pub fn jwks(&self, provider: Provider) -> Option<String> {
        match provider {
            Provider::Apple => Some(join(&self.apple_base, "/auth/keys")),
            Provider::Google => Some(self.google_jwks.to_string()),
            Provider::GitHub | Provider::Discord => None,
        }
    }

    /// The `iss` values an OpenID provider's ID tokens may carry. Google documents both
    /// `https://accounts.google.com` and the bare `accounts.google.com`.
    pub fn issuers(&self, provider: Provider) -> Vec<String> {
        let exact = |url: &Url| url.as_str().trim_end_matches('/').to_owned();
        match provider {
            Provider::Apple => vec![exact(&self.apple_base)],
            Provider::Google => {
                let issuer = exact(&self.google_issuer);
                let bare = issuer.strip_prefix("https://").map(str::to_owned);
                std::iter::once(issuer).chain(bare).collect()
            }
            Provider::GitHub | Provider::Discord => Vec::new(),
        }
    }
}

/// A provider's account as the provider vouches for it.
pub struct Profile {
    /// The provider's stable id for the account (never the login, which can be renamed).
    pub subject: String,
    /// A verified e-mail address (the primary one on GitHub).
    pub email: String,
    /// The login name, for when there is no display name (Apple and Google have none).
    pub login: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Why no usable profile came back.
#[derive(Debug)]
pub enum ProfileError {
    /// The provider has no verified e-mail address for the account (or none at all, or on
    /// GitHub an unverified primary one).
    EmailUnverified,
    /// The provider failed or answered something unusable. The text is for the log and
    /// holds no secret.
    Provider(String),
}

/// Most bytes read from a profile or JWKS endpoint: real answers are a few kilobytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// GETs `url` with the access token in the `Authorization` header (never in the URL) and
/// reads a JSON body of type `T`. Anything but a 2xx with that shape is a provider error.
async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
    accept: &'static str,
    endpoint: &'static str,
) -> Result<T, ProfileError> {
    let request = http
        .get(url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, accept);
    read_json(request, endpoint).await
}

/// Sends `request` and reads a JSON body of type `T`, at most [`MAX_BODY_BYTES`] of it.
/// Anything but a 2xx with that shape is a provider error.
pub(crate) async fn read_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    endpoint: &'static str,
) -> Result<T, ProfileError> {
    let mut response = request
        .send()
        .await
        .map_err(|err| ProfileError::Provider(format!("{endpoint}: request failed: {err}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProfileError::Provider(format!(
            "{endpoint}: answered {status}"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ProfileError::Provider(format!("{endpoint}: body failed: {err}")))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProfileError::Provider(format!(
                "{endpoint}: body larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    // Only the serde error is kept: the body could echo something personal.
    serde_json::from_slice(&body)
        .map_err(|err| ProfileError::Provider(format!("{endpoint}: unexpected JSON: {err}")))
}

/// Fetches and checks the profile behind an access token.
pub async fn fetch_profile(
    http: &reqwest::Client,
    urls: &ProviderUrls,
    provider: Provider,
    access_token: &str,
) -> Result<Profile, ProfileError> {
    match provider {
        Provider::GitHub => github_profile(http, &urls.github_api, access_token).await,
        Provider::Discord => discord_profile(http, &urls.discord_base, access_token).await,
        // Their account is in the ID token, not behind the access token.
        Provider::Apple | Provider::Google => Err(ProfileError::Provider(
            "no profile endpoint: the account comes from the ID token".to_owned(),
        )),
    }
}

/// GitHub's media type, and the REST API version these shapes come from.
const GITHUB_JSON: &str = "application/vnd.github+json";

/// `GET /user` (the fields we read).
#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

async fn github_profile(
    http: &reqwest::Client,
    api: &Url,
    access_token: &str,
) -> Result<Profile, ProfileError> {
    let user: GitHubUser =
        get_json(http, &join(api, "/user"), access_token, GITHUB_JSON, "user").await?;
    let emails: Vec<GitHubEmail> = get_json(
        http,
        &join(api, "/user/emails"),
        access_token,
        GITHUB_JSON,
        "user/emails",
    )
    .await?;
    // The primary address is the one GitHub itself treats as the account's; another
    // verified address is not promoted in its place.
    let primary = emails
        .into_iter()
        .find(|e| e.primary)
        .ok_or(ProfileError::EmailUnverified)?;
    if !primary.verified {
        return Err(ProfileError::EmailUnverified);
    }
    Ok(Profile {
        subject: user.id.to_string(),
        email: primary.email,
        login: Some(user.login),
        display_name: user.name,
        avatar_url: user.avatar_url,
    })
}

/// `GET /api/users/@me` (the fields we read). `email` and `verified` come with the `email`
/// scope, and may still be missing or null (accounts registered by phone).
#[derive(Deserialize)]
struct DiscordUser {
    id: String,
    username: String,
    global_name: Option<String>,
    avatar: Option<String>,
    email: Option<String>,
    verified: Option<bool>,
}

async fn discord_profile(
    http: &reqwest::Client,
    base: &Url,
    access_token: &str,
) -> Result<Profile, ProfileError> {
    let user: DiscordUser = get_json(
        http,
        &join(base, "/api/users/@me"),
        access_token,
        "application/json",
        "users/@me",
    )
    .await?;
    // A snowflake is a decimal number; anything else is not Discord talking.
    if user.id.is_empty() || !user.id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProfileError::Provider("users/@me: malformed id".to_owned()));
    }
    let email = match (user.email, user.verified) {
        (Some(email), Some(true)) => email,
        _ => return Err(ProfileError::EmailUnverified),
    };
    let avatar_url = user
        .avatar
        .filter(|hash| {
            !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .map(|hash| format!("https://cdn.discordapp.com/avatars/{}/{hash}.png", user.id));
    Ok(Profile {
        subject: user.id,
        email,
        login: Some(user.username),
        display_name: user.global_name,
        avatar_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::from_name(provider.name()), Some(provider));
        }
        assert_eq!(Provider::from_name("GitHub"), None);
        assert_eq!(Provider::from_name("google"), Some(Provider::Google));
        assert_eq!(Provider::from_name("microsoft"), None);
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let urls = ProviderUrls {
            apple_base: Url::parse("https://appleid.apple.com").unwrap(),
            google_issuer: Url::parse("https://accounts.google.com").unwrap(),
            google_authorize: Url::parse("https://accounts.google.com/o/oauth2/v2/auth").unwrap(),
            google_token: Url::parse("https://oauth2.googleapis.com/token").unwrap(),
            google_jwks: Url::parse("https://www.googleapis.com/oauth2/v3/certs").unwrap(),
            github_base: Url::parse("https://ghe.example.com/").unwrap(),
            github_api: Url::parse("https://ghe.example.com/api/v3").unwrap(),
            discord_base: Url::parse("https://discord.com").unwrap(),
        };
        assert_eq!(
            urls.token(Provider::GitHub),
            "https://ghe.example.com/login/oauth/access_token"
        );
        assert_eq!(
            join(&urls.github_api, "/user/emails"),
            "https://ghe.example.com/api/v3/user/emails"
        );
        assert_eq!(
            urls.authorize(Provider::Discord),
            "https://discord.com/oauth2/authorize"
        );
        assert_eq!(
            urls.jwks(Provider::Apple).as_deref(),
            Some("https://appleid.apple.com/auth/keys")
        );
        assert_eq!(urls.issuers(Provider::Apple), ["https://appleid.apple.com"]);
        assert_eq!(
            urls.issuers(Provider::Google),
            ["https://accounts.google.com", "accounts.google.com"]
        );
        assert!(urls.issuers(Provider::GitHub).is_empty());
    }
}
