//! Races settled by constraints: many identical requests at once leave one row.

use futures_util::future::join_all;
use photon_tests::{TestApp, create_session, join};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_joins_leave_one_membership() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach").await;

    let responses = join_all((0..20).map(|_| join(&app, &bob, &code))).await;
    for response in &responses {
        assert_eq!(response.ok()["joinSession"]["viewerRole"], "MEMBER");
    }
    assert_eq!(app.count("session_members", "role = 'member'").await, 1);
    assert_eq!(app.count("events", "kind = 'member_joined'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_friend_requests_leave_one_row() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let send = "mutation($id: ID!) { sendFriendRequest(userId: $id) { status } }";

    let responses =
        join_all((0..20).map(|_| app.gql_as(&ana, send, json!({ "id": bob.id })))).await;
    let succeeded = responses
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .count();
    assert_eq!(succeeded, 1, "exactly one request is new");
    for response in responses.iter().filter(|r| r.body.get("errors").is_some()) {
        response.assert_code("CONFLICT");
    }
    assert_eq!(app.count("friendships", "").await, 1);
    assert_eq!(app.count("events", "kind = 'friend_requested'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_friend_requests_become_one_friendship() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let send = "mutation($id: ID!) { sendFriendRequest(userId: $id) { status } }";

    let requests = (0..10).flat_map(|_| {
        [
            app.gql_as(&ana, send, json!({ "id": bob.id })),
            app.gql_as(&bob, send, json!({ "id": ana.id })),
        ]
    });
    let responses = join_all(requests).await;
    for response in responses.iter().filter(|r| r.body.get("errors").is_some()) {
        response.assert_code("CONFLICT");
    }
    assert_eq!(app.count("friendships", "").await, 1);
    assert_eq!(app.count("friendships", "status = 'accepted'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_sign_ins_with_one_email_make_one_account() {
    let app = TestApp::spawn().await;
    let users = join_all((0..10).map(|_| app.sign_in("ana@example.com"))).await;
    assert!(users.iter().all(|u| u.id == users[0].id));
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nobody_joins_after_the_session_ended_even_when_racing_the_end() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    let mut guests = Vec::new();
    for i in 0..10 {
        guests.push(app.sign_in(&format!("guest{i}@example.com")).await);
    }
    let end = app.gql_as(
        &ana,
        "mutation($id: ID!) { endSession(sessionId: $id) { id } }",
        json!({ "id": id }),
    );
    let joins = join_all(guests.iter().map(|g| join(&app, g, &code)));
    let (ended, joined) = tokio::join!(end, joins);
    ended.ok();
    for response in joined.iter().filter(|r| r.body.get("errors").is_some()) {
        response.assert_code("CONFLICT");
    }
    // Whatever the interleaving, the log never has a join after the end.
    let late_joins = app
        .count(
            "events",
            "kind = 'member_joined' AND id > (SELECT id FROM events WHERE kind = 'session_ended')",
        )
        .await;
    assert_eq!(late_joins, 0);
    let joined_ok = joined
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .count() as i64;
    assert_eq!(
        app.count("session_members", "role = 'member'").await,
        joined_ok
    );
}
