//! The pages a browser gets: `/`, GraphiQL at `/graphql`, the favicon, `/schema.graphql` and
//! the built-in files under `/assets/`, over plain HTTP, and GraphiQL in a real headless
//! Chromium: a query with the token typed into the Headers tab, the headers kept across a
//! reload, a subscription over the WebSocket, and not one request to another host.

use photon_tests::photos::{photo_bytes, sha256_hex, upload};
use photon_tests::{TestApp, TestUser, create_session, join};
use serde_json::{Value, json};

use crate::browser::{Browser, Page};

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn get_html(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Every `src` and `href` value in `html`. Attributes are only ever double-quoted here, and
/// the count check makes sure none is written any other way and so missed.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in [" src=", " href="] {
        let quoted = format!("{attribute}\"");
        assert_eq!(
            html.matches(attribute).count(),
            html.matches(&quoted).count(),
            "an unquoted{attribute} in {html}"
        );
        for (start, _) in html.match_indices(&quoted) {
            let rest = &html[start + quoted.len()..];
            found.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    found
}

/// A path on this server: absolute, and not protocol-relative (`//host/...`).
fn is_own_path(link: &str) -> bool {
    link.starts_with('/') && !link.starts_with("//") && !link.contains('\\')
}

/// The policy's directives, by name.
fn directives(policy: &str) -> std::collections::HashMap<String, String> {
    policy
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn the_home_page_says_what_this_is_and_links_graphiql_health_and_schema() {
    let app = TestApp::spawn().await;
    let response = get_html(&app, "/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    let policy = directives(header(&response, "content-security-policy"));
    assert_eq!(policy["default-src"], "'none'");
    assert_eq!(policy["script-src"], "'self'");
    let html = response.text().await.unwrap();
    assert!(html.contains("Photon"), "{html}");
    let links = links(&html);
    for expected in [
        "/graphql",
        "/healthz",
        "/readyz",
        "/schema.graphql",
        "/favicon.svg",
    ] {
        assert!(
            links.iter().any(|l| l == expected),
            "no {expected} in {links:?}"
        );
    }
    assert!(html.contains(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#));
    for link in &links {
        assert!(is_own_path(link), "{link} leaves the server");
        assert_eq!(get_html(&app, link).await.status(), 200, "{link}");
    }
}

#[tokio::test]
async fn json_clients_of_the_home_page_get_the_same_links_as_json() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["graphql"], "/graphql");
    assert_eq!(body["graphiql"], "/graphql");
    assert_eq!(body["schema"], "/schema.graphql");
    assert_eq!(body["health"], "/healthz");
    assert_eq!(body["ready"], "/readyz");
    // curl's `*/*` (and no Accept at all) still gets the page.
    for accept in [Some("*/*"), None] {
        let mut request = app.client.get(app.url("/"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
    }
}

#[tokio::test]
async fn the_favicon_is_a_small_svg_that_may_not_run_anything() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/favicon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/svg+xml");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "cache-control"), "public, max-age=86400");
    let policy = directives(header(&response, "content-security-policy"));
    assert_eq!(policy["default-src"], "'none'");
    assert!(policy.contains_key("sandbox"));
    let etag = header(&response, "etag").to_owned();
    let body = response.text().await.unwrap();
    assert!(
        body.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{body}"
    );
    assert!(!body.contains("<script"));
    assert!(body.len() < 2048, "{} bytes", body.len());
    let again = app
        .client
        .get(app.url("/favicon.svg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn the_schema_is_served_as_sdl() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/schema.graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let etag = header(&response, "etag").to_owned();
    let body = response.text().await.unwrap();
    assert_eq!(body, photon::graphql::sdl());
    assert!(body.contains("type Query"));
    let again = app
        .client
        .get(app.url("/schema.graphql"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn graphiql_references_nothing_but_this_server_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let response = get_html(&app, "/graphql").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let policy = directives(header(&response, "content-security-policy"));
    assert_eq!(policy["default-src"], "'none'");
    assert_eq!(policy["script-src"], "'self'");
    let style_src = policy["style-src"].clone();
    assert_eq!(policy["font-src"], "'self' data:");
    assert_eq!(policy["img-src"], "'self' data:");
    assert_eq!(
        policy["connect-src"],
        format!("'self' ws://{}", app.addr),
        "sockets to this server only"
    );
    assert_eq!(policy["frame-ancestors"], "'none'");
    assert_eq!(policy["base-uri"], "'none'");
    let html = response.text().await.unwrap();
    // No host anywhere in the page, and no inline script: every <script> has a src and no
    // body.
    assert!(!html.contains("://"), "{html}");
    assert_eq!(
        html.matches("<script").count(),
        html.matches("></script>").count()
    );
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/assets/").count()
    );
    assert!(
        !html.contains(" style="),
        "inline styles are refused by the policy"
    );
    // <style> elements need the page's nonce, which the start script hands to GraphiQL; a
    // new one for every page.
    let nonce = html
        .split("data-style-nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(nonce.len() >= 22, "{nonce}");
    assert_eq!(style_src, format!("'self' 'nonce-{nonce}'"));
    let again = get_html(&app, "/graphql").await;
    assert_ne!(
        directives(header(&again, "content-security-policy"))["style-src"],
        style_src
    );
    let links = links(&html);
    assert!(links.iter().all(|l| is_own_path(l)), "{links:?}");
    let scripts: Vec<&String> = links.iter().filter(|l| l.ends_with(".js")).collect();
    assert_eq!(scripts.len(), 2, "{links:?}");
    assert!(
        scripts[0].starts_with("/assets/graphiql-3.8.3."),
        "{scripts:?}"
    );
    assert!(
        scripts[1].starts_with("/assets/photon-graphiql."),
        "{scripts:?}"
    );
    assert!(
        links
            .iter()
            .any(|l| l.starts_with("/assets/graphiql-3.8.3.") && l.ends_with(".min.css"))
    );
}

/// Every asset either page names, with the type its extension calls for.
async fn asset_links(app: &TestApp) -> Vec<String> {
    let mut assets = Vec::new();
    for page in ["/", "/graphql"] {
        let html = get_html(app, page).await.text().await.unwrap();
        for link in links(&html) {
            if link.starts_with("/assets/") && !assets.contains(&link) {
                assets.push(link);
            }
        }
    }
    assets
}

fn expected_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => panic!("unexpected asset {path}"),
    }
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_cached_for_good() {
    let app = TestApp::spawn().await;
    let assets = asset_links(&app).await;
    // Bundle and stylesheet, Photon's start script and stylesheet, the licences.
    assert_eq!(assets.len(), 5, "{assets:?}");
    for path in &assets {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            expected_type(path),
            "{path}"
        );
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(response.headers().get("content-encoding").is_none());
        let etag = header(&response, "etag").to_owned();
        let body = response.bytes().await.unwrap();
        // The name carries the content's hash: the URL can never serve other bytes.
        let name = path.rsplit('/').next().unwrap();
        let hash = name
            .split('.')
            .find(|part| part.len() == 16 && part.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no hash in {name}"));
        assert!(
            sha256_hex(&body).starts_with(hash),
            "{name} does not match its hash"
        );
        assert_eq!(etag, format!("\"{}\"", &sha256_hex(&body)[..32]));

        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let bundle = assets
        .iter()
        .find(|a| a.ends_with(".min.js"))
        .expect("the GraphiQL bundle");
    let bundle_text = app
        .client
        .get(app.url(bundle))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A production build: minified (the unminified bundle averages 36 bytes a line),
    // React's production paths.
    let per_line = bundle_text.len() / bundle_text.lines().count();
    assert!(per_line > 1000, "not minified: {per_line} bytes a line");
    assert!(!bundle_text.contains("react.development"));
    assert!(bundle_text.contains("PhotonGraphiQL"));
    let licences = assets.iter().find(|a| a.ends_with(".txt")).unwrap();
    let licences = app
        .client
        .get(app.url(licences))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for package in [
        "graphiql 3.8.3 (MIT)",
        "react 18.3.1 (MIT)",
        "graphql-ws ",
        "codemirror ",
    ] {
        assert!(licences.contains(package), "no licence for {package}");
    }
}

#[tokio::test]
async fn graphiql_files_come_gzipped_to_browsers_that_accept_it() {
    let app = TestApp::spawn().await;
    let assets = asset_links(&app).await;
    let compressed: Vec<&String> = assets.iter().filter(|a| a.contains("/graphiql-")).collect();
    assert_eq!(compressed.len(), 2, "{assets:?}");
    for path in compressed {
        let plain = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(header(&plain, "vary"), "accept-encoding");
        let plain_etag = header(&plain, "etag").to_owned();
        let plain_len = plain.bytes().await.unwrap().len();
        let gzipped = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.status(), 200);
        assert_eq!(header(&gzipped, "content-encoding"), "gzip");
        assert_eq!(header(&gzipped, "content-type"), expected_type(path));
        assert_eq!(header(&gzipped, "vary"), "accept-encoding");
        let gzip_etag = header(&gzipped, "etag").to_owned();
        assert_ne!(gzip_etag, plain_etag, "two representations, two validators");
        let body = gzipped.bytes().await.unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b], "{path} is not gzip");
        assert!(
            body.len() < plain_len * 3 / 4,
            "{path}: {} of {plain_len}",
            body.len()
        );
        // A client that refuses gzip gets the plain file.
        let refused = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip;q=0, br")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get("content-encoding").is_none());
        assert_eq!(refused.bytes().await.unwrap().len(), plain_len);
    }
}

#[tokio::test]
async fn unknown_or_stale_asset_names_are_not_found() {
    let app = TestApp::spawn().await;
    for path in [
        "/assets/graphiql-3.8.3.0000000000000000.min.js",
        "/assets/photon-graphiql.js",
        "/assets/..%2Fmod.rs",
        "/assets/",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

// ---- In a real browser ----------------------------------------------------------------

/// The CodeMirror editor of a GraphiQL pane, by CSS selector.
fn editor(selector: &str) -> String {
    format!("document.querySelector({selector:?}).CodeMirror")
}

const QUERY_EDITOR: &str = ".graphiql-query-editor .CodeMirror";
const HEADERS_EDITOR: &str = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror";
const RESULT: &str = ".result-window .CodeMirror";

/// Opens GraphiQL and waits until it has drawn its editors.
async fn open_graphiql(page: &Page<'_>, app: &TestApp) {
    page.goto(&app.url("/graphql")).await;
    wait_for_editors(page).await;
}

async fn wait_for_editors(page: &Page<'_>) {
    page.wait_for(
        "GraphiQL's editors",
        &format!(
            "!!(document.querySelector({QUERY_EDITOR:?}) && document.querySelector({RESULT:?}))"
        ),
    )
    .await;
}

/// Replaces what an editor holds by typing `text` into it.
async fn type_into(page: &Page<'_>, selector: &str, text: &str) {
    let cm = editor(selector);
    page.eval(&format!(
        "{cm}.focus(); {cm}.execCommand('selectAll'); true"
    ))
    .await;
    page.insert_text(text).await;
    assert_eq!(
        page.eval(&format!("{cm}.getValue()")).await,
        json!(text),
        "what {selector} holds after typing"
    );
}

/// Types a query and waits for GraphiQL to have parsed it (it does so 100 ms after the last
/// keystroke, and decides from the parsed document whether to use the WebSocket).
async fn type_query(page: &Page<'_>, query: &str) {
    type_into(page, QUERY_EDITOR, query).await;
    let cm = editor(QUERY_EDITOR);
    page.wait_for(
        "GraphiQL to parse the query",
        &format!(
            "(cm => !!cm.documentAST && cm.documentAST.loc.source.body === cm.getValue())({cm})"
        ),
    )
    .await;
}

/// Opens the Headers tab (GraphiQL opens it first here, but a person may have switched).
async fn show_headers(page: &Page<'_>) {
    page.eval(
        "[...document.querySelectorAll('.graphiql-editor-tools button')]
            .find(b => b.textContent.trim() === 'Headers').click(); true",
    )
    .await;
    page.wait_for(
        "the Headers editor",
        &format!("!!document.querySelector({HEADERS_EDITOR:?})"),
    )
    .await;
}

/// Presses GraphiQL's run button and waits until the result pane holds `needle`.
async fn run_until_result_has(page: &Page<'_>, needle: &str) -> String {
    page.eval("document.querySelector('.graphiql-execute-button').click(); true")
        .await;
    let result = editor(RESULT);
    let value = page
        .wait_for(
            &format!("{needle} in the result pane"),
            &format!("(v => v.includes({needle:?}) && v)({result}.getValue())"),
        )
        .await;
    value.as_str().unwrap().to_owned()
}

/// Every request the page made, WebSockets included, went to this server; returns them.
fn assert_only_this_server(page: &Page<'_>, app: &TestApp) -> Vec<String> {
    let http = format!("http://{}/", app.addr);
    let ws = format!("ws://{}/", app.addr);
    let mut urls: Vec<String> = page
        .events("Network.requestWillBeSent")
        .iter()
        .map(|e| e["request"]["url"].as_str().unwrap().to_owned())
        .collect();
    urls.extend(
        page.events("Network.webSocketCreated")
            .iter()
            .map(|e| e["url"].as_str().unwrap().to_owned()),
    );
    for url in &urls {
        // data: URLs are GraphiQL's inlined fonts and icons, read from memory.
        assert!(
            url.starts_with(&http) || url.starts_with(&ws) || url.starts_with("data:"),
            "the page requested {url}"
        );
    }
    urls
}

async fn assert_nothing_refused(page: &Page<'_>) {
    let recorded = page.recorded().await;
    assert_eq!(
        recorded["violations"],
        json!([]),
        "CSP violations: {recorded}"
    );
    assert_eq!(recorded["errors"], json!([]), "page errors: {recorded}");
}

fn authorization(user: &TestUser) -> String {
    format!("{{\"Authorization\": \"Bearer {}\"}}", user.token)
}

#[tokio::test]
async fn graphiql_runs_a_query_with_the_headers_tab_and_keeps_the_headers_across_a_reload() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let page = browser.open().await;
    open_graphiql(&page, &app).await;

    // The first visit explains how to sign in on this server, and how long a token lasts.
    let welcome = page
        .eval(&format!("{}.getValue()", editor(QUERY_EDITOR)))
        .await;
    let welcome = welcome.as_str().unwrap();
    assert!(welcome.contains("devSignIn(email:"), "{welcome}");
    assert!(welcome.contains("lasts 15 minutes"), "{welcome}");
    assert!(welcome.contains("refreshToken(refreshToken:"), "{welcome}");

    // The hint is there, and left as it is it is not sent: the schema still loads.
    show_headers(&page).await;
    let hint = page
        .eval(&format!("{}.getValue()", editor(HEADERS_EDITOR)))
        .await;
    assert!(
        hint.as_str()
            .unwrap()
            .contains("\"Authorization\": \"Bearer <access token>\""),
        "{hint}"
    );
    type_query(&page, "{ me { email } }").await;
    let anonymous = run_until_result_has(&page, "UNAUTHENTICATED").await;
    assert!(anonymous.contains("\"me\""), "{anonymous}");

    type_into(&page, HEADERS_EDITOR, &authorization(&ana)).await;
    let result = run_until_result_has(&page, &ana.email).await;
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result, json!({ "data": { "me": { "email": ana.email } } }));
    assert_nothing_refused(&page).await;

    // GraphiQL stores the headers (in localStorage) half a second after the last edit, and
    // a reload then brings them back, with the query, and they still work.
    page.wait_for(
        "the headers to be stored",
        &format!(
            "localStorage.getItem('graphiql:headers') === {:?}",
            authorization(&ana)
        ),
    )
    .await;
    page.reload().await;
    wait_for_editors(&page).await;
    show_headers(&page).await;
    let headers = page
        .eval(&format!("{}.getValue()", editor(HEADERS_EDITOR)))
        .await;
    assert_eq!(headers, json!(authorization(&ana)));
    let result = page.eval(&format!("{}.getValue()", editor(RESULT))).await;
    assert!(!result.as_str().unwrap().contains(&ana.email), "{result}");
    let result = run_until_result_has(&page, &ana.email).await;
    assert!(result.contains("\"me\""), "{result}");

    // GraphiQL's dialogs add a <style> element, which the policy admits with its nonce.
    page.eval(
        "document.querySelector('button[aria-label=\"Open settings dialog\"]').click(); true",
    )
    .await;
    let dialog = page
        .wait_for(
            "the settings dialog",
            "(d => d && d.textContent)(document.querySelector('[role=dialog]'))",
        )
        .await;
    assert!(
        dialog.as_str().unwrap().contains("Persist headers"),
        "{dialog}"
    );
    page.wait_for(
        "the dialog's style element",
        "[...document.querySelectorAll('style')].some(s => s.nonce !== '')",
    )
    .await;
    assert_nothing_refused(&page).await;

    // What the browser decoded from the gzipped files is what their names promise.
    let decoded = page
        .eval(
            "Promise.all([...document.querySelectorAll('script[src], link[rel=stylesheet]')]
                .map(e => e.src || e.href)
                .filter(u => u.includes('/graphiql-'))
                .map(async u => {
                    const r = await fetch(u);
                    const digest = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
                    const hex = [...new Uint8Array(digest)]
                        .map(b => b.toString(16).padStart(2, '0')).join('');
                    return [u, r.headers.get('content-encoding'), hex];
                }))",
        )
        .await;
    let decoded = decoded.as_array().unwrap();
    assert_eq!(decoded.len(), 2, "{decoded:?}");
    for file in decoded {
        let url = file[0].as_str().unwrap();
        assert_eq!(file[1], "gzip", "{url} was not sent gzipped");
        let hash = url.split('.').find(|p| p.len() == 16).unwrap();
        assert!(
            file[2].as_str().unwrap().starts_with(hash),
            "{url} decodes to {}",
            file[2]
        );
    }

    let urls = assert_only_this_server(&page, &app);
    for expected in [
        "/graphql",
        "/assets/graphiql-3.8.3.",
        "/assets/photon-graphiql.",
    ] {
        assert!(
            urls.iter()
                .any(|u| u.starts_with(&format!("http://{}{expected}", app.addr))),
            "no request for {expected} in {urls:?}"
        );
    }
    drop(page);
    browser.close().await;
}

#[tokio::test]
async fn graphiql_runs_subscriptions_over_a_websocket_to_the_same_server() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &ben, &code).await.ok();
    let page = browser.open().await;
    open_graphiql(&page, &app).await;
    show_headers(&page).await;
    type_into(&page, HEADERS_EDITOR, &authorization(&ana)).await;
    type_query(
        &page,
        &format!(
            "subscription {{ photoAdded(sessionId: \"{session}\") {{ photo {{ sha256 }} }} }}"
        ),
    )
    .await;
    page.eval("document.querySelector('.graphiql-execute-button').click(); true")
        .await;
    // The subscription is live on the server: it counts Ana as watching the session.
    app.wait_online(1).await;
    let bytes = photo_bytes(7, 256);
    upload(&app, &ben, &session, &bytes).await;
    let sha256 = sha256_hex(&bytes);
    let result = page
        .wait_for(
            "the photo in the result pane",
            &format!(
                "(v => v.includes({sha256:?}) && v)({}.getValue())",
                editor(RESULT)
            ),
        )
        .await;
    let result: Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
    assert_eq!(result["data"]["photoAdded"]["photo"]["sha256"], sha256);

    let sockets = page.events("Network.webSocketCreated");
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    assert_eq!(sockets[0]["url"], format!("ws://{}/graphql", app.addr));
    let handshake = page.events("Network.webSocketWillSendHandshakeRequest");
    let protocol = handshake[0]["request"]["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, value)| value.clone());
    assert_eq!(protocol, Some(json!("graphql-transport-ws")));
    // The Headers tab went into connection_init.
    let init = page
        .events("Network.webSocketFrameSent")
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["response"]["payloadData"].as_str()?).ok())
        .find(|m| m["type"] == "connection_init")
        .expect("a connection_init frame");
    assert_eq!(
        init["payload"]["Authorization"],
        format!("Bearer {}", ana.token)
    );
    assert_nothing_refused(&page).await;
    assert_only_this_server(&page, &app);
    drop(page);
    browser.close().await;
}
