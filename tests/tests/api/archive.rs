//! Session archives over real HTTP: asked for through GraphQL, downloaded from the link, and
//! unpacked by Info-ZIP's `unzip`, on the local store and (with `PHOTON_TEST_STORAGE=s3`) on
//! the S3 test server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use photon::imaging::fixtures::{self, ExifSpec};
use photon_tests::photos::{photo_bytes, sha256_hex, upload, upload_typed};
use photon_tests::{TestApp, TestUser, create_session, join, uuid_of};
use serde_json::{Value, json};
use tokio::time::Instant;

const ARCHIVE: &str = "mutation($s: ID!) { requestSessionArchive(sessionId: $s) { url expiresAt photoCount byteSize } }";
const PROCESSING: &str = "query($id: ID!) { photo(id: $id) { processing url } }";
const BLOCK: &str = "mutation($id: ID!) { blockUser(userId: $id) }";
const REMOVE: &str =
    "mutation($s: ID!, $u: ID!) { removeMember(sessionId: $s, userId: $u) { id } }";

async fn processing_app(extra: &[&str]) -> TestApp {
    let mut args = vec!["--processing-concurrency=2", "--processing-poll-ms=100"];
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

/// Waits for processing to end; returns the photo's `url` as `user` gets it.
async fn processed_url(app: &TestApp, user: &TestUser, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let photo = app.gql_as(user, PROCESSING, json!({ "id": id })).await.ok()["photo"].clone();
        if photo["processing"] != "PENDING" {
            assert_eq!(photo["processing"], "DONE", "{photo}");
            return photo["url"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "still pending: {photo}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fetch(app: &TestApp, url: &str) -> Vec<u8> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.unwrap().to_vec()
}

/// Asks for the archive as `user`.
async fn offer(app: &TestApp, user: &TestUser, session: &str) -> Value {
    app.gql_as(user, ARCHIVE, json!({ "s": session }))
        .await
        .ok()["requestSessionArchive"]
        .clone()
}

/// Downloads the archive, checks its length against the offer and `Content-Length`, unpacks
/// it with `unzip` and returns every file's SHA-256 by its path.
async fn unzip(app: &TestApp, offer: &Value, dir: &Path) -> BTreeMap<String, String> {
    let response = app
        .client
        .get(offer["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(headers["cache-control"], "private, no-store");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\""),
        "{headers:?}"
    );
    let length: u64 = headers["content-length"].to_str().unwrap().parse().unwrap();
    assert_eq!(Some(length), offer["byteSize"].as_u64());
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, length);
    let zip = dir.join("archive.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let out = dir.join("out");
    let status = std::process::Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&out)
        .status()
        .expect("unzip (Debian package unzip) runs");
    assert!(status.success(), "unzip failed: {status}");
    let tested = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stdout)
    );
    let mut files = BTreeMap::new();
    walk(&out, &out, &mut files);
    files
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(name, sha256_hex(&std::fs::read(&path).unwrap()));
        }
    }
}

/// A photo taken at a known time, distinct per `width`.
fn taken_photo(width: u32) -> Vec<u8> {
    let exif = ExifSpec {
        orientation: Some(1),
        ..fixtures::phone_exif()
    };
    fixtures::jpeg(width, 300, Some(&exif))
}

#[tokio::test]
async fn the_archive_holds_each_members_view_of_every_photo_byte_for_byte() {
    let app = processing_app(&[]).await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &ben, &code).await.ok();
    // Two of Ana's photos taken in the same second (with a location), one PNG without a
    // time, and one of Ben's.
    let first = taken_photo(400);
    let second = taken_photo(401);
    let png = fixtures::png(64, 48, None);
    let bens = taken_photo(402);
    let ids = [
        upload_typed(&app, &ana, &session, &first, "image/jpeg").await,
        upload_typed(&app, &ana, &session, &second, "image/jpeg").await,
        upload_typed(&app, &ana, &session, &png, "image/png").await,
        upload_typed(&app, &ben, &session, &bens, "image/jpeg").await,
    ];
    // What Ben's phone would download for each: copies of Ana's, his own original.
    let mut bens_view = Vec::new();
    for id in &ids {
        let url = processed_url(&app, &ben, id).await;
        bens_view.push(sha256_hex(&fetch(&app, &url).await));
    }
    assert_eq!(bens_view[3], sha256_hex(&bens));
    assert_ne!(bens_view[0], sha256_hex(&first), "Ben gets Ana's copy");

    let dir = tempfile::tempdir().unwrap();
    let offered = offer(&app, &ben, &session).await;
    assert_eq!(offered["photoCount"], 4);
    assert!(offered["url"].as_str().unwrap().contains("/archive/"));
    let files = unzip(&app, &offered, dir.path()).await;
    assert_eq!(files.len(), 4, "{files:?}");
    let taken = "Beach day/2026-07-04 21.15.09";
    assert_eq!(
        files[&format!("{taken} ana.jpg")],
        bens_view[0],
        "{files:?}"
    );
    assert_eq!(files[&format!("{taken} ana (2).jpg")], bens_view[1]);
    assert_eq!(files[&format!("{taken} ben.jpg")], bens_view[3]);
    let png_name = files
        .keys()
        .find(|name| name.ends_with(" ana.png"))
        .expect("the PNG, named by its arrival");
    assert_eq!(files[png_name], bens_view[2]);
    // None of Ana's files tells Ben where she was.
    let unpacked = dir.path().join("out").join(format!("{taken} ana.jpg"));
    assert!(!fixtures::summarize(&std::fs::read(&unpacked).unwrap()).has_gps);

    // Ana's own archive has her originals as she sent them.
    let dir = tempfile::tempdir().unwrap();
    let files = unzip(&app, &offer(&app, &ana, &session).await, dir.path()).await;
    assert_eq!(files[&format!("{taken} ana.jpg")], sha256_hex(&first));
    assert_eq!(files[&format!("{taken} ana (2).jpg")], sha256_hex(&second));
    assert_eq!(files[png_name], sha256_hex(&png));
    // And Ben's photo as the copy her phone gets.
    let anas_copy = fetch(&app, &processed_url(&app, &ana, &ids[3]).await).await;
    assert_ne!(sha256_hex(&anas_copy), bens_view[3]);
    assert_eq!(files[&format!("{taken} ben.jpg")], sha256_hex(&anas_copy));
}

#[tokio::test]
async fn archive_matrix_and_what_a_link_grants() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    join(&app, &ben, &code).await.ok();
    let anas = photo_bytes(1, 4096);
    upload(&app, &ana, &session, &anas).await;
    let bens = photo_bytes(2, 3000);
    upload(&app, &ben, &session, &bens).await;

    app.gql_anon(ARCHIVE, json!({ "s": session }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&eve, ARCHIVE, json!({ "s": session }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&ana, ARCHIVE, json!({ "s": "not an id" }))
        .await
        .assert_code("BAD_USER_INPUT");
    // Without processing, only each member's own original can go in: nobody else's photo
    // has its copy without metadata yet.
    let owners = offer(&app, &ana, &session).await;
    assert_eq!(owners["photoCount"], 1);
    let members = offer(&app, &ben, &session).await;
    assert_eq!(members["photoCount"], 1);
    let dir = tempfile::tempdir().unwrap();
    let files = unzip(&app, &members, dir.path()).await;
    assert_eq!(files.values().collect::<Vec<_>>(), vec![&sha256_hex(&bens)]);

    // A photo added after the request is not in that archive.
    let later = photo_bytes(3, 2000);
    upload(&app, &ben, &session, &later).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(unzip(&app, &members, dir.path()).await.len(), 1);
    assert_eq!(offer(&app, &ben, &session).await["photoCount"], 2);

    // An altered link opens nothing; neither does Ben's once he is removed.
    let url = members["url"].as_str().unwrap();
    for bad in [
        url.replace("sig=", "sig=A"),
        url.replace(&uuid_of(&ben.id).to_string(), &uuid_of(&ana.id).to_string()),
        url.replace(".zip?", "?"),
        url.split('?').next().unwrap().to_owned(),
    ] {
        let response = app.client.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), 403, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{body}"
        );
    }
    app.gql_as(&ana, REMOVE, json!({ "s": session, "u": ben.id }))
        .await
        .ok();
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
    app.gql_as(&ben, ARCHIVE, json!({ "s": session }))
        .await
        .assert_code("NOT_FOUND");
}

#[tokio::test]
async fn blocked_members_photos_stay_out_and_an_expired_link_says_so() {
    let app = processing_app(&["--archive-url-ttl-secs=3"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    join(&app, &ben, &code).await.ok();
    let anas = upload_typed(&app, &ana, &session, &taken_photo(300), "image/jpeg").await;
    upload_typed(&app, &ben, &session, &taken_photo(301), "image/jpeg").await;
    processed_url(&app, &ben, &anas).await;
    assert_eq!(offer(&app, &ben, &session).await["photoCount"], 2);
    app.gql_as(&ben, BLOCK, json!({ "id": ana.id })).await.ok();
    let offered = offer(&app, &ben, &session).await;
    assert_eq!(offered["photoCount"], 1, "Ana's photo is hidden from Ben");
    let dir = tempfile::tempdir().unwrap();
    let files = unzip(&app, &offered, dir.path()).await;
    assert!(
        files.keys().all(|name| name.ends_with(" ben.jpg")),
        "{files:?}"
    );

    let expires =
        chrono::DateTime::parse_from_rfc3339(offered["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left <= chrono::Duration::seconds(4), "{left}");
    tokio::time::sleep(left.to_std().unwrap_or_default() + Duration::from_millis(100)).await;
    let response = app
        .client
        .get(offered["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 410);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "LINK_EXPIRED");
}

#[tokio::test]
async fn a_photo_gone_from_the_store_cuts_the_download_short_of_a_whole_zip() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session, _) = create_session(&app, &ana, "Party").await;
    upload(&app, &ana, &session, &photo_bytes(1, 200_000)).await;
    let missing = photo_bytes(2, 200_000);
    upload(&app, &ana, &session, &missing).await;
    let offered = offer(&app, &ana, &session).await;
    let key = photon::storage::photo_key(uuid_of(&session), &sha256_hex(&missing));
    app.state.store.delete(&key).await.unwrap();
    let response = app
        .client
        .get(offered["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the failure comes part way");
    assert!(
        response.bytes().await.is_err(),
        "the body fails instead of ending early"
    );
}

#[tokio::test]
async fn archives_are_rate_limited_per_user_and_their_downloads_per_ip() {
    let app = TestApp::spawn_with(&[
        "--rate-limits=true",
        "--rate-archive-per-minute=1",
        "--rate-archive-burst=2",
        "--rate-archive-download-per-minute=1",
        "--rate-archive-download-burst=1",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    join(&app, &ben, &code).await.ok();
    let first = offer(&app, &ana, &session).await;
    offer(&app, &ana, &session).await;
    let refused = app.gql_as(&ana, ARCHIVE, json!({ "s": session })).await;
    refused.assert_code("RATE_LIMITED");
    // Ben has his own allowance.
    offer(&app, &ben, &session).await;

    let url = first["url"].as_str().unwrap();
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 200);
    let second = app.client.get(url).send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
}
