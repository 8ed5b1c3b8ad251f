//! The photo upload flow as a phone does it: slot, PUT, completion. Every helper takes the
//! server (a `TestApp` or a bare [`Client`]) and the user (a `TestUser` or an access token),
//! so the tests and the benches upload the same way.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Bearer, Client, GqlResponse};

/// A slot with everything a test may want to look at.
pub const REQUEST: &str = "mutation($input: RequestPhotoUploadInput!) { requestPhotoUpload(input: $input) { photo { id status sha256 byteSize contentType } uploadUrl uploadHeaders { name value } expiresAt } }";
pub const COMPLETE: &str = "mutation($id: ID!) { completePhotoUpload(photoId: $id) { id status expiresAt url uploader { id } } }";

/// What [`upload`] selects: only what the flow needs, so the benches that time it measure the
/// flow and not extra fields (a download URL to sign, the uploader to load).
pub const FLOW_REQUEST: &str = "mutation($input: RequestPhotoUploadInput!) { requestPhotoUpload(input: $input) { photo { id } uploadUrl uploadHeaders { name value } } }";
pub const FLOW_COMPLETE: &str =
    "mutation($id: ID!) { completePhotoUpload(photoId: $id) { status } }";

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

/// Like [`photo_bytes`], for more photos than a `u8` numbers (at least 8 bytes long: the same
/// bytes would be the same photo).
pub fn nth_photo_bytes(k: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u8).wrapping_mul(31) ^ ((k >> (8 * (j % 8))) as u8))
        .collect()
}

/// Requests a slot for `bytes`, selecting [`REQUEST`].
pub async fn request_slot(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    session_id: &str,
    bytes: &[u8],
) -> GqlResponse {
    request_slot_selecting(api, user, REQUEST, session_id, bytes, "image/jpeg").await
}

async fn request_slot_selecting(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    document: &str,
    session_id: &str,
    bytes: &[u8],
    content_type: &str,
) -> GqlResponse {
    let input = json!({
        "sessionId": session_id,
        "sha256": sha256_hex(bytes),
        "contentType": content_type,
        "byteSize": bytes.len(),
    });
    api.as_ref()
        .as_user(user)
        .gql(document, json!({ "input": input }))
        .await
}

/// PUTs `body` to a slot's URL with its headers, as the app would.
pub async fn put(api: &impl AsRef<Client>, slot: &Value, body: Vec<u8>) -> reqwest::StatusCode {
    put_to(
        api,
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
    api: &impl AsRef<Client>,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> reqwest::StatusCode {
    let mut request = api.as_ref().http().put(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

/// The first half of an upload: a slot for `bytes` in `session_id`, and the bytes PUT to it.
/// Returns the photo id, which [`complete`] then makes READY.
pub async fn stage(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    session_id: &str,
    bytes: Vec<u8>,
) -> String {
    stage_typed(api, user, session_id, bytes, "image/jpeg").await
}

/// [`stage`] for bytes of another media type.
pub async fn stage_typed(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    session_id: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> String {
    let slot =
        request_slot_selecting(api, user, FLOW_REQUEST, session_id, &bytes, content_type).await;
    let slot = &slot.ok()["requestPhotoUpload"];
    let status = put(api, slot, bytes).await;
    assert!(status.is_success(), "upload refused: {status}");
    slot["photo"]["id"].as_str().unwrap().to_owned()
}

/// Completes a staged photo, expecting it READY.
pub async fn complete(api: &impl AsRef<Client>, user: &(impl Bearer + ?Sized), photo_id: &str) {
    let done = api
        .as_ref()
        .as_user(user)
        .gql(FLOW_COMPLETE, json!({ "id": photo_id }))
        .await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
}

/// Uploads `bytes` to `session_id` as `user` all the way to READY; returns the photo id.
pub async fn upload(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    session_id: &str,
    bytes: &[u8],
) -> String {
    let id = stage(api, user, session_id, bytes.to_vec()).await;
    complete(api, user, &id).await;
    id
}

/// [`upload`] for bytes of another media type.
pub async fn upload_typed(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    session_id: &str,
    bytes: &[u8],
    content_type: &str,
) -> String {
    let id = stage_typed(api, user, session_id, bytes.to_vec(), content_type).await;
    complete(api, user, &id).await;
    id
}
