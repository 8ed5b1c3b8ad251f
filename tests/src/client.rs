//! GraphQL over HTTP the way the app's Apollo client sends it: one JSON POST to `/graphql`,
//! the user's access token as a bearer token. It needs nothing but a base URL, so the tests
//! (through their `TestApp`) and the benches (against a server in another process, or one
//! given by URL) reach the server the same way.

use serde_json::{Value, json};

use crate::{GqlResponse, TestUser};

/// Whoever a request is made as: a signed-in test user, or a bare access token.
pub trait Bearer {
    fn bearer(&self) -> &str;
}

impl Bearer for TestUser {
    fn bearer(&self) -> &str {
        &self.token
    }
}

impl Bearer for str {
    fn bearer(&self) -> &str {
        self
    }
}

impl Bearer for String {
    fn bearer(&self) -> &str {
        self
    }
}

impl<T: Bearer + ?Sized> Bearer for &T {
    fn bearer(&self) -> &str {
        (**self).bearer()
    }
}

/// A server's base URL, an HTTP client (cheap to clone: clones share its connection pool) and
/// optionally the access token every request carries.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl AsRef<Client> for Client {
    fn as_ref(&self) -> &Client {
        self
    }
}

impl Client {
    /// An anonymous client of the server at `base_url` (`http://host:port`), with reqwest's
    /// defaults.
    pub fn new(base_url: &str) -> Self {
        Self::with_http(reqwest::Client::new(), base_url)
    }

    /// An anonymous client of the server at `base_url` over `http`, for callers that want
    /// their own timeouts or redirect policy.
    pub fn with_http(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same server, as `token`'s user (`None`: anonymous).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// The same server, as `user`.
    pub fn as_user(&self, user: &(impl Bearer + ?Sized)) -> Self {
        self.with_token(Some(user.bearer()))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The HTTP client, for requests other than GraphQL (uploads, health checks).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The POST of an operation, not yet sent: for callers that time it or must not fail on
    /// a refusal.
    pub fn request(&self, query: &str, variables: Value) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends an operation and reads its response.
    pub async fn gql(&self, query: &str, variables: Value) -> GqlResponse {
        let response = self
            .request(query, variables)
            .send()
            .await
            .expect("request sent");
        GqlResponse::read(response).await
    }

    /// Signs in through `devSignIn` (the server must have it on).
    pub async fn sign_in(&self, email: &str) -> TestUser {
        let name = email.split('@').next().unwrap_or(email);
        let response = self
            .with_token(None)
            .gql(
                "mutation($email: String!, $name: String) {
                    devSignIn(email: $email, name: $name) { accessToken refreshToken user { id email } }
                }",
                json!({ "email": email, "name": name }),
            )
            .await;
        let payload = &response.ok()["devSignIn"];
        TestUser {
            id: payload["user"]["id"].as_str().expect("user id").to_owned(),
            email: payload["user"]["email"].as_str().expect("email").to_owned(),
            token: payload["accessToken"]
                .as_str()
                .expect("access token")
                .to_owned(),
            refresh_token: payload["refreshToken"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
        }
    }
}

impl GqlResponse {
    /// Reads a response that must be JSON, whatever its status.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text}"));
        Self {
            status,
            headers,
            body,
        }
    }
}
