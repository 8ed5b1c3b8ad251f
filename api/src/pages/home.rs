//! `GET /`: what this server is and where to go from here, as a small HTML page or, for a
//! client that prefers JSON, as a JSON object of the same links. Also the favicon and the
//! schema as SDL.

use std::sync::LazyLock;

use axum::Json;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::assets::{Asset, GRAPHIQL_VERSION, REACT_VERSION, StaticFile};

/// `GET /`.
pub async fn home(headers: HeaderMap) -> Response {
    if prefers_json(&headers) {
        return Json(serde_json::json!({
            "name": "photon",
            "description": "Photon's API: one live photo album for a group of friends.",
            "graphql": "/graphql",
            "subscriptions": "/graphql",
            "graphiql": "/graphql",
            "schema": "/schema.graphql",
            "health": "/healthz",
            "ready": "/readyz",
        }))
        .into_response();
    }
    super::html_page(html(), &super::policy("'none'", None))
}

/// `GET /favicon.svg`. Its address is stable, so it is kept for a day, not for good.
pub async fn favicon(headers: HeaderMap) -> Response {
    static FAVICON: LazyLock<StaticFile> = LazyLock::new(|| {
        StaticFile::new(
            "image/svg+xml",
            include_bytes!("assets/favicon.svg"),
            None,
            "public, max-age=86400",
        )
    });
    let mut response = FAVICON.respond(&headers);
    // An SVG opened on its own is a document: this one may not run or load anything.
    response.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    response
}

/// `GET /schema.graphql`: the schema this binary serves, as SDL. It changes only with the
/// binary, so clients revalidate with its ETag.
pub async fn schema(headers: HeaderMap) -> Response {
    static SDL: LazyLock<StaticFile> = LazyLock::new(|| {
        // Printed once and kept for the life of the process, like the built-in files.
        let sdl: &'static str = crate::graphql::sdl().leak();
        StaticFile::new(
            "text/plain; charset=utf-8",
            sdl.as_bytes(),
            None,
            "no-cache",
        )
    });
    SDL.respond(&headers)
}

/// Whether `Accept` ranks JSON above HTML. No header, `*/*` and ties get HTML.
fn prefers_json(headers: &HeaderMap) -> bool {
    let (mut html, mut json, mut any) = (None, None, 0.0_f32);
    for (range, weight) in super::accept_ranges(headers) {
        match range.as_str() {
            "text/html" => html = Some(weight),
            "application/json" => json = Some(weight),
            "*/*" => any = weight,
            _ => {}
        }
    }
    json.unwrap_or(any) > html.unwrap_or(any)
}

fn html() -> String {
    let site = Asset::Stylesheet.url();
    let licenses = Asset::Licenses.url();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Photon</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{site}">
</head>
<body class="home">
<main>
<h1><img src="/favicon.svg" alt="" width="36" height="36"> Photon</h1>
<p>This is a Photon server: one live photo album for a group of friends while they are out
together. Someone starts a session, the others join by invite code or link, and every photo
any member takes reaches the others within moments. The Photon app talks to it through one
GraphQL API.</p>
<ul>
<li><a href="/graphql">GraphiQL</a>: explore and try the API in this browser. Sign in, put
the access token in the <em>Headers</em> tab, and it stays there across tabs and reloads.</li>
<li><code>POST /graphql</code>: the API (GraphQL over HTTP, JSON); subscriptions over a
WebSocket at the same address (<code>graphql-transport-ws</code> or the legacy
<code>graphql-ws</code>).</li>
<li><a href="/schema.graphql">/schema.graphql</a>: the schema, with a description on every
type and field.</li>
<li><a href="/healthz">/healthz</a>: liveness (the process answers);
<a href="/readyz">/readyz</a>: readiness (the database answers too).</li>
<li>Documentation: <code>README.md</code> in Photon's source repository, covering
configuration, sign-in, photos, real time, push notifications and limits.</li>
</ul>
<p><small>GraphiQL {GRAPHIQL_VERSION} and React {REACT_VERSION} are served by this server
itself; <a href="{licenses}">their licences</a>.</small></p>
</main>
</body>
</html>
"#
    )
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
    fn json_only_for_clients_that_rank_it_first() {
        assert!(prefers_json(&accept("application/json")));
        assert!(prefers_json(&accept("application/json, text/html;q=0.5")));
        assert!(prefers_json(&accept("text/html;q=0.1, */*")));
        assert!(!prefers_json(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!prefers_json(&accept("*/*")));
        assert!(!prefers_json(&accept("text/html, application/json")));
        assert!(!prefers_json(&HeaderMap::new()));
    }
}
