//! Friend requests and the friend list.

use photon_tests::{GqlResponse, TestApp, TestUser, befriend};
use serde_json::{Value, json};

const SEND: &str = "mutation($id: ID!) { sendFriendRequest(userId: $id) { id status from { id } to { id } respondedAt } }";
const ACCEPT: &str =
    "mutation($id: ID!) { acceptFriendRequest(requestId: $id) { id status respondedAt } }";
const DECLINE: &str = "mutation($id: ID!) { declineFriendRequest(requestId: $id) { id status } }";
const CANCEL: &str = "mutation($id: ID!) { cancelFriendRequest(requestId: $id) { id status } }";
const REMOVE: &str = "mutation($id: ID!) { removeFriend(userId: $id) }";
const FRIENDS: &str = "query($first: Int, $after: String) { friends(first: $first, after: $after) { edges { cursor node { id name email friendship } } pageInfo { hasNextPage endCursor } } }";
const REQUESTS: &str = "query($d: FriendRequestDirection!) { friendRequests(direction: $d) { edges { node { id status from { id } to { id } } } } }";

async fn send(app: &TestApp, from: &TestUser, to: &TestUser) -> GqlResponse {
    app.gql_as(from, SEND, json!({ "id": to.id })).await
}

fn request_id(response: &GqlResponse) -> Value {
    response.ok()["sendFriendRequest"]["id"].clone()
}

async fn standing(app: &TestApp, viewer: &TestUser, other: &TestUser) -> String {
    let response = app
        .gql_as(
            viewer,
            "query($id: ID!) { user(id: $id) { friendship } }",
            json!({ "id": other.id }),
        )
        .await;
    response.ok()["user"]["friendship"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_request_accepted_makes_two_friends() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;

    let sent = send(&app, &ana, &bob).await;
    assert_eq!(sent.ok()["sendFriendRequest"]["status"], "PENDING");
    assert_eq!(sent.ok()["sendFriendRequest"]["from"]["id"], ana.id);
    assert_eq!(sent.ok()["sendFriendRequest"]["to"]["id"], bob.id);
    assert_eq!(standing(&app, &ana, &bob).await, "REQUEST_SENT");
    assert_eq!(standing(&app, &bob, &ana).await, "REQUEST_RECEIVED");

    let incoming = app.gql_as(&bob, REQUESTS, json!({ "d": "INCOMING" })).await;
    assert_eq!(
        incoming.ok()["friendRequests"]["edges"][0]["node"]["id"],
        request_id(&sent)
    );
    let outgoing = app.gql_as(&ana, REQUESTS, json!({ "d": "OUTGOING" })).await;
    assert_eq!(
        outgoing.ok()["friendRequests"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ana_incoming = app.gql_as(&ana, REQUESTS, json!({ "d": "INCOMING" })).await;
    assert!(
        ana_incoming.ok()["friendRequests"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let accepted = app
        .gql_as(&bob, ACCEPT, json!({ "id": request_id(&sent) }))
        .await;
    assert_eq!(accepted.ok()["acceptFriendRequest"]["status"], "ACCEPTED");
    assert!(accepted.ok()["acceptFriendRequest"]["respondedAt"].is_string());
    assert_eq!(standing(&app, &ana, &bob).await, "FRIENDS");

    let friends = app.gql_as(&ana, FRIENDS, json!({})).await;
    let edges = friends.ok()["friends"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], bob.id);
    assert_eq!(edges[0]["node"]["email"], "bob@example.com");
    let pending = app.gql_as(&bob, REQUESTS, json!({ "d": "INCOMING" })).await;
    assert!(
        pending.ok()["friendRequests"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn asking_someone_who_already_asked_you_accepts_their_request() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    send(&app, &ana, &bob).await.ok();
    let back = send(&app, &bob, &ana).await;
    assert_eq!(back.ok()["sendFriendRequest"]["status"], "ACCEPTED");
    assert_eq!(standing(&app, &ana, &bob).await, "FRIENDS");
    assert_eq!(app.count("friendships", "").await, 1);
}

#[tokio::test]
async fn requests_to_yourself_twice_or_to_nobody_get_clear_codes() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;

    app.gql_as(&ana, SEND, json!({ "id": ana.id }))
        .await
        .assert_code("BAD_USER_INPUT");
    send(&app, &ana, &bob).await.ok();
    send(&app, &ana, &bob).await.assert_code("CONFLICT");
    let ghost = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("User:{}", uuid::Uuid::now_v7()))
    };
    app.gql_as(&ana, SEND, json!({ "id": ghost }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&ana, SEND, json!({ "id": "garbage" }))
        .await
        .assert_code("BAD_USER_INPUT");
    assert_eq!(app.count("friendships", "").await, 1);

    let accepted = app.gql_as(&bob, ACCEPT, json!({ "id": app.gql_as(&bob, REQUESTS, json!({ "d": "INCOMING" })).await.ok()["friendRequests"]["edges"][0]["node"]["id"] })).await;
    accepted.ok();
    send(&app, &ana, &bob).await.assert_code("CONFLICT");
}

#[tokio::test]
async fn only_the_addressee_answers_and_only_the_sender_cancels() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let id = request_id(&send(&app, &ana, &bob).await);

    // A stranger cannot even learn the request exists.
    for mutation in [ACCEPT, DECLINE, CANCEL] {
        app.gql_as(&eve, mutation, json!({ "id": id }))
            .await
            .assert_code("NOT_FOUND");
    }
    let node = app
        .gql_as(
            &eve,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(node.ok()["node"].is_null());
    // The sender cannot answer their own request; the addressee cannot cancel it.
    app.gql_as(&ana, ACCEPT, json!({ "id": id }))
        .await
        .assert_code("FORBIDDEN");
    app.gql_as(&ana, DECLINE, json!({ "id": id }))
        .await
        .assert_code("FORBIDDEN");
    app.gql_as(&bob, CANCEL, json!({ "id": id }))
        .await
        .assert_code("FORBIDDEN");
    // Anonymous: sign in first.
    for mutation in [ACCEPT, DECLINE, CANCEL] {
        app.gql_anon(mutation, json!({ "id": id }))
            .await
            .assert_code("UNAUTHENTICATED");
    }
    assert_eq!(standing(&app, &ana, &bob).await, "REQUEST_SENT");
    // Both parties can see it.
    for user in [&ana, &bob] {
        let node = app
            .gql_as(
                user,
                "query($id: ID!) { node(id: $id) { ... on FriendRequest { status } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(node.ok()["node"]["status"], "PENDING");
    }
}

#[tokio::test]
async fn declining_is_silent_and_does_not_invite_a_new_request() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let id = request_id(&send(&app, &ana, &bob).await);

    let declined = app.gql_as(&bob, DECLINE, json!({ "id": id })).await;
    assert_eq!(declined.ok()["declineFriendRequest"]["status"], "DECLINED");
    assert_eq!(standing(&app, &bob, &ana).await, "NONE");
    app.gql_as(&bob, ACCEPT, json!({ "id": id }))
        .await
        .assert_code("CONFLICT");

    // Ana is not told: to her it is still pending, everywhere she looks.
    assert_eq!(standing(&app, &ana, &bob).await, "REQUEST_SENT");
    let node = app
        .gql_as(
            &ana,
            "query($id: ID!) { node(id: $id) { ... on FriendRequest { status respondedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node.ok()["node"]["status"], "PENDING");
    assert!(node.ok()["node"]["respondedAt"].is_null());
    let outgoing = app.gql_as(&ana, REQUESTS, json!({ "d": "OUTGOING" })).await;
    assert_eq!(
        outgoing.ok()["friendRequests"]["edges"][0]["node"]["status"],
        "PENDING"
    );
    let incoming = app.gql_as(&bob, REQUESTS, json!({ "d": "INCOMING" })).await;
    assert!(
        incoming.ok()["friendRequests"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Sending it again is a duplicate, and pushes nothing new.
    send(&app, &ana, &bob).await.assert_code("CONFLICT");
    assert_eq!(app.count("events", "kind = 'friend_requested'").await, 1);

    // She may withdraw it, and ask afresh later.
    let cancelled = app.gql_as(&ana, CANCEL, json!({ "id": id })).await;
    assert_eq!(cancelled.ok()["cancelFriendRequest"]["status"], "CANCELLED");
    let again = send(&app, &ana, &bob).await;
    assert_eq!(again.ok()["sendFriendRequest"]["status"], "PENDING");
    assert_eq!(app.count("events", "kind = 'friend_requested'").await, 2);
    assert_eq!(app.count("friendships", "").await, 1);
}

#[tokio::test]
async fn whoever_declined_can_change_their_mind_by_asking_back() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let id = request_id(&send(&app, &ana, &bob).await);
    app.gql_as(&bob, DECLINE, json!({ "id": id })).await.ok();
    let back = send(&app, &bob, &ana).await;
    assert_eq!(back.ok()["sendFriendRequest"]["status"], "ACCEPTED");
    assert_eq!(standing(&app, &ana, &bob).await, "FRIENDS");
}

#[tokio::test]
async fn crafted_cursors_are_bad_input_not_internal_errors() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = photon_tests::create_session(&app, &ana, "Beach").await;
    let cursor = |value: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let nil = uuid::Uuid::nil().to_string();
    let nul_name = cursor(json!(["a\u{0}", nil]));
    let ancient = cursor(json!(["1900-01-01T00:00:00Z", nil]));
    let far = cursor(json!(["+200000-01-01T00:00:00Z", nil]));
    app.gql_as(&ana, FRIENDS, json!({ "after": nul_name }))
        .await
        .assert_code("BAD_USER_INPUT");
    for after in [&ancient, &far] {
        app.gql_as(&ana, "query($a: String) { friendRequests(direction: INCOMING, after: $a) { edges { cursor } } }", json!({ "a": after }))
            .await
            .assert_code("BAD_USER_INPUT");
        app.gql_as(&ana, "query($id: ID!, $a: String) { session(id: $id) { members(after: $a) { edges { cursor } } } }", json!({ "id": session_id, "a": after }))
            .await
            .assert_code("BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn a_cancelled_request_disappears_from_both_lists() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let id = request_id(&send(&app, &ana, &bob).await);
    let cancelled = app.gql_as(&ana, CANCEL, json!({ "id": id })).await;
    assert_eq!(cancelled.ok()["cancelFriendRequest"]["status"], "CANCELLED");
    let incoming = app.gql_as(&bob, REQUESTS, json!({ "d": "INCOMING" })).await;
    assert!(
        incoming.ok()["friendRequests"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(standing(&app, &bob, &ana).await, "NONE");
}

#[tokio::test]
async fn removing_a_friend_ends_the_friendship_for_both() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    befriend(&app, &ana, &bob).await;

    assert_eq!(
        app.gql_as(&bob, REMOVE, json!({ "id": ana.id })).await.ok()["removeFriend"],
        true
    );
    assert_eq!(standing(&app, &ana, &bob).await, "NONE");
    assert_eq!(
        app.gql_as(&bob, REMOVE, json!({ "id": ana.id })).await.ok()["removeFriend"],
        false
    );
    app.gql_anon(REMOVE, json!({ "id": ana.id }))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test]
async fn a_pending_request_cannot_be_removed_as_a_friendship() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    send(&app, &ana, &bob).await.ok();
    assert_eq!(
        app.gql_as(&bob, REMOVE, json!({ "id": ana.id })).await.ok()["removeFriend"],
        false
    );
    assert_eq!(standing(&app, &bob, &ana).await, "REQUEST_RECEIVED");
}

#[tokio::test]
async fn the_friend_list_pages_by_name_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let mut names = Vec::new();
    for name in ["zoe", "bob", "carl", "dora", "eli"] {
        let friend = app.sign_in(&format!("{name}@example.com")).await;
        befriend(&app, &ana, &friend).await;
        names.push(name.to_owned());
    }
    names.sort();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let response = app
            .gql_as(&ana, FRIENDS, json!({ "first": 2, "after": after }))
            .await;
        let page = response.ok()["friends"].clone();
        for edge in page["edges"].as_array().unwrap() {
            seen.push(edge["node"]["name"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, names);
}

#[tokio::test]
async fn friend_lists_are_private_to_their_owner() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    befriend(&app, &ana, &bob).await;
    // Eve's list is her own: empty, and no way to ask for Ana's.
    let friends = app.gql_as(&eve, FRIENDS, json!({})).await;
    assert!(
        friends.ok()["friends"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.gql_anon(FRIENDS, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_anon(REQUESTS, json!({ "d": "INCOMING" }))
        .await
        .assert_code("UNAUTHENTICATED");
}
