//! Photos: the upload flow as a phone does it, tampering, authorization, listing, deletion.

use futures_util::future::join_all;
use photon_tests::photos::{
    COMPLETE, REQUEST, photo_bytes, put, put_to, request_slot, sha256_hex, slot_headers, upload,
};
use photon_tests::{TestApp, create_session, create_session_with, join};
use serde_json::{Value, json};

const DELETE: &str = "mutation($id: ID!) { deletePhoto(photoId: $id) }";
const PHOTO: &str = "query($id: ID!) { photo(id: $id) { id status url contentType } }";

#[tokio::test]
async fn a_photo_goes_from_phone_to_storage_to_every_member() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    let bytes = photo_bytes(1, 300_000);

    let slot = request_slot(&app, &ana, &session_id, &bytes).await;
    let slot = slot.ok()["requestPhotoUpload"].clone();
    assert_eq!(slot["photo"]["status"], "PENDING");
    assert_eq!(slot["photo"]["sha256"], sha256_hex(&bytes));
    assert!(slot["expiresAt"].is_string());
    let upload_url = slot["uploadUrl"].as_str().unwrap();
    match photon_tests::s3_public_endpoint() {
        Some(public) => assert!(upload_url.starts_with(&public), "{upload_url}"),
        None => assert!(upload_url.starts_with(&app.base_url), "{upload_url}"),
    }
    assert_eq!(put(&app, &slot, bytes.clone()).await, 200);

    let id = slot["photo"]["id"].as_str().unwrap();
    let done = app.gql_as(&ana, COMPLETE, json!({ "id": id })).await;
    let photo = &done.ok()["completePhotoUpload"];
    assert_eq!(photo["status"], "READY");
    assert_eq!(photo["uploader"]["id"], ana.id);
    let expires: chrono::DateTime<chrono::Utc> =
        photo["expiresAt"].as_str().unwrap().parse().unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((4.9..=5.0).contains(&hours), "expires in {hours} h");

    // Bob sees it in the session and downloads the very same bytes.
    let listing = app
        .gql_as(&bob, "query($id: ID!) { session(id: $id) { photoCount photos { edges { node { id url contentType byteSize uploader { id } } } } } }", json!({ "id": session_id }))
        .await;
    let session = &listing.ok()["session"];
    assert_eq!(session["photoCount"], 1);
    let node = &session["photos"]["edges"][0]["node"];
    assert_eq!(node["id"], id);
    // Bob's URL is the copy without metadata (made by processing, tested in `processing::`);
    // Ana's is her original, byte for byte.
    assert!(node["url"].as_str().unwrap().contains("/shared"), "{node}");
    let own = app.gql_as(&ana, PHOTO, json!({ "id": id })).await;
    let download = app
        .client
        .get(own.ok()["photo"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "image/jpeg");
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_eq!(
        app.count("events", "kind = 'photo_added' AND push_state = 'pending'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_same_bytes_are_the_same_photo() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    let bytes = photo_bytes(2, 1000);

    let first = request_slot(&app, &ana, &session_id, &bytes).await;
    let again = request_slot(&app, &ana, &session_id, &bytes).await;
    let first_id = first.ok()["requestPhotoUpload"]["photo"]["id"].clone();
    assert_eq!(again.ok()["requestPhotoUpload"]["photo"]["id"], first_id);
    assert!(
        again.ok()["requestPhotoUpload"]["uploadUrl"].is_string(),
        "still pending: upload again"
    );

    let id = upload(&app, &ana, &session_id, &bytes).await;
    assert_eq!(json!(id), first_id);
    let after = request_slot(&app, &bob, &session_id, &bytes).await;
    let slot = &after.ok()["requestPhotoUpload"];
    assert_eq!(slot["photo"]["id"], first_id);
    assert_eq!(slot["photo"]["status"], "READY");
    assert!(slot["uploadUrl"].is_null());
    assert!(slot["uploadHeaders"].as_array().unwrap().is_empty());

    // Completing again is harmless: one photo, one announcement.
    app.gql_as(&ana, COMPLETE, json!({ "id": id })).await.ok();
    assert_eq!(app.count("photos", "").await, 1);
    assert_eq!(app.count("events", "kind = 'photo_added'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_identical_requests_leave_one_row() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(3, 1000);
    let responses = join_all((0..20).map(|_| request_slot(&app, &ana, &session_id, &bytes))).await;
    let ids: std::collections::HashSet<String> = responses
        .iter()
        .map(|r| {
            r.ok()["requestPhotoUpload"]["photo"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("photos", "").await, 1);
}

#[tokio::test]
async fn storage_refuses_anything_but_the_declared_bytes() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(4, 5000);
    let slot =
        request_slot(&app, &ana, &session_id, &bytes).await.ok()["requestPhotoUpload"].clone();
    let url = slot["uploadUrl"].as_str().unwrap().to_owned();

    let mut wrong = bytes.clone();
    wrong[10] ^= 0xff;
    assert!(
        put(&app, &slot, wrong).await.is_client_error(),
        "other bytes, same length"
    );
    assert!(
        put(&app, &slot, bytes[..4000].to_vec())
            .await
            .is_client_error(),
        "shorter"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(put(&app, &slot, longer).await.is_client_error(), "longer");
    // Each of these sends every header the slot names, so only the tampered part differs.
    let headers = slot_headers(&slot);
    let with_type = |ty: &str| {
        let mut h = headers.clone();
        h.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        h.push(("content-type".to_owned(), ty.to_owned()));
        h
    };
    let refused = |status: reqwest::StatusCode| status.is_client_error();
    let wrong_type = put_to(&app, &url, &with_type("image/png"), bytes.clone()).await;
    assert!(refused(wrong_type), "another type: {wrong_type}");
    let unsigned = put_to(
        &app,
        url.split('?').next().unwrap(),
        &headers,
        bytes.clone(),
    )
    .await;
    assert!(refused(unsigned), "no signature: {unsigned}");
    // Both stores put the signature last: change its last character.
    let mut forged = url.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let forged = put_to(&app, &forged, &headers, bytes.clone()).await;
    assert!(refused(forged), "an altered signature: {forged}");
    // The same signature for another key (only the path changes): refused.
    let (path, query) = url.split_once('?').unwrap();
    let other_key = format!(
        "{}?{query}",
        path.replace(&sha256_hex(&bytes), &sha256_hex(b"other"))
    );
    let replayed = put_to(&app, &other_key, &headers, bytes.clone()).await;
    assert!(refused(replayed), "replayed for another key: {replayed}");

    // Nothing arrived, so completing fails cleanly and the slot stays pending.
    let id = slot["photo"]["id"].as_str().unwrap();
    app.gql_as(&ana, COMPLETE, json!({ "id": id }))
        .await
        .assert_code("BAD_USER_INPUT");
    let photo = app.gql_as(&ana, PHOTO, json!({ "id": id })).await;
    assert_eq!(photo.ok()["photo"]["status"], "PENDING");
    assert_eq!(app.count("events", "kind = 'photo_added'").await, 0);

    // The genuine upload still works.
    assert_eq!(put(&app, &slot, bytes).await, 200);
    app.gql_as(&ana, COMPLETE, json!({ "id": id })).await.ok();
}

#[tokio::test]
async fn an_expired_upload_url_is_refused() {
    let app = TestApp::spawn_with(&["--upload-url-ttl-secs=1"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(5, 100);
    let slot =
        request_slot(&app, &ana, &session_id, &bytes).await.ok()["requestPhotoUpload"].clone();
    // The expiry has whole-second resolution: two seconds are surely past it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(put(&app, &slot, bytes).await, 403);
}

#[tokio::test]
async fn bad_upload_requests_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let sha = sha256_hex(b"x");
    let before = app.snapshot().await;
    let bad = [
        json!({ "sessionId": session_id, "sha256": "abc", "contentType": "image/jpeg", "byteSize": 1 }),
        json!({ "sessionId": session_id, "sha256": "g".repeat(64), "contentType": "image/jpeg", "byteSize": 1 }),
        json!({ "sessionId": session_id, "sha256": sha, "contentType": "application/pdf", "byteSize": 1 }),
        json!({ "sessionId": session_id, "sha256": sha, "contentType": "image/jpeg", "byteSize": 0 }),
        json!({ "sessionId": session_id, "sha256": sha, "contentType": "image/jpeg", "byteSize": 25 * 1024 * 1024 + 1 }),
        json!({ "sessionId": "nope", "sha256": sha, "contentType": "image/jpeg", "byteSize": 1 }),
    ];
    for input in bad {
        app.gql_as(&ana, REQUEST, json!({ "input": input }))
            .await
            .assert_code("BAD_USER_INPUT");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn only_members_of_a_live_session_add_photos() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let input = json!({ "title": "Beach", "lateUploadHours": 0 });
    let (session_id, _) = create_session_with(&app, &ana, input).await;
    let bytes = photo_bytes(6, 100);
    request_slot(&app, &eve, &session_id, &bytes)
        .await
        .assert_code("NOT_FOUND");
    let input = json!({ "sessionId": session_id, "sha256": sha256_hex(&bytes), "contentType": "image/jpeg", "byteSize": 100 });
    app.gql_anon(REQUEST, json!({ "input": input }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(
        &ana,
        "mutation($id: ID!) { endSession(sessionId: $id) { id } }",
        json!({ "id": session_id }),
    )
    .await
    .ok();
    request_slot(&app, &ana, &session_id, &bytes)
        .await
        .assert_code("UPLOAD_WINDOW_CLOSED");
    assert_eq!(app.count("photos", "").await, 0);
}

#[tokio::test]
async fn who_may_see_complete_and_delete_a_photo() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    join(&app, &carl, &code).await.ok();

    // A pending photo is its uploader's alone.
    let bytes = photo_bytes(7, 100);
    let slot =
        request_slot(&app, &bob, &session_id, &bytes).await.ok()["requestPhotoUpload"].clone();
    let pending = slot["photo"]["id"].as_str().unwrap().to_owned();
    assert!(
        app.gql_as(&carl, PHOTO, json!({ "id": pending }))
            .await
            .ok()["photo"]
            .is_null()
    );
    assert_eq!(put(&app, &slot, bytes).await, 200);
    app.gql_as(&carl, COMPLETE, json!({ "id": pending }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&eve, COMPLETE, json!({ "id": pending }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_anon(COMPLETE, json!({ "id": pending }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&bob, COMPLETE, json!({ "id": pending }))
        .await
        .ok();

    // Ready: every member sees it, nobody else does.
    assert_eq!(
        app.gql_as(&carl, PHOTO, json!({ "id": pending }))
            .await
            .ok()["photo"]["status"],
        "READY"
    );
    assert!(app.gql_as(&eve, PHOTO, json!({ "id": pending })).await.ok()["photo"].is_null());
    app.gql_anon(PHOTO, json!({ "id": pending }))
        .await
        .assert_code("UNAUTHENTICATED");

    // Deleting: not a stranger, not another member; the uploader or the owner.
    app.gql_as(&eve, DELETE, json!({ "id": pending }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&carl, DELETE, json!({ "id": pending }))
        .await
        .assert_code("FORBIDDEN");
    app.gql_anon(DELETE, json!({ "id": pending }))
        .await
        .assert_code("UNAUTHENTICATED");
    let url = app.gql_as(&bob, PHOTO, json!({ "id": pending })).await.ok()["photo"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.gql_as(&bob, DELETE, json!({ "id": pending }))
            .await
            .ok()["deletePhoto"],
        true
    );
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        404,
        "the object is gone"
    );
    assert_eq!(app.count("events", "kind = 'photo_deleted'").await, 1);
    app.gql_as(&bob, DELETE, json!({ "id": pending }))
        .await
        .assert_code("NOT_FOUND");

    let carls = upload(&app, &carl, &session_id, &photo_bytes(8, 100)).await;
    assert_eq!(
        app.gql_as(&ana, DELETE, json!({ "id": carls })).await.ok()["deletePhoto"],
        true
    );
    assert_eq!(app.count("photos", "").await, 0);
}

#[tokio::test]
async fn another_sessions_photos_are_not_found() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (anas, _) = create_session(&app, &ana, "Ana's").await;
    let (eves, _) = create_session(&app, &eve, "Eve's").await;
    let photo = upload(&app, &ana, &anas, &photo_bytes(9, 100)).await;
    let _ = eves;
    assert!(app.gql_as(&eve, PHOTO, json!({ "id": photo })).await.ok()["photo"].is_null());
    let node = app
        .gql_as(
            &eve,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": photo }),
        )
        .await;
    assert!(node.ok()["node"].is_null());
    app.gql_as(&eve, COMPLETE, json!({ "id": photo }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&eve, DELETE, json!({ "id": photo }))
        .await
        .assert_code("NOT_FOUND");
}

#[tokio::test]
async fn photos_list_newest_first_and_page() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let mut ids = Vec::new();
    for seed in 10..15 {
        ids.push(upload(&app, &ana, &session_id, &photo_bytes(seed, 50)).await);
    }
    ids.reverse();
    let query = "query($id: ID!, $after: String) { session(id: $id) { photos(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let response = app
            .gql_as(&ana, query, json!({ "id": session_id, "after": after }))
            .await;
        let photos = response.ok()["session"]["photos"].clone();
        for edge in photos["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        if photos["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = photos["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ids);
}

async fn sweep(app: &TestApp, hours_from_now: i64) -> photon::jobs::sweeper::SweepReport {
    app.sweep_at(chrono::Utc::now() + chrono::Duration::hours(hours_from_now))
        .await
}

#[tokio::test]
async fn the_sweeper_removes_expired_photos_and_abandoned_slots() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let ready = upload(&app, &ana, &session_id, &photo_bytes(20, 100)).await;
    let url = app.gql_as(&ana, PHOTO, json!({ "id": ready })).await.ok()["photo"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let abandoned = photo_bytes(21, 100);
    request_slot(&app, &ana, &session_id, &abandoned).await.ok();

    // Nothing is due yet.
    let report = sweep(&app, 0).await;
    assert_eq!((report.expired_photos, report.abandoned_slots), (0, 0));
    assert_eq!(app.count("photos", "").await, 2);

    // Six hours later the 5-hour photo has expired and the slot was long abandoned.
    let report = sweep(&app, 6).await;
    assert_eq!(
        (
            report.expired_photos,
            report.abandoned_slots,
            report.failures
        ),
        (1, 1, 0)
    );
    assert_eq!(app.count("photos", "").await, 0);
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        404,
        "the object is gone"
    );
    assert_eq!(app.count("events", "kind = 'photo_deleted'").await, 1);

    // Two days on, the events are past retention too.
    let report = sweep(&app, 48).await;
    assert!(report.events > 0);
    assert_eq!(app.count("events", "").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_at_once_remove_each_photo_once() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    for seed in 30..35 {
        upload(&app, &ana, &session_id, &photo_bytes(seed, 100)).await;
    }
    let (a, b) = tokio::join!(sweep(&app, 6), sweep(&app, 6));
    assert_eq!(a.expired_photos + b.expired_photos, 5);
    assert_eq!(app.count("photos", "").await, 0);
    assert_eq!(app.count("events", "kind = 'photo_deleted'").await, 5);
}

#[tokio::test]
async fn a_second_member_with_the_same_bytes_takes_over_a_pending_slot() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    let bytes = photo_bytes(40, 100);
    request_slot(&app, &ana, &session_id, &bytes).await.ok();
    // Ana's upload never finishes; Bob has the same picture and uploads it.
    let slot =
        request_slot(&app, &bob, &session_id, &bytes).await.ok()["requestPhotoUpload"].clone();
    assert_eq!(put(&app, &slot, bytes.clone()).await, 200);
    let done = app
        .gql_as(&bob, COMPLETE, json!({ "id": slot["photo"]["id"] }))
        .await;
    assert_eq!(done.ok()["completePhotoUpload"]["uploader"]["id"], bob.id);
    // Ana asking again finds it ready: nothing to upload.
    let again = request_slot(&app, &ana, &session_id, &bytes).await;
    assert!(again.ok()["requestPhotoUpload"]["uploadUrl"].is_null());
    assert_eq!(app.count("photos", "").await, 1);
}

#[tokio::test]
async fn an_expired_photo_is_gone_before_the_sweeper_comes_and_can_be_shared_again() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(41, 100);
    let id = upload(&app, &ana, &session_id, &bytes).await;
    let past = match app.backend {
        photon_tests::Backend::Postgres => "'2001-01-01 00:00:00+00'",
        photon_tests::Backend::Sqlite => "'2001-01-01T00:00:00+00:00'",
    };
    let sql = format!("UPDATE photos SET expires_at = {past}");
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, &sql)
        .await
        .unwrap();

    assert!(app.gql_as(&ana, PHOTO, json!({ "id": id })).await.ok()["photo"].is_null());
    let session = app
        .gql_as(
            &ana,
            "query($id: ID!) { session(id: $id) { photoCount photos { edges { cursor } } } }",
            json!({ "id": session_id }),
        )
        .await;
    assert_eq!(session.ok()["session"]["photoCount"], 0);
    assert!(
        session.ok()["session"]["photos"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Sharing the same picture again makes a new photo, with a place to upload it.
    let again = request_slot(&app, &ana, &session_id, &bytes).await;
    let slot = &again.ok()["requestPhotoUpload"];
    assert_ne!(slot["photo"]["id"], json!(id));
    assert!(slot["uploadUrl"].is_string());
    assert_eq!(app.count("photos", "").await, 1);
}

#[tokio::test]
async fn a_mismatched_request_for_existing_bytes_changes_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    let bytes = photo_bytes(42, 100);
    let slot =
        request_slot(&app, &ana, &session_id, &bytes).await.ok()["requestPhotoUpload"].clone();
    let lying = json!({ "sessionId": session_id, "sha256": sha256_hex(&bytes), "contentType": "image/jpeg", "byteSize": 101 });
    app.gql_as(&bob, REQUEST, json!({ "input": lying }))
        .await
        .assert_code("BAD_USER_INPUT");
    // The slot is still Ana's to finish.
    assert_eq!(put(&app, &slot, bytes).await, 200);
    let done = app
        .gql_as(&ana, COMPLETE, json!({ "id": slot["photo"]["id"] }))
        .await;
    assert_eq!(done.ok()["completePhotoUpload"]["uploader"]["id"], ana.id);
}
