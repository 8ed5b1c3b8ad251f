//! Connection hygiene: header and idle timeouts, connection caps, WebSockets that stop reading
//! or sit idle anonymously, and the safe defaults of downloads, request ids and the database.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use photon_tests::photos::{photo_bytes, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, TestApp, create_session};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Reads until the server closes the connection; what it sent, and whether it closed within
/// `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A TCP connection to the server from `source` (any port).
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends one plain request on `stream`; whether a 200 came back.
async fn healthz_on(stream: &mut TcpStream) -> bool {
    let request = b"GET /healthz HTTP/1.1\r\nhost: photon\r\nconnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let (response, _) = read_until_closed(stream, Duration::from_secs(3)).await;
    response.starts_with(b"HTTP/1.1 200")
}

/// Whether the server refuses a new connection from `source`: a bare 503, or closed unread.
async fn refused(source: &str, server: SocketAddr) -> bool {
    let mut stream = connect_from(source, server).await;
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    closed && (response.is_empty() || response.starts_with(b"HTTP/1.1 503"))
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_cut_off() {
    let app = TestApp::spawn_with(&["--http-header-timeout-ms=300"]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /healthz HT").await.unwrap();

    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "the connection is still open");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(!response.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = TestApp::spawn_with(&["--http-header-timeout-ms=300"]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: photon\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();

    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    assert!(closed, "the idle connection is still open");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn the_connection_caps_refuse_the_next_connection() {
    // Per address: a third connection from 127.0.0.1 is refused, one from 127.0.0.2 is not.
    let app = TestApp::spawn_with(&["--max-connections-per-ip=2"]).await;
    let _first = connect_from("127.0.0.1", app.addr).await;
    let mut second = connect_from("127.0.0.1", app.addr).await;
    assert!(refused("127.0.0.1", app.addr).await);
    let mut other = connect_from("127.0.0.2", app.addr).await;
    assert!(healthz_on(&mut other).await);
    // A freed slot is usable again.
    assert!(healthz_on(&mut second).await);
    let mut again = retry_connect("127.0.0.1", app.addr).await;
    assert!(healthz_on(&mut again).await);

    // In all: with two open, a third from anywhere is refused.
    let app = TestApp::spawn_with(&["--max-connections=2"]).await;
    let first = connect_from("127.0.0.1", app.addr).await;
    let _second = connect_from("127.0.0.2", app.addr).await;
    assert!(refused("127.0.0.3", app.addr).await);
    assert_eq!(app.state.connections.refused(), 1);
    drop(first);
    let mut next = retry_connect("127.0.0.3", app.addr).await;
    assert!(healthz_on(&mut next).await);
}

/// A connection that the server admits, once it has noticed a slot was freed.
async fn retry_connect(source: &str, server: SocketAddr) -> TcpStream {
    for _ in 0..20 {
        let stream = connect_from(source, server).await;
        // An admitted connection stays open; a refused one is closed at once.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), stream.peek(&mut byte)).await {
            Err(_) => return stream,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("no slot was freed");
}

const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";
/// The introspection query: a large result for little input, so a few of them fill a socket.
const INTROSPECTION: &str = "{ __schema { types { name description fields { name description args { name description } } } } }";

/// A `graphql-transport-ws` socket with a 4 KiB receive buffer, so that what the server
/// sends backs up soon once the client stops reading.
async fn small_buffer_websocket(app: &TestApp) -> WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_closed() {
    let app =
        TestApp::spawn_with(&["--ws-write-timeout-ms=300", "--ws-max-subscriptions=1000"]).await;
    let mut socket = small_buffer_websocket(&app).await;
    let init = json!({ "type": "connection_init", "payload": {} });
    socket.send(Message::text(init.to_string())).await.unwrap();
    // Many operations with large results, none of them read.
    for i in 0..200 {
        let subscribe = json!({ "type": "subscribe", "id": i.to_string(), "payload": { "query": INTROSPECTION } });
        if socket
            .send(Message::text(subscribe.to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    // The server gives up on the socket, though the client never closed it. Without the
    // write timeout it never would; the generous deadline is for running 200 introspection
    // queries on a loaded two-core machine, not for the timeout itself (300 ms).
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.state.connections.open() > 0 {
        assert!(
            Instant::now() < deadline,
            "the server kept writing to a client that did not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(socket);
}

#[tokio::test]
async fn an_idle_anonymous_websocket_is_closed() {
    let app = TestApp::spawn_with(&["--ws-anonymous-idle-ms=300"]).await;
    let ana = app.sign_in("ana@example.com").await;
    for protocol in Protocol::BOTH {
        // Initialised without a token.
        let started = Instant::now();
        let mut anonymous = WsClient::connect(&app, protocol, json!({})).await;
        let (code, _) = anonymous.expect_close().await;
        assert_eq!(code, 1001, "{protocol:?}");
        assert!(started.elapsed() < Duration::from_secs(3));

        // Never initialised: closed after the idle window, well before the init timeout.
        let started = Instant::now();
        let mut silent = WsClient::open(&app, protocol).await;
        silent.expect_close().await;
        assert!(started.elapsed() < Duration::from_secs(3));

        // Signed in: left open.
        let mut signed_in = WsClient::connect_as(&app, protocol, &ana.token).await;
        signed_in.expect_silence(Duration::from_millis(500)).await;
        signed_in.close().await;
    }
}

#[tokio::test]
async fn downloads_forbid_sniffing_and_scripts() {
    let app = TestApp::spawn().await;
    if photon_tests::s3_public_endpoint().is_some() {
        // The object store serves downloads itself.
        return;
    }
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let id = upload(&app, &ana, &session_id, &photo_bytes(1, 1000)).await;
    let photo = app
        .gql_as(
            &ana,
            "query($id: ID!) { photo(id: $id) { url } }",
            json!({ "id": id }),
        )
        .await;
    let url = photo.ok()["photo"]["url"].as_str().unwrap().to_owned();

    let download = app.client.get(&url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    let csp = download.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("sandbox"), "{csp}");
}

#[tokio::test]
async fn the_server_chooses_its_own_request_id() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "chosen-by-the-client")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "chosen-by-the-client");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn postgres_statements_have_a_time_limit() {
    let app = TestApp::spawn_with(&[
        "--database-statement-timeout-ms=250",
        "--database-lock-timeout-ms=200",
    ])
    .await;
    if app.backend != Backend::Postgres {
        return;
    }
    let show =
        |setting: &str| Statement::from_string(DbBackend::Postgres, format!("SHOW {setting}"));
    let row = app
        .state
        .db
        .query_one_raw(show("statement_timeout"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "250ms");
    let row = app
        .state
        .db
        .query_one_raw(show("lock_timeout"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "200ms");
    let started = Instant::now();
    let slow = app
        .state
        .db
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_sleep(3)",
        ))
        .await;
    assert!(slow.is_err(), "a 3 s statement ran to the end");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// How long after the completion's response each photo reached `client`, for `photos`
/// uploaded one after another by `owner`.
async fn delivery_times(
    app: &TestApp,
    owner: &photon_tests::TestUser,
    session: &str,
    client: &mut WsClient,
    seeds: std::ops::Range<u8>,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for seed in seeds {
        let photo = upload(app, owner, session, &photo_bytes(seed, 64)).await;
        let completed = Instant::now();
        let payload = tokio::time::timeout(Duration::from_secs(2), client.next_payload("1"))
            .await
            .unwrap_or_else(|_| panic!("photo {seed} did not arrive within 2 s"));
        assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], photo);
        times.push(client.arrived_at().saturating_duration_since(completed));
    }
    times.sort();
    times
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_hold_up_the_others() {
    // Long enough that the stalled socket stays stalled for the whole test.
    let app =
        TestApp::spawn_with(&["--ws-write-timeout-ms=60000", "--ws-max-subscriptions=200"]).await;
    let owner = app.sign_in("ana@example.com").await;
    let member = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &owner, "Beach day").await;
    photon_tests::join(&app, &member, &code).await.ok();
    let mut watching = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    watching
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;

    // Another phone with 150 subscriptions to the session and a small receive buffer. It
    // reads at first; later it stops, and its socket backs up within a couple of photos.
    let heavy = small_buffer_websocket(&app).await;
    let (mut heavy_tx, mut heavy_rx) = heavy.split();
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", owner.token) } });
    heavy_tx
        .send(Message::text(init.to_string()))
        .await
        .unwrap();
    let query = "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id url uploader { id name } } } }";
    for i in 0..150 {
        let subscribe = json!({ "type": "subscribe", "id": i.to_string(), "payload": { "query": query, "variables": { "s": session } } });
        heavy_tx
            .send(Message::text(subscribe.to_string()))
            .await
            .unwrap();
    }
    let reading = tokio::spawn(async move { while heavy_rx.next().await.is_some() {} });
    app.wait_online(2).await;
    let before = delivery_times(&app, &owner, &session, &mut watching, 1..11).await;

    // The heavy phone stops reading (its socket stays open).
    reading.abort();
    // Two photos fill what it can take (150 results of a few hundred bytes each).
    let _ = delivery_times(&app, &owner, &session, &mut watching, 20..22).await;
    let during = delivery_times(&app, &owner, &session, &mut watching, 30..40).await;
    eprintln!(
        "delivery to the reading subscriber: median {:?}, max {:?} while the other phone read; \
         median {:?}, max {:?} once it stopped",
        before[before.len() / 2],
        before[before.len() - 1],
        during[during.len() / 2],
        during[during.len() - 1],
    );
    // The stalled socket is still open: the others were served around it, not after it
    // (every photo above arrived within 2 s).
    assert!(app.state.connections.open() >= 2);
    drop(heavy_tx);
}
