//! The invite link `/join/{code}`: the page browsers and link-preview fetchers get (in a real
//! headless Chromium: what it shows, its QR code read back from the screen, its preview tags,
//! hostile names shown as text), the 404 and 410 pages, the redirect other clients keep,
//! `/join/{code}/qr.svg`, the anonymous `sessionInvite`, their rate limit, and the app-link
//! files under `/.well-known/`.

use photon_tests::photos::{photo_bytes, upload};
use photon_tests::{TestApp, TestUser, befriend, create_session, join};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, Page};

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const APP_STORE: &str = "https://apps.apple.com/app/photon/id1234567890";
const PLAY_STORE: &str = "https://play.google.com/store/apps/details?id=com.example.photon";
const PREVIEW: &str = "query($code: String!) { sessionInvite(code: $code) { title memberCount photoCount ended allowsGuests owner { id name avatarUrl email friendship } } }";
const ROTATE: &str = "mutation($id: ID!) { rotateInviteCode(sessionId: $id) { inviteCode } }";
const END: &str = "mutation($id: ID!) { endSession(sessionId: $id) { id } }";
const PROFILE: &str =
    "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { name avatarUrl } }";

async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn set_profile(app: &TestApp, user: &TestUser, input: Value) {
    app.gql_as(user, PROFILE, json!({ "input": input }))
        .await
        .ok();
}

/// Everything a test reads off a rendered invite page, in one evaluation.
const READ_PAGE: &str = r#"(() => {
  const meta = {};
  for (const m of document.querySelectorAll('meta[property], meta[name]')) {
    meta[m.getAttribute('property') || m.getAttribute('name')] = m.getAttribute('content');
  }
  const avatar = document.querySelector('img.avatar');
  const open = [...document.querySelectorAll('a')].find(a => /Open/.test(a.textContent));
  return {
    ready: document.readyState === 'complete',
    title: document.title,
    h1: document.querySelector('h1') && document.querySelector('h1').textContent,
    owner: document.querySelector('.owner strong') && document.querySelector('.owner strong').textContent,
    counts: [...document.querySelectorAll('.counts li')].map(li => li.textContent),
    open: open && open.getAttribute('href'),
    openText: open && open.textContent,
    stores: [...document.querySelectorAll('a.store')].map(a => [a.textContent, a.getAttribute('href')]),
    qr: !!document.querySelector('svg.qr-code path'),
    qrWidth: document.querySelector('svg.qr-code') ? document.querySelector('svg.qr-code').getBoundingClientRect().width : 0,
    avatarWidth: avatar ? avatar.naturalWidth : null,
    avatarComplete: avatar ? avatar.complete : null,
    scripts: document.scripts.length,
    lang: document.documentElement.lang,
    viewport: meta['viewport'],
    meta,
    text: document.body.innerText,
    recorded: window.__photonTest,
    pwned: window.__pwned === undefined ? null : window.__pwned,
  };
})()"#;

async fn open_page(page: &Page<'_>, url: &str) -> Value {
    page.goto(url).await;
    page.wait_for("the page to load", &format!("{READ_PAGE}.ready"))
        .await;
    page.eval(READ_PAGE).await
}

/// The HTTP status Chromium got for the last document it loaded.
fn document_status(page: &Page<'_>) -> u64 {
    page.events("Network.responseReceived")
        .iter()
        .rev()
        .find(|e| e["type"] == "Document")
        .and_then(|e| e["response"]["status"].as_u64())
        .expect("a document response")
}

/// Reads the QR code in a PNG screenshot.
fn read_qr(png: &[u8]) -> String {
    let image = image::load_from_memory(png).unwrap().to_luma8();
    let (w, h) = image.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            image.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn a_browser_gets_a_page_with_the_session_its_counts_the_app_link_and_a_readable_qr_code() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app_store = format!("--app-store-url={APP_STORE}");
    let play_store = format!("--play-store-url={PLAY_STORE}");
    let app = TestApp::spawn_with(&[&app_store, &play_store]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    // An avatar on another origin (the same server under another name): the page's policy
    // must let exactly that origin's image in.
    let avatar = format!("http://localhost:{}/favicon.svg", app.addr.port());
    set_profile(&app, &ana, json!({ "name": "Ana", "avatarUrl": avatar })).await;
    let (session_id, code) = create_session(&app, &ana, "Beach day 🏖️").await;
    join(&app, &bob, &code).await.ok();
    upload(&app, &ana, &session_id, &photo_bytes(1, 2048)).await;
    upload(&app, &bob, &session_id, &photo_bytes(2, 2048)).await;
    let invite_url = app.url(&format!("/join/{code}"));

    let page = browser.open().await;
    let seen = open_page(&page, &invite_url).await;
    assert_eq!(document_status(&page), 200);
    assert_eq!(seen["h1"], "Beach day 🏖️", "{seen}");
    assert_eq!(seen["title"], "Beach day 🏖️ · Photon");
    assert_eq!(seen["owner"], "Ana");
    assert_eq!(seen["counts"], json!(["2 members", "2 photos"]));
    assert_eq!(seen["openText"], "Open in Photon");
    assert_eq!(seen["open"], format!("photon://join?code={code}"));
    assert!(
        seen["text"].as_str().unwrap().contains("No account needed"),
        "the session takes guests: {seen}"
    );
    assert_eq!(
        seen["stores"],
        json!([["App Store", APP_STORE], ["Google Play", PLAY_STORE]])
    );
    assert!(seen["text"].as_str().unwrap().contains(&code), "{seen}");
    assert_eq!(seen["avatarComplete"], true);
    assert!(seen["avatarWidth"].as_u64().unwrap() > 0, "{seen}");
    // No script of any kind, and nothing refused or thrown.
    assert_eq!(seen["scripts"], 0);
    assert_eq!(seen["recorded"], json!({ "violations": [], "errors": [] }));
    assert_eq!(seen["lang"], "en");
    assert_eq!(seen["viewport"], "width=device-width, initial-scale=1");
    let meta = &seen["meta"];
    assert_eq!(meta["og:title"], "Beach day 🏖️");
    assert_eq!(meta["og:url"], invite_url);
    assert_eq!(meta["og:type"], "website");
    assert_eq!(meta["og:site_name"], "Photon");
    assert_eq!(meta["twitter:card"], "summary");
    assert_eq!(meta["twitter:title"], "Beach day 🏖️");
    let description = meta["og:description"].as_str().unwrap();
    assert!(description.contains("Ana"), "{description}");
    assert!(description.contains("2 members, 2 photos"), "{description}");
    assert_eq!(meta["twitter:description"], description);
    assert!(meta.get("og:image").is_none(), "no photo in previews");
    assert_eq!(meta["robots"], "noindex, nofollow");

    // The QR code, as painted, reads back as the invite link.
    assert!(seen["qr"].as_bool().unwrap(), "{seen}");
    assert!(seen["qrWidth"].as_f64().unwrap() >= 150.0, "{seen}");
    let png = page.screenshot("svg.qr-code").await;
    assert_eq!(read_qr(&png), invite_url);

    // Every request the page made went to the test server or the avatar's origin.
    for request in page.events("Network.requestWillBeSent") {
        let url = request["request"]["url"].as_str().unwrap();
        assert!(
            url.starts_with(&app.base_url) || url == avatar,
            "unexpected request to {url}"
        );
    }
    browser.close().await;
}

#[tokio::test]
async fn the_page_is_served_no_store_no_referrer_noindex_with_a_policy_that_allows_no_script() {
    // No push dispatcher: its rounds after the uploads below would land in the count.
    let app = TestApp::spawn_with(&["--push-poll-ms=0"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    for n in 0..3 {
        let member = app.sign_in(&format!("member{n}@example.com")).await;
        join(&app, &member, &code).await.ok();
        upload(&app, &member, &session_id, &photo_bytes(n, 1024)).await;
    }
    let before = app.settled_statements().await;
    let response = get(&app, &format!("/join/{code}"), Some(BROWSER_ACCEPT)).await;
    // The session, its owner and two counts, however many members and photos it has. Read
    // at once: the request's statements are all done when its answer arrives.
    assert_eq!(app.statements() - before, 4);
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(header(&response, "vary"), "accept");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert_eq!(header(&response, "x-robots-tag"), "noindex, nofollow");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    let policy = header(&response, "content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'none'"), "{policy}");
    assert!(
        policy.contains("img-src 'self' data:;"),
        "no avatar, no other origin: {policy}"
    );
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script"), "{html}");
    // Stores not configured: no store links at all.
    assert!(!html.contains("class=\"store"), "{html}");
    assert!(!html.contains("App Store"), "{html}");
    assert!(html.contains("No account needed"), "{html}");

    // A session that takes no guests says an account is needed.
    let members_only = app
        .gql_as(
            &ana,
            "mutation { createSession(input: { title: \"Members only\", allowGuests: false }) { inviteCode } }",
            json!({}),
        )
        .await;
    let code = members_only.ok()["createSession"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = get(&app, &format!("/join/{code}"), Some(BROWSER_ACCEPT))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in with your account to join"), "{html}");
    assert!(!html.contains("No account needed"), "{html}");
}

#[tokio::test]
async fn hostile_titles_and_names_are_shown_as_text_and_run_nothing() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let name = r#"<script>window.__pwned = "name"</script>"'&amp;"#;
    let title = r#"</title><script>__pwned=1</script>"><img src=x onerror=__pwned=2>'"#;
    set_profile(&app, &ana, json!({ "name": name })).await;
    let (_, code) = create_session(&app, &ana, title).await;

    let html = get(&app, &format!("/join/{code}"), Some(BROWSER_ACCEPT))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");

    let page = browser.open().await;
    let seen = open_page(&page, &app.url(&format!("/join/{code}"))).await;
    assert_eq!(seen["h1"], title, "{seen}");
    assert_eq!(seen["owner"], name);
    assert_eq!(seen["title"], format!("{title} · Photon"));
    assert_eq!(seen["meta"]["og:title"], title);
    assert!(
        seen["meta"]["og:description"]
            .as_str()
            .unwrap()
            .starts_with(name)
    );
    assert_eq!(seen["pwned"], Value::Null, "{seen}");
    assert_eq!(seen["scripts"], 0);
    assert_eq!(seen["recorded"], json!({ "violations": [], "errors": [] }));
    browser.close().await;
}

#[tokio::test]
async fn unknown_replaced_and_ended_codes_get_pages_that_say_so_with_404_and_410() {
    let app_store = format!("--app-store-url={APP_STORE}");
    let app = TestApp::spawn_with(&[&app_store]).await;
    let ana = app.sign_in("ana@example.com").await;
    let (rotated_id, old_code) = create_session(&app, &ana, "Rotated").await;
    app.gql_as(&ana, ROTATE, json!({ "id": rotated_id }))
        .await
        .ok();
    let (ended_id, ended_code) = create_session(&app, &ana, "Picnic").await;
    app.gql_as(&ana, END, json!({ "id": ended_id })).await.ok();

    for (code, status, says) in [
        ("0000-0000-0000-0000", 404, "doesn't work"),
        ("not-a-code", 404, "doesn't work"),
        (old_code.as_str(), 404, "doesn't work"),
        (ended_code.as_str(), 410, "has ended"),
    ] {
        let response = get(&app, &format!("/join/{code}"), Some(BROWSER_ACCEPT)).await;
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, "cache-control"), "no-store");
        assert_eq!(header(&response, "vary"), "accept");
        let html = response.text().await.unwrap();
        assert!(html.contains(says), "{code}: {html}");
        // Still a way on: the app and the store.
        assert!(html.contains(r#"href="photon://join""#), "{code}: {html}");
        assert!(html.contains(APP_STORE), "{code}: {html}");
        assert!(
            !html.contains("Rotated"),
            "a replaced code shows nothing of its session"
        );
    }
    let ended = get(&app, &format!("/join/{ended_code}"), Some(BROWSER_ACCEPT))
        .await
        .text()
        .await
        .unwrap();
    assert!(ended.contains("Picnic"), "{ended}");

    // And the same in a browser.
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let page = browser.open().await;
    let seen = open_page(&page, &app.url("/join/0000-0000-0000-0000")).await;
    assert_eq!(document_status(&page), 404);
    assert_eq!(seen["h1"], "This invite link doesn't work");
    assert_eq!(seen["open"], "photon://join");
    let seen = open_page(&page, &app.url(&format!("/join/{ended_code}"))).await;
    assert_eq!(document_status(&page), 410);
    assert_eq!(seen["h1"], "This session has ended");
    assert_eq!(seen["recorded"], json!({ "violations": [], "errors": [] }));
    browser.close().await;
}

#[tokio::test]
async fn clients_that_do_not_ask_for_html_keep_the_redirect_to_the_app() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach").await;
    let lower = code.to_lowercase();
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/html;q=0"),
    ] {
        let response = get(&app, &format!("/join/{lower}"), accept).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{accept:?}");
        assert_eq!(
            header(&response, "location"),
            format!("photon://join?code={code}")
        );
        assert_eq!(header(&response, "vary"), "accept");
    }
    let response = get(&app, "/join/not-a-code", Some("*/*")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// The dark squares of the crate's SVG: one `<path>` of `M{x} {y}h{w}v{h}H{x}V{y}` rectangles
/// on a `width` × `height` canvas, painted into a grey image (with a margin) for the reader.
fn rasterize(svg: &str) -> (usize, usize, Vec<u8>) {
    let attribute = |name: &str| -> usize {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[start..start + svg[start..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    let (width, height) = (attribute("width"), attribute("height"));
    let d_start = svg.find(" d=\"").unwrap() + 4;
    let d = &svg[d_start..d_start + svg[d_start..].find('"').unwrap()];
    let mut pixels = vec![255u8; width * height];
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        let numbers: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let (x, y, w, h) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        for row in y..y + h {
            for column in x..x + w {
                pixels[row * width + column] = 0;
            }
        }
    }
    (width, height, pixels)
}

#[tokio::test]
async fn the_qr_code_is_an_svg_of_the_invite_link_for_live_codes_only() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    let response = get(&app, &format!("/join/{}/qr.svg", code.to_lowercase()), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/svg+xml");
    assert_eq!(header(&response, "cache-control"), "private, max-age=300");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert!(header(&response, "content-security-policy").contains("sandbox"));
    let svg = response.text().await.unwrap();
    assert!(svg.starts_with("<?xml"), "{svg}");
    assert!(
        svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(!svg.contains("<script"), "{svg}");
    let (width, height, pixels) = rasterize(&svg);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1);
    assert_eq!(
        grids[0].decode().unwrap().1,
        app.url(&format!("/join/{code}"))
    );

    app.gql_as(&ana, ROTATE, json!({ "id": id })).await.ok();
    let (ended_id, ended_code) = create_session(&app, &ana, "Over").await;
    app.gql_as(&ana, END, json!({ "id": ended_id })).await.ok();
    for gone in [
        code.as_str(),
        ended_code.as_str(),
        "0000-0000-0000-0000",
        "nope",
    ] {
        let response = get(&app, &format!("/join/{gone}/qr.svg"), None).await;
        assert_eq!(response.status(), 404, "{gone}");
    }
}

#[tokio::test]
async fn anyone_holding_the_code_may_preview_it_but_never_sees_the_owners_email() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    befriend(&app, &ana, &bob).await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    upload(&app, &bob, &id, &photo_bytes(3, 1024)).await;

    let anonymous = app.gql_anon(PREVIEW, json!({ "code": code })).await;
    let invite = &anonymous.ok()["sessionInvite"];
    assert_eq!(invite["title"], "Beach");
    assert_eq!(invite["memberCount"], 2);
    assert_eq!(invite["photoCount"], 1);
    assert_eq!(invite["ended"], false);
    assert_eq!(invite["allowsGuests"], true);
    assert_eq!(invite["owner"]["id"], ana.id);
    assert_eq!(invite["owner"]["name"], "ana");
    assert!(invite["owner"]["email"].is_null(), "{invite}");
    assert_eq!(invite["owner"]["friendship"], "NONE");
    // A stranger does not see it either; a friend does, as everywhere.
    let stranger = app.gql_as(&eve, PREVIEW, json!({ "code": code })).await;
    assert!(stranger.ok()["sessionInvite"]["owner"]["email"].is_null());
    let friend = app.gql_as(&bob, PREVIEW, json!({ "code": code })).await;
    assert_eq!(
        friend.ok()["sessionInvite"]["owner"]["email"],
        "ana@example.com"
    );

    // Ended: still previewed, with `ended`; replaced or unknown: null.
    app.gql_as(&ana, END, json!({ "id": id })).await.ok();
    let ended = app.gql_anon(PREVIEW, json!({ "code": code })).await;
    assert_eq!(ended.ok()["sessionInvite"]["ended"], true);
    let (other, other_code) = create_session(&app, &ana, "Other").await;
    app.gql_as(&ana, ROTATE, json!({ "id": other })).await.ok();
    for code in [other_code.as_str(), "0000-0000-0000-0000", "💥"] {
        let gone = app.gql_anon(PREVIEW, json!({ "code": code })).await;
        assert!(gone.ok()["sessionInvite"].is_null(), "{code}");
    }
}

/// A request that claims, through the trusted proxy, to come from `ip`.
async fn from_ip(app: &TestApp, ip: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("x-forwarded-for", ip)
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_its_qr_code_and_anonymous_previews_share_a_rate_limit_per_ip() {
    let app = TestApp::spawn_with(&[
        "--rate-limits=true",
        "--trusted-proxies=127.0.0.1",
        "--rate-join-link-per-minute=60",
        "--rate-join-link-burst=3",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach").await;
    let page = format!("/join/{code}");
    let qr = format!("/join/{code}/qr.svg");
    let ip = "198.51.100.20";
    assert_eq!(from_ip(&app, ip, &page).await.status(), 200);
    assert_eq!(from_ip(&app, ip, &qr).await.status(), 200);
    assert_eq!(from_ip(&app, ip, &page).await.status(), 200);
    let refused = from_ip(&app, ip, &qr).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        from_ip(&app, "198.51.100.21", &page).await.status(),
        200,
        "another client is not held back"
    );

    // Anonymous `sessionInvite`: each alias counts, against the same per-IP bucket.
    let aliases = "query($c: String!) { a: sessionInvite(code: $c) { title } b: sessionInvite(code: $c) { title } c: sessionInvite(code: $c) { title } d: sessionInvite(code: $c) { title } }";
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "198.51.100.22")
        .json(&json!({ "query": aliases, "variables": { "c": code } }))
        .send()
        .await
        .unwrap();
    let body = TestApp::read(response).await.body;
    for alias in ["a", "b", "c"] {
        assert_eq!(body["data"][alias]["title"], "Beach", "{body}");
    }
    assert!(body["data"]["d"].is_null(), "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], "RATE_LIMITED");
    assert!(errors[0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    assert_eq!(errors[0]["path"], json!(["d"]));
    // That client's page is now refused too, and a signed-in caller is not counted.
    assert_eq!(
        from_ip(&app, "198.51.100.22", &page).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let signed_in = app.gql_as(&ana, aliases, json!({ "c": code })).await;
    assert_eq!(signed_in.ok()["d"]["title"], "Beach");
}

const FINGERPRINT: &str = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";

#[tokio::test]
async fn app_link_files_are_served_from_the_settings_and_404_without_them() {
    let plain = TestApp::spawn().await;
    for path in [
        "/.well-known/apple-app-site-association",
        "/.well-known/assetlinks.json",
    ] {
        assert_eq!(get(&plain, path, None).await.status(), 404, "{path}");
    }

    let lower_bare = FINGERPRINT.replace(':', "").to_lowercase();
    let android_certs = format!("--android-cert-sha256={lower_bare},{FINGERPRINT}");
    let app = TestApp::spawn_with(&[
        "--ios-app-ids=ABCDE12345.com.example.photon, VWXYZ67890.com.example.photon.beta",
        "--android-package=com.example.photon",
        &android_certs,
    ])
    .await;
    let apple = get(&app, "/.well-known/apple-app-site-association", None).await;
    assert_eq!(apple.status(), 200);
    assert_eq!(header(&apple, "content-type"), "application/json");
    assert_eq!(
        apple.json::<Value>().await.unwrap(),
        json!({ "applinks": { "details": [{
            "appIDs": ["ABCDE12345.com.example.photon", "VWXYZ67890.com.example.photon.beta"],
            "components": [{ "/": "/join/*" }],
        }] } })
    );
    let android = get(&app, "/.well-known/assetlinks.json", None).await;
    assert_eq!(android.status(), 200);
    assert_eq!(header(&android, "content-type"), "application/json");
    assert_eq!(
        android.json::<Value>().await.unwrap(),
        json!([{
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": "com.example.photon",
                "sha256_cert_fingerprints": [FINGERPRINT, FINGERPRINT],
            },
        }])
    );
}

#[tokio::test]
async fn bad_invite_settings_stop_the_server_at_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", dir.path().display());
    let fingerprint = format!("--android-cert-sha256={FINGERPRINT}");
    for (flags, names) in [
        (
            vec!["--ios-app-ids=com.example.photon"],
            "PHOTON_IOS_APP_IDS",
        ),
        (
            vec!["--android-package=com.example.photon"],
            "PHOTON_ANDROID_CERT_SHA256",
        ),
        (
            vec!["--android-package=photon", fingerprint.as_str()],
            "PHOTON_ANDROID_PACKAGE",
        ),
        (
            vec![
                "--android-package=com.example.photon",
                "--android-cert-sha256=AB:CD",
            ],
            "PHOTON_ANDROID_CERT_SHA256",
        ),
        (
            vec!["--app-store-url=javascript:alert(1)"],
            "PHOTON_APP_STORE_URL",
        ),
        (
            vec!["--play-store-url=ftp://example.com/app"],
            "PHOTON_PLAY_STORE_URL",
        ),
    ] {
        let mut args = vec!["photon", data_dir.as_str()];
        args.extend(flags.iter().copied());
        let error = photon::config::settings_from_args(&args)
            .unwrap()
            .resolve()
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{error:#}").contains(names), "{flags:?}: {error:#}");
    }
}
