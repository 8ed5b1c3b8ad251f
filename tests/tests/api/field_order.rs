//! The bytes of a response: objects keep the order of the selection set (aliases and nested
//! objects included) over HTTP, batched HTTP and both WebSocket protocols, and GraphQL
//! responses are compressed for clients that ask while photo bytes never are.

use std::io::Read;

use futures_util::{SinkExt, StreamExt};
use photon_tests::photos::upload;
use photon_tests::ws::Protocol;
use photon_tests::{TestApp, TestUser, create_session};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Fields deliberately out of alphabetical order, at every level.
/// `kind` resolves at once while the others wait on the database, so an executor that
/// inserted fields as they complete would put it first.
const QUERY: &str = "query Order { me { name id email } second: me { email who: name } \
                     sessions(first: 5) { edges { node { title id owner { name id } } } } \
                     kind: __typename }";

/// A user with a session, and the exact `data` the query must produce for them.
async fn fixture(app: &TestApp) -> (TestUser, String) {
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(app, &ana, "Beach").await;
    let id = &ana.id;
    let data = format!(
        r#"{{"me":{{"name":"ana","id":"{id}","email":"ana@example.com"}},"second":{{"email":"ana@example.com","who":"ana"}},"sessions":{{"edges":[{{"node":{{"title":"Beach","id":"{session_id}","owner":{{"name":"ana","id":"{id}"}}}}}}]}},"kind":"Query"}}"#
    );
    (ana, data)
}

async fn post_text(app: &TestApp, user: &TestUser, body: &Value) -> String {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&user.token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn http_responses_keep_the_selection_order() {
    let app = TestApp::spawn().await;
    let (ana, data) = fixture(&app).await;

    let single = post_text(&app, &ana, &json!({ "query": QUERY })).await;
    assert_eq!(single, format!(r#"{{"data":{data}}}"#));

    let batch = json!([{ "query": QUERY }, { "query": "{ me { email name } }" }]);
    let batched = post_text(&app, &ana, &batch).await;
    assert_eq!(
        batched,
        format!(
            r#"[{{"data":{data}}},{{"data":{{"me":{{"email":"ana@example.com","name":"ana"}}}}}}]"#
        )
    );

    let get = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", QUERY)])
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.text().await.unwrap(), format!(r#"{{"data":{data}}}"#));
}

/// The raw text of the first result of `query` over `protocol`, from a socket that also
/// offers compression in its upgrade request (which must not disturb the upgrade).
async fn ws_result_text(app: &TestApp, protocol: Protocol, token: &str, query: &str) -> String {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(protocol.name()),
    );
    headers.insert("Accept-Encoding", HeaderValue::from_static("gzip, br"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |message: Value| Message::Text(message.to_string().into());
    socket
        .send(send(json!({
            "type": "connection_init",
            "payload": { "authorization": format!("Bearer {token}") },
        })))
        .await
        .unwrap();
    let start = match protocol {
        Protocol::Transport => "subscribe",
        Protocol::Legacy => "start",
    };
    let mut started = false;
    loop {
        let frame = tokio::time::timeout(photon_tests::ws::WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        match message["type"].as_str() {
            Some("connection_ack") if !started => {
                started = true;
                socket
                    .send(send(
                        json!({ "type": start, "id": "1", "payload": { "query": query } }),
                    ))
                    .await
                    .unwrap();
            }
            Some("next" | "data") => return text.to_string(),
            Some("ping" | "ka") => {}
            _ => panic!("unexpected message {text}"),
        }
    }
}

#[tokio::test]
async fn websocket_results_keep_the_selection_order_in_both_protocols() {
    let app = TestApp::spawn().await;
    let (ana, data) = fixture(&app).await;
    for protocol in Protocol::BOTH {
        let text = ws_result_text(&app, protocol, &ana.token, QUERY).await;
        let expected = format!(r#""payload":{{"data":{data}}}"#);
        assert!(
            text.contains(&expected),
            "{protocol:?}: {text} does not contain {expected}"
        );
    }
}

/// A response large enough to be worth compressing.
const BIG: &str = "{ __schema { types { name kind description fields { name description } } } }";

async fn fetch(app: &TestApp, accept_encoding: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": BIG }));
    if let Some(encoding) = accept_encoding {
        request = request.header("accept-encoding", encoding);
    }
    request.send().await.unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn graphql_responses_are_compressed_with_gzip_or_brotli_when_asked() {
    let app = TestApp::spawn().await;
    let plain = fetch(&app, None).await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap().to_vec();
    let json: Value = serde_json::from_slice(&plain).unwrap();
    assert!(json["data"]["__schema"]["types"].as_array().unwrap().len() > 10);

    for (encoding, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", unbrotli as fn(&[u8]) -> Vec<u8>),
    ] {
        let response = fetch(&app, Some(encoding)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], encoding);
        assert!(
            response.headers()["vary"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        let compressed = response.bytes().await.unwrap().to_vec();
        assert!(
            compressed.len() * 3 < plain.len(),
            "{encoding}: {} of {} bytes",
            compressed.len(),
            plain.len()
        );
        assert_eq!(decode(&compressed), plain, "{encoding}");
    }

    // A client preferring Brotli gets it; GET answers are compressed too.
    let response = fetch(&app, Some("gzip;q=0.5, br")).await;
    assert_eq!(response.headers()["content-encoding"], "br");
    let get = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", BIG)])
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["content-encoding"], "gzip");
    assert_eq!(gunzip(&get.bytes().await.unwrap()), plain);
}

#[tokio::test]
async fn photo_downloads_are_never_compressed() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    // Bytes that compress very well, so a compressing layer would certainly bite.
    let bytes = vec![b'a'; 64 * 1024];
    let id = upload(&app, &ana, &session_id, &bytes).await;
    let photo = app
        .gql_as(
            &ana,
            "query($id: ID!) { photo(id: $id) { url } }",
            json!({ "id": id }),
        )
        .await;
    let url = photo.ok()["photo"]["url"].as_str().unwrap().to_owned();
    let download = app
        .client
        .get(&url)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers().get("content-encoding").is_none(),
        "{:?}",
        download.headers()
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());
}
