//! `GET /join/{code}`, the invite link. A browser (or a chat app's link-preview fetcher)
//! asking for HTML gets a page rendered here, with no script at all: the session's title, its
//! owner, how many members and photos it has (never the photos), an "Open in Photon" button
//! to the app's join deep link, store links, the link's QR code, and Open Graph and Twitter
//! card tags for previews. Unknown and replaced codes get a 404 page, ended sessions a 410
//! page. Any other client is redirected to the deep link as before, without a database
//! look-up. `GET /join/{code}/qr.svg` is the QR code on its own, for the app to show.
//!
//! Whoever holds an invite code may join with it, so the page is treated as a secret's page:
//! never stored by caches, never sent as a referrer, never indexed.

use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use super::app_links::AppLinks;
use super::assets::Asset;
use super::{escape, qr};
use crate::app::AppState;
use crate::config::Config;
use crate::service::invite_code;
use crate::service::sessions::{self, InvitePreview};

static X_ROBOTS_TAG: HeaderName = HeaderName::from_static("x-robots-tag");

/// The invite page's settings: store links and the app-link files.
#[derive(Debug, Clone, clap::Args)]
pub struct InviteArgs {
    /// The app's page on Apple's App Store, linked from the invite page.
    #[arg(long, env = "PHOTON_APP_STORE_URL")]
    pub app_store_url: Option<Url>,

    /// The app's page on Google Play, linked from the invite page.
    #[arg(long, env = "PHOTON_PLAY_STORE_URL")]
    pub play_store_url: Option<Url>,

    /// Comma-separated iOS app ids (`TEAMID.bundle.id`) whose app opens invite links
    /// directly, served in `/.well-known/apple-app-site-association`. Unset: no such file.
    #[arg(long, env = "PHOTON_IOS_APP_IDS", value_delimiter = ',')]
    pub ios_app_ids: Vec<String>,

    /// The Android application id (`com.example.photon`) that opens invite links directly,
    /// served in `/.well-known/assetlinks.json` with the fingerprints below. Unset: no file.
    #[arg(long, env = "PHOTON_ANDROID_PACKAGE")]
    pub android_package: Option<String>,

    /// Comma-separated SHA-256 fingerprints of the Android app's signing certificates
    /// (`14:6D:E9:…` as `keytool` prints them, or 64 hex digits; Play's app signing key and
    /// the upload key, say).
    #[arg(long, env = "PHOTON_ANDROID_CERT_SHA256", value_delimiter = ',')]
    pub android_cert_sha256: Vec<String>,
}

/// The checked settings of the invite page and the app-link files.
#[derive(Debug, Clone, Default)]
pub struct InviteSettings {
    pub app_store_url: Option<Url>,
    pub play_store_url: Option<Url>,
    pub app_links: AppLinks,
}

impl InviteArgs {
    /// Checks the settings: store links must be web links (they become `href`s), app ids
    /// and fingerprints well formed.
    pub fn resolve(self) -> anyhow::Result<InviteSettings> {
        let store = |name: &str, url: Option<Url>| match url {
            Some(url) if !matches!(url.scheme(), "https" | "http") => {
                anyhow::bail!("{name} must be an https (or http) URL")
            }
            other => Ok(other),
        };
        Ok(InviteSettings {
            app_store_url: store("PHOTON_APP_STORE_URL", self.app_store_url)?,
            play_store_url: store("PHOTON_PLAY_STORE_URL", self.play_store_url)?,
            app_links: AppLinks::resolve(
                &self.ios_app_ids,
                self.android_package.as_deref(),
                &self.android_cert_sha256,
            )?,
        })
    }
}

/// `GET /join/{code}`.
pub async fn join(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut response = if accepts_html(&headers) {
        page(&state, &code).await
    } else {
        redirect(&state.config, &code)
    };
    // The same URL answers a page or a redirect depending on `Accept`.
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept"));
    response
}

/// `GET /join/{code}/qr.svg`: the QR code of the invite link, for a code that is a live
/// session's; 404 otherwise. Cached for a few minutes, and privately: a replaced code's QR
/// code should not outlive it for long anywhere.
pub async fn qr_svg(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let session = match sessions::find_by_code(&state.db, &code).await {
        Ok(Some(session)) if session.ended_at.is_none() => session,
        Ok(_) => return not_found_text(),
        Err(err) => {
            tracing::error!(error = err.detail(), "invite QR code look-up failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    let Some(svg) = qr::svg_document(&invite_url(&state.config, &session.invite_code)) else {
        return not_found_text();
    };
    let mut headers = private_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    // Opened on its own, an SVG is a document: this one may not run or load anything.
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    (headers, svg).into_response()
}

/// Today's answer for clients that do not ask for HTML: the app's join deep link. Codes that
/// cannot be codes get a 404 instead of a redirect carrying arbitrary text.
fn redirect(config: &Config, code: &str) -> Response {
    let Some(code) = invite_code::normalize(code) else {
        return (StatusCode::NOT_FOUND, "no such invite").into_response();
    };
    Redirect::to(deep_link(config, Some(&code)).as_str()).into_response()
}

/// Whether `Accept` names HTML (`text/html` or XHTML) with a non-zero weight. Browsers and
/// link-preview fetchers do; `*/*` alone (curl, HTTP libraries) does not, so those keep the
/// redirect they always got.
fn accepts_html(headers: &HeaderMap) -> bool {
    super::accept_ranges(headers).any(|(range, weight)| {
        (range == "text/html" || range == "application/xhtml+xml") && weight > 0.0
    })
}

/// The page for `code`, with the status that says what the code leads to.
async fn page(state: &AppState, code: &str) -> Response {
    let config = &state.config;
    // A code that cannot be one is not looked up.
    let preview = match invite_code::normalize(code) {
        None => Ok(None),
        Some(code) => sessions::preview_invite(&state.db, &code).await,
    };
    match preview {
        Ok(Some(preview)) if preview.session.ended_at.is_some() => {
            respond(StatusCode::GONE, ended_page(config, &preview))
        }
        Ok(Some(preview)) => respond(StatusCode::OK, invite_page(config, &preview)),
        Ok(None) => respond(StatusCode::NOT_FOUND, not_found_page(config)),
        Err(err) => {
            tracing::error!(error = err.detail(), "invite page look-up failed");
            respond(StatusCode::INTERNAL_SERVER_ERROR, failed_page(config))
        }
    }
}

/// A rendered page and the image origin its policy must allow (the owner's avatar).
struct Html {
    body: String,
    image_origin: Option<String>,
}

fn respond(status: StatusCode, html: Html) -> Response {
    let mut response = super::html_page(html.body, &policy(html.image_origin.as_deref()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.extend(private_headers());
    // Member and photo counts change by the minute, and the page is a capability's.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What every answer about an invite code carries: not indexed, never a referrer.
fn private_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        X_ROBOTS_TAG.clone(),
        HeaderValue::from_static("noindex, nofollow"),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
}

/// The page's policy: no script of any kind, this server's stylesheet and images (inline
/// SVG needs nothing), and the avatar's origin when there is one.
fn policy(image_origin: Option<&str>) -> String {
    let images = match image_origin {
        Some(origin) => format!("'self' data: {origin}"),
        None => "'self' data:".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src {images}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `{PHOTON_PUBLIC_URL}/join/{code}`, the code in its display form.
fn invite_url(config: &Config, code: &str) -> String {
    config.public_link(&format!("join/{}", invite_code::display(code)))
}

/// The app's join deep link, with `?code=…` when there is a code to join.
fn deep_link(config: &Config, code: Option<&str>) -> Url {
    let mut target = config.app_join_url.clone();
    if let Some(code) = code {
        target
            .query_pairs_mut()
            .append_pair("code", &invite_code::display(code));
    }
    target
}

/// The avatar URL and the origin to allow for it, when it is a plain web URL. Anything else
/// (another scheme, or a host that could not be written into a policy verbatim) is left out.
fn avatar(url: Option<&str>) -> Option<(Url, String)> {
    let url = Url::parse(url?).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    let plain = origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:/[]".contains(&b));
    plain.then_some((url, origin))
}

fn plural(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn invite_page(config: &Config, preview: &InvitePreview) -> Html {
    let code = &preview.session.invite_code;
    let url = invite_url(config, code);
    let title = escape(&preview.session.title);
    let owner = escape(&preview.owner.name);
    let members = plural(
        i64::try_from(preview.member_count).unwrap_or(i64::MAX),
        "member",
        "members",
    );
    let photos = plural(preview.photo_count, "photo", "photos");
    let description = escape(&format!(
        "{} invites you to a shared photo album on Photon: {members}, {photos}.",
        preview.owner.name
    ));
    let avatar = avatar(preview.owner.avatar_url.as_deref());
    let avatar_img = match &avatar {
        Some((url, _)) => format!(
            r#"<img class="avatar" src="{}" alt="" width="48" height="48" referrerpolicy="no-referrer">"#,
            escape(url.as_str())
        ),
        None => String::new(),
    };
    let qr = qr::svg_element(&url, "QR code of this invite link").unwrap_or_default();
    let open = escape(deep_link(config, Some(code)).as_str());
    let display_code = escape(&invite_code::display(code));
    let meta = open_graph(&preview.session.title, &description, &url);
    let stores = stores(config);
    // The app offers "join as a guest" where the owner allows it: say so before the install.
    let guests = if preview.session.allow_guests {
        r#"<p class="guests">No account needed: join with just your name.</p>"#
    } else {
        r#"<p class="guests">Sign in with your account to join.</p>"#
    };
    let body = format!(
        r#"<p class="eyebrow">You're invited to</p>
<h1>{title}</h1>
<p class="owner">{avatar_img}<span>Started by <strong>{owner}</strong></span></p>
<ul class="counts">
<li>{members}</li>
<li>{photos}</li>
</ul>
<p><a class="button" href="{open}">Open in Photon</a></p>
{guests}
{stores}
<figure class="qr">
{qr}
<figcaption>Scan to join on another phone, or type the code <code>{display_code}</code> in the app.</figcaption>
</figure>"#
    );
    Html {
        body: document(&format!("{title} · Photon"), &meta, &body),
        image_origin: avatar.map(|(_, origin)| origin),
    }
}

fn ended_page(config: &Config, preview: &InvitePreview) -> Html {
    let title = escape(&preview.session.title);
    let owner = escape(&preview.owner.name);
    let open = escape(deep_link(config, None).as_str());
    let stores = stores(config);
    let body = format!(
        r#"<p class="eyebrow">Invite link</p>
<h1>This session has ended</h1>
<p><strong>{title}</strong>, started by {owner}, has ended, so no one can join it any more.
Start a new session of your own in the app.</p>
<p><a class="button" href="{open}">Open Photon</a></p>
{stores}"#
    );
    Html {
        body: document("Session ended · Photon", "", &body),
        image_origin: None,
    }
}

fn not_found_page(config: &Config) -> Html {
    let open = escape(deep_link(config, None).as_str());
    let stores = stores(config);
    let body = format!(
        r#"<p class="eyebrow">Invite link</p>
<h1>This invite link doesn't work</h1>
<p>It may have been copied incompletely, or the session's owner replaced it with a new one.
Ask whoever sent it for a fresh link or code.</p>
<p><a class="button" href="{open}">Open Photon</a></p>
{stores}"#
    );
    Html {
        body: document("Invite not found · Photon", "", &body),
        image_origin: None,
    }
}

fn failed_page(config: &Config) -> Html {
    let open = escape(deep_link(config, None).as_str());
    let body = format!(
        r#"<p class="eyebrow">Invite link</p>
<h1>Something went wrong</h1>
<p>This invite could not be looked up just now. Try again in a moment.</p>
<p><a class="button" href="{open}">Open Photon</a></p>"#
    );
    Html {
        body: document("Photon", "", &body),
        image_origin: None,
    }
}

/// Open Graph and Twitter card tags (`description` already escaped). No image: a preview
/// shows no photo of the session.
fn open_graph(title: &str, description: &str, url: &str) -> String {
    let title = escape(title);
    let url = escape(url);
    format!(
        r#"<meta name="description" content="{description}">
<meta property="og:type" content="website">
<meta property="og:site_name" content="Photon">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{description}">
<meta property="og:url" content="{url}">
<meta name="twitter:card" content="summary">
<meta name="twitter:title" content="{title}">
<meta name="twitter:description" content="{description}">
"#
    )
}

/// The store links that are configured, as one paragraph (empty when there are none).
fn stores(config: &Config) -> String {
    let links: Vec<String> = [
        (&config.invite.app_store_url, "App Store", "app-store"),
        (&config.invite.play_store_url, "Google Play", "play-store"),
    ]
    .into_iter()
    .filter_map(|(url, name, class)| {
        url.as_ref().map(|url| {
            format!(
                r#"<a class="store {class}" href="{}">{name}</a>"#,
                escape(url.as_str())
            )
        })
    })
    .collect();
    if links.is_empty() {
        return String::new();
    }
    format!(
        r#"<p class="stores">No Photon app yet? Get it from {}.</p>"#,
        links.join(" or ")
    )
}

/// The page around `body` (`title` and `meta` already escaped).
fn document(title: &str, meta: &str, body: &str) -> String {
    let stylesheet = Asset::Stylesheet.url();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
{meta}<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{stylesheet}">
</head>
<body class="invite">
<main>
{body}
</main>
</body>
</html>
"#
    )
}

fn not_found_text() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "no such invite\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::ACCEPT;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn html_only_for_clients_that_name_it() {
        assert!(accepts_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(accepts_html(&accept("TEXT/HTML")));
        assert!(accepts_html(&accept("application/xhtml+xml;q=0.5")));
        assert!(!accepts_html(&accept("*/*")));
        assert!(!accepts_html(&accept("application/json")));
        assert!(!accepts_html(&accept("text/html;q=0, */*")));
        assert!(!accepts_html(&accept("text/html;q=nonsense")));
        assert!(!accepts_html(&HeaderMap::new()));
    }

    #[test]
    fn only_plain_web_avatars_are_shown() {
        let (url, origin) = avatar(Some("https://avatars.example.com/u/1?s=96"))
            .unwrap_or_else(|| panic!("a plain https avatar is shown"));
        assert_eq!(url.as_str(), "https://avatars.example.com/u/1?s=96");
        assert_eq!(origin, "https://avatars.example.com");
        assert_eq!(
            avatar(Some("http://127.0.0.1:9000/a.png")).map(|(_, o)| o),
            Some("http://127.0.0.1:9000".to_owned())
        );
        for bad in [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "ftp://example.com/a.png",
            "https://a;script-src*.example/x.png",
            "not a url",
        ] {
            assert!(avatar(Some(bad)).is_none(), "{bad}");
        }
        assert!(avatar(None).is_none());
    }

    #[test]
    fn the_policy_allows_no_script_and_only_the_avatars_origin() {
        let policy = policy(Some("https://avatars.example.com"));
        assert!(policy.contains("script-src 'none'"), "{policy}");
        assert!(
            policy.contains("img-src 'self' data: https://avatars.example.com;"),
            "{policy}"
        );
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(plural(1, "member", "members"), "1 member");
        assert_eq!(plural(0, "photo", "photos"), "0 photos");
        assert_eq!(plural(12, "photo", "photos"), "12 photos");
    }
}
