//! The static files Photon's pages load, compiled into the binary: a server needs no network
//! and no file beside itself to serve GraphiQL, and no page of it loads anything from
//! another host.
//!
//! Each file is served at `/assets/<stem>.<hash>.<ext>`, `<hash>` being the first 16 hex
//! digits of its SHA-256, so one URL always names the same bytes and browsers may keep them
//! for a year without asking again; a new build of a file gets a new URL.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// GraphiQL's version, as the bundle's file names carry it (a macro, because `include_bytes!`
/// takes only literals).
macro_rules! graphiql_version {
    () => {
        "3.8.3"
    };
}
pub const GRAPHIQL_VERSION: &str = graphiql_version!();
/// React's version inside the bundle.
pub const REACT_VERSION: &str = "18.3.1";

/// How long browsers keep a file whose URL carries its hash: for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file the pages load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// GraphiQL, its fetcher (with graphql-ws) and React, one production bundle.
    GraphiqlJs,
    /// GraphiQL's stylesheet, fonts inlined.
    GraphiqlCss,
    /// Photon's script that starts GraphiQL on the page.
    GraphiqlStart,
    /// The stylesheet of Photon's own pages.
    Stylesheet,
    /// The licences of every package in the GraphiQL bundle.
    Licenses,
}

impl Asset {
    pub const ALL: [Self; 5] = [
        Self::GraphiqlJs,
        Self::GraphiqlCss,
        Self::GraphiqlStart,
        Self::Stylesheet,
        Self::Licenses,
    ];

    fn source(self) -> Source {
        match self {
            Self::GraphiqlJs => Source {
                stem: concat!("graphiql-", graphiql_version!()),
                ext: "min.js",
                content_type: "text/javascript; charset=utf-8",
                body: include_bytes!(concat!("assets/graphiql-", graphiql_version!(), ".min.js")),
                gzip: Some(include_bytes!(concat!(
                    "assets/graphiql-",
                    graphiql_version!(),
                    ".min.js.gz"
                ))),
            },
            Self::GraphiqlCss => Source {
                stem: concat!("graphiql-", graphiql_version!()),
                ext: "min.css",
                content_type: "text/css; charset=utf-8",
                body: include_bytes!(concat!("assets/graphiql-", graphiql_version!(), ".min.css")),
                gzip: Some(include_bytes!(concat!(
                    "assets/graphiql-",
                    graphiql_version!(),
                    ".min.css.gz"
                ))),
            },
            Self::GraphiqlStart => Source {
                stem: "photon-graphiql",
                ext: "js",
                content_type: "text/javascript; charset=utf-8",
                body: include_bytes!("assets/photon-graphiql.js"),
                gzip: None,
            },
            Self::Stylesheet => Source {
                stem: "photon",
                ext: "css",
                content_type: "text/css; charset=utf-8",
                body: include_bytes!("assets/photon.css"),
                gzip: None,
            },
            Self::Licenses => Source {
                stem: "third-party-licenses",
                ext: "txt",
                content_type: "text/plain; charset=utf-8",
                body: include_bytes!("assets/third-party-licenses.txt"),
                gzip: None,
            },
        }
    }

    /// Where the file is served, hash included.
    pub fn url(self) -> &'static str {
        &embedded(self).url
    }
}

/// A file as it is built in.
#[derive(Debug, Clone, Copy)]
struct Source {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The same bytes gzipped ahead of time (`gzip -9 -n`), for browsers that accept it.
    gzip: Option<&'static [u8]>,
}

/// A static response body with what conditional and compressed requests need.
#[derive(Debug, Clone)]
pub struct StaticFile {
    pub content_type: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    /// A strong validator, quoted: the first 32 hex digits of the body's SHA-256.
    pub etag: String,
    pub cache_control: &'static str,
}

impl StaticFile {
    pub fn new(
        content_type: &'static str,
        body: &'static [u8],
        gzip: Option<&'static [u8]>,
        cache_control: &'static str,
    ) -> Self {
        Self {
            content_type,
            body,
            gzip,
            etag: format!("\"{}\"", &hex_sha256(body)[..32]),
            cache_control,
        }
    }

    /// The file, or 304 when the client's copy is current. The gzipped body goes to clients
    /// that accept gzip, under an ETag of its own (the two are different representations).
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let gzip = self.gzip.filter(|_| accepts_gzip(request));
        let etag = match gzip {
            Some(_) => format!("{}-gzip\"", self.etag.trim_end_matches('"')),
            None => self.etag.clone(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if self.gzip.is_some() {
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(ETAG, value);
        }
        if if_none_match(request, &etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        let body = match gzip {
            Some(gzipped) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                gzipped
            }
            None => self.body,
        };
        (headers, Body::from(body)).into_response()
    }
}

/// An asset with its URL.
struct Embedded {
    /// `<stem>.<hash>.<ext>`, what follows `/assets/`.
    file: String,
    url: String,
    file_body: StaticFile,
}

/// Hashed once, on first use (a few milliseconds for the 1.2 MB bundle), in `Asset::ALL`'s
/// order.
static EMBEDDED: LazyLock<[Embedded; Asset::ALL.len()]> = LazyLock::new(|| {
    Asset::ALL.map(|asset| {
        let source = asset.source();
        let file = format!(
            "{}.{}.{}",
            source.stem,
            &hex_sha256(source.body)[..16],
            source.ext
        );
        Embedded {
            url: format!("/assets/{file}"),
            file,
            file_body: StaticFile::new(source.content_type, source.body, source.gzip, IMMUTABLE),
        }
    })
});

fn embedded(asset: Asset) -> &'static Embedded {
    // `ALL` lists every variant in declaration order (a test checks it), so a variant's
    // discriminant is its index.
    &EMBEDDED[asset as usize]
}

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match EMBEDDED.iter().find(|e| e.file == file) {
        Some(embedded) => embedded.file_body.respond(&headers),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "no such file\n",
    )
        .into_response()
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) with a non-zero weight, or
/// `*` without gzip itself refused.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut params = part.split(';');
            let coding = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let weight = params
                .filter_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    (name.trim().eq_ignore_ascii_case("q")).then(|| value.trim().parse::<f32>())
                })
                .next()
                .map_or(1.0, |q| q.unwrap_or(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight > 0.0),
                "*" => any = Some(weight > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for GET).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: axum::http::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip(&headers(
            ACCEPT_ENCODING,
            "gzip, deflate, br, zstd"
        )));
        assert!(accepts_gzip(&headers(
            ACCEPT_ENCODING,
            "br;q=1.0, gzip;q=0.5"
        )));
        assert!(accepts_gzip(&headers(ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "*, gzip;q=0")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "br, identity")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "gzip;q=nonsense")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_weakly_and_lists() {
        let etag = "\"abc\"";
        assert!(if_none_match(&headers(IF_NONE_MATCH, "\"abc\""), etag));
        assert!(if_none_match(&headers(IF_NONE_MATCH, "W/\"abc\""), etag));
        assert!(if_none_match(
            &headers(IF_NONE_MATCH, "\"x\", \"abc\""),
            etag
        ));
        assert!(if_none_match(&headers(IF_NONE_MATCH, "*"), etag));
        assert!(!if_none_match(&headers(IF_NONE_MATCH, "\"abcd\""), etag));
        assert!(!if_none_match(&HeaderMap::new(), etag));
    }

    #[test]
    fn all_lists_the_assets_in_declaration_order() {
        for (i, asset) in Asset::ALL.iter().enumerate() {
            assert_eq!(*asset as usize, i);
            assert!(embedded(*asset).file.starts_with(asset.source().stem));
        }
    }

    #[test]
    fn every_asset_has_a_distinct_hashed_url() {
        let urls: Vec<&str> = Asset::ALL.iter().map(|a| a.url()).collect();
        for (i, url) in urls.iter().enumerate() {
            assert!(url.starts_with("/assets/"), "{url}");
            assert!(!urls[..i].contains(url), "{url} twice");
        }
        assert!(
            Asset::GraphiqlJs
                .url()
                .starts_with(&format!("/assets/graphiql-{GRAPHIQL_VERSION}."))
        );
    }
}
