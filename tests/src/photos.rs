//! The photo upload flow as a phone does it: slot, PUT, completion.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{GqlResponse, TestApp, TestUser};

pub const REQUEST: &str = "mutation($input: RequestPhotoUploadInput!) { requestPhotoUpload(input: $input) { photo { id status sha256 byteSize contentType } uploadUrl uploadHeaders { name value } expiresAt } }";
pub const COMPLETE: &str = "mutation($id: ID!) { completePhotoUpload(photoId: $id) { id status expiresAt url uploader { id } } }";

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Some bytes that stand for a photo (distinct per seed).
pub fn photo_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub async fn request_slot(
    app: &TestApp,
    user: &TestUser,
    session_id: &str,
    bytes: &[u8],
) -> GqlResponse {
    let input = json!({
        "sessionId": session_id,
        "sha256": sha256_hex(bytes),
        "contentType": "image/jpeg",
        "byteSize": bytes.len(),
    });
    app.gql_as(user, REQUEST, json!({ "input": input })).await
}

/// PUTs `body` to a slot's URL with its headers, as the app would.
pub async fn put(app: &TestApp, slot: &Value, body: Vec<u8>) -> reqwest::StatusCode {
    put_to(
        app,
        slot["uploadUrl"].as_str().unwrap(),
        &slot_headers(slot),
        body,
    )
    .await
}

pub fn slot_headers(slot: &Value) -> Vec<(String, String)> {
    slot["uploadHeaders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// PUTs `body` to `url` with exactly `headers`.
pub async fn put_to(
    app: &TestApp,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> reqwest::StatusCode {
    let mut request = app.client.put(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

/// Uploads `bytes` to `session_id` as `user` all the way to READY; returns the photo id.
pub async fn upload(app: &TestApp, user: &TestUser, session_id: &str, bytes: &[u8]) -> String {
    let slot = request_slot(app, user, session_id, bytes).await;
    let slot = slot.ok()["requestPhotoUpload"].clone();
    assert_eq!(put(app, &slot, bytes.to_vec()).await, 200);
    let id = slot["photo"]["id"].as_str().unwrap().to_owned();
    let done = app.gql_as(user, COMPLETE, json!({ "id": id })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    id
}
