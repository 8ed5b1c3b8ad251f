//! GraphiQL, as `GET /graphql` answers a browser: a page that loads GraphiQL from this
//! server (see `assets`) and starts it with `photon-graphiql.js`. Headers are kept across
//! tabs and reloads, and subscriptions run over `graphql-transport-ws` to the same address.

use axum::response::Response;
use url::Url;

use super::assets::Asset;
use crate::config::Config;

/// The page, with its policy.
pub fn page(config: &Config) -> Response {
    let nonce = style_nonce();
    let policy = super::policy(&connect_sources(&config.public_url), Some(&nonce));
    super::html_page(html(config, &nonce), &policy)
}

/// A fresh nonce for each page: GraphiQL's dialogs add a `<style>` element (to keep the page
/// from scrolling behind them), which the policy allows only with this nonce. Scripts get
/// none; they come from this server or not at all.
fn style_nonce() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// What the page may connect to: its own origin, which CSP 3 extends to `ws:`/`wss:` on the
/// same host and port, and the WebSocket form of the public URL spelled out for browsers
/// that predate that rule.
fn connect_sources(public_url: &Url) -> String {
    let socket_scheme = match public_url.scheme() {
        "https" => "wss",
        "http" => "ws",
        _ => return "'self'".to_owned(),
    };
    let origin = public_url.origin().ascii_serialization();
    match origin.split_once("://") {
        Some((_, authority)) => format!("'self' {socket_scheme}://{authority}"),
        None => "'self'".to_owned(),
    }
}

fn html(config: &Config, nonce: &str) -> String {
    let stylesheet = Asset::GraphiqlCss.url();
    let site = Asset::Stylesheet.url();
    let bundle = Asset::GraphiqlJs.url();
    let start = Asset::GraphiqlStart.url();
    let dev_sign_in = config.dev_sign_in;
    let token_secs = config.access_token_ttl.as_secs();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Photon GraphiQL</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{stylesheet}">
<link rel="stylesheet" href="{site}">
<script src="{bundle}" defer></script>
<script src="{start}" defer></script>
</head>
<body class="graphiql">
<div id="graphiql" data-endpoint="/graphql" data-dev-sign-in="{dev_sign_in}" data-token-ttl-secs="{token_secs}" data-style-nonce="{nonce}">Loading GraphiQL…<noscript> GraphiQL needs JavaScript; the API itself is at POST /graphql.</noscript></div>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_allowed_to_the_public_origin() {
        let url = |s: &str| Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            connect_sources(&url("http://127.0.0.1:8080/")),
            "'self' ws://127.0.0.1:8080"
        );
        assert_eq!(
            connect_sources(&url("https://photon.example.com/")),
            "'self' wss://photon.example.com"
        );
        assert_eq!(
            connect_sources(&url("https://photon.example.com:8443/base/")),
            "'self' wss://photon.example.com:8443"
        );
    }
}
