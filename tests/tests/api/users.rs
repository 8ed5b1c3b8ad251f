//! `me`, profiles, look-ups and e-mail privacy.

use photon_tests::{TestApp, befriend};
use serde_json::json;

const USER: &str = "query($id: ID!) { user(id: $id) { id name email friendship } }";
const UPDATE: &str =
    "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { name avatarUrl } }";

#[tokio::test]
async fn me_is_the_signed_in_user_with_their_email() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let response = app
        .gql_as(
            &ana,
            "{ me { id name email friendship avatarUrl } }",
            json!({}),
        )
        .await;
    let me = &response.ok()["me"];
    assert_eq!(me["id"], ana.id);
    assert_eq!(me["name"], "ana");
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["friendship"], "SELF");
    assert!(me["avatarUrl"].is_null());
}

#[tokio::test]
async fn strangers_see_a_profile_without_the_email_and_friends_see_it() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;

    let response = app.gql_as(&bob, USER, json!({ "id": ana.id })).await;
    let user = &response.ok()["user"];
    assert_eq!(user["name"], "ana");
    assert!(user["email"].is_null());
    assert_eq!(user["friendship"], "NONE");

    befriend(&app, &ana, &bob).await;
    let response = app.gql_as(&bob, USER, json!({ "id": ana.id })).await;
    assert_eq!(response.ok()["user"]["email"], "ana@example.com");
    assert_eq!(response.ok()["user"]["friendship"], "FRIENDS");
}

#[tokio::test]
async fn an_unknown_user_is_null_and_a_malformed_id_is_bad_input() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = photon_tests::create_session(&app, &ana, "Beach").await;
    // A well-formed id of a user that does not exist.
    let ghost = base64_id(&format!("User:{}", uuid::Uuid::now_v7()));
    assert!(app.gql_as(&ana, USER, json!({ "id": ghost })).await.ok()["user"].is_null());
    for bad in [
        "",
        "nope",
        "VXNlcjpub3QtYS11dWlk",
        &session_id,
        &uuid::Uuid::now_v7().to_string(),
    ] {
        app.gql_as(&ana, USER, json!({ "id": bad }))
            .await
            .assert_code("BAD_USER_INPUT");
    }
}

fn base64_id(raw: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[tokio::test]
async fn find_user_by_email_matches_exactly_and_ignores_case() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let query = "query($e: String!) { findUserByEmail(email: $e) { id email } }";

    let found = app
        .gql_as(&bob, query, json!({ "e": " ANA@example.com " }))
        .await;
    assert_eq!(found.ok()["findUserByEmail"]["id"], ana.id);
    assert!(
        found.ok()["findUserByEmail"]["email"].is_null(),
        "not friends: no email"
    );

    for near_miss in ["ana@example.co", "an@example.com", "ana@example.com.evil"] {
        let response = app.gql_as(&bob, query, json!({ "e": near_miss })).await;
        assert!(response.ok()["findUserByEmail"].is_null(), "{near_miss}");
    }
    app.gql_as(&bob, query, json!({ "e": "not an email" }))
        .await
        .assert_code("BAD_USER_INPUT");
}

#[tokio::test]
async fn update_profile_changes_name_and_avatar() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;

    let response = app
        .gql_as(&ana, UPDATE, json!({ "input": { "name": "  Ana María 🌊 ", "avatarUrl": "https://cdn.example.com/a.png" } }))
        .await;
    assert_eq!(response.ok()["updateProfile"]["name"], "Ana María 🌊");
    assert_eq!(
        response.ok()["updateProfile"]["avatarUrl"],
        "https://cdn.example.com/a.png"
    );

    // Omitted fields stay; an explicit null removes the avatar.
    let response = app.gql_as(&ana, UPDATE, json!({ "input": {} })).await;
    assert_eq!(response.ok()["updateProfile"]["name"], "Ana María 🌊");
    let response = app
        .gql_as(&ana, UPDATE, json!({ "input": { "avatarUrl": null } }))
        .await;
    assert!(response.ok()["updateProfile"]["avatarUrl"].is_null());
    assert_eq!(response.ok()["updateProfile"]["name"], "Ana María 🌊");
}

#[tokio::test]
async fn update_profile_refuses_bad_values_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let long_name = "n".repeat(65);
    let bad_inputs = [
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": long_name }),
        json!({ "name": "Ana\u{0}" }),
        json!({ "name": "Ana\u{202E}" }),
        json!({ "name": "Good", "avatarUrl": "javascript:alert(1)" }),
        json!({ "avatarUrl": "file:///etc/passwd" }),
    ];
    for input in bad_inputs {
        let response = app.gql_as(&ana, UPDATE, json!({ "input": input })).await;
        response.assert_code("BAD_USER_INPUT");
    }
    let me = app
        .gql_as(&ana, "{ me { name avatarUrl } }", json!({}))
        .await;
    assert_eq!(me.ok()["me"]["name"], "ana");
    assert!(me.ok()["me"]["avatarUrl"].is_null());
}

#[tokio::test]
async fn node_finds_users_and_gives_the_same_object() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let response = app
        .gql_as(
            &ana,
            "query($id: ID!) { node(id: $id) { __typename id ... on User { name } } }",
            json!({ "id": ana.id }),
        )
        .await;
    assert_eq!(response.ok()["node"]["__typename"], "User");
    assert_eq!(response.ok()["node"]["name"], "ana");
}
