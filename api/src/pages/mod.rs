//! The few pages a browser gets from Photon: `/` (what this server is), GraphiQL at
//! `/graphql`, the invite page at `/join/{code}` with its QR code, the favicon, the schema as
//! SDL, the app-link files under `/.well-known/`, and the files they load (`/assets/…`), all
//! built into the binary. Nothing here loads anything from another host, and each page's
//! Content-Security-Policy makes sure nothing can.

pub mod app_links;
pub mod assets;
pub mod graphiql;
pub mod home;
pub mod invite;
pub mod qr;

use axum::Router;
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

/// The routes of this module (GraphiQL itself answers `GET /graphql`, next to the API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/favicon.svg", get(home::favicon))
        .route("/schema.graphql", get(home::schema))
        .route("/assets/{file}", get(assets::serve))
        .route(
            "/.well-known/apple-app-site-association",
            get(app_links::apple),
        )
        .route("/.well-known/assetlinks.json", get(app_links::android))
}

/// Every media range in the request's `Accept` headers, lower-cased, with its weight (`q`,
/// 1 when absent, 0 when unreadable).
fn accept_ranges(headers: &HeaderMap) -> impl Iterator<Item = (String, f32)> + '_ {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|part| {
            let mut params = part.split(';');
            let range = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let weight = params
                .filter_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .next()
                .unwrap_or(1.0);
            (range, weight)
        })
}

/// `text` made safe inside HTML text and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An HTML page with the headers every page here carries: its policy, no sniffing, no
/// framing (GraphiQL is where people paste tokens), no referrer, and revalidation on every
/// visit (the page is small; the files it names are cached for good).
fn html_page(html: String, policy: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(value) = HeaderValue::from_str(policy) {
        headers.insert(CONTENT_SECURITY_POLICY, value);
    }
    (headers, html).into_response()
}

/// The `Content-Security-Policy` of a page that loads only this server's files: scripts,
/// stylesheets and images from here (fonts and images also as `data:` URLs, which GraphiQL's
/// stylesheet inlines), `<style>` elements only with `style_nonce`, requests to `connect`
/// only, no plugins, no forms, no framing.
fn policy(connect: &str, style_nonce: Option<&str>) -> String {
    let style = match style_nonce {
        Some(nonce) => format!("'self' 'nonce-{nonce}'"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src {style}; img-src 'self' data:; \
         font-src 'self' data:; connect-src {connect}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_way_out_of_an_attribute() {
        assert_eq!(
            escape(r#"<script>alert("x" + 'y')</script> & co"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; co"
        );
        assert_eq!(escape("Beach day 🏖️"), "Beach day 🏖️");
    }
}
