//! The authorization matrix: every operation on private data, tried as anonymous, as a
//! stranger, and as the user it belongs to.

use photon_tests::{GqlResponse, TestApp, TestUser, befriend, create_session, join};
use serde_json::{Value, json};

/// What one caller should get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Success: data with no errors and no null field.
    Ok,
    /// Success, and the connection at this key has edges.
    Some(&'static str),
    /// Success, but the connection at this key is empty (someone else's data is not in it).
    Empty(&'static str),
    /// Success, but the field at this key is null (e.g. a session one cannot see).
    Null(&'static str),
    /// Failure, with this code only.
    Code(&'static str),
}

fn check(case: &str, who: &str, response: &GqlResponse, expect: Expect) {
    let edges = |field: &str| response.ok()[field]["edges"].as_array().map_or(0, Vec::len);
    let body = &response.body;
    match expect {
        Expect::Ok => {
            let data = response.ok();
            let complete = data
                .as_object()
                .is_some_and(|o| o.values().all(|v| !v.is_null()));
            assert!(complete, "{case} as {who}: {data}");
        }
        Expect::Some(field) => assert!(edges(field) > 0, "{case} as {who}: {body}"),
        Expect::Empty(field) => assert_eq!(edges(field), 0, "{case} as {who}: {body}"),
        Expect::Null(field) => assert!(response.ok()[field].is_null(), "{case} as {who}: {body}"),
        Expect::Code(code) => {
            let codes = response.codes();
            let only_that = !codes.is_empty() && codes.iter().all(|c| c == code);
            assert!(only_that, "{case} as {who}: expected {code}, got {body}");
        }
    }
}

struct World {
    app: TestApp,
    /// Owns the session; friends with Bob; sent Carl and Fay friend requests.
    ana: TestUser,
    /// A member of Ana's session.
    bob: TestUser,
    /// Received Ana's friend request.
    carl: TestUser,
    /// Sent Ana a friend request.
    dan: TestUser,
    /// Knows nobody.
    eve: TestUser,
    /// Received Ana's other friend request.
    fay: TestUser,
    session_id: String,
    /// Ana → Carl.
    request_id: Value,
    /// Dan → Ana.
    request_from_dan: Value,
    /// Ana → Fay.
    request_to_fay: Value,
}

async fn send_request(app: &TestApp, from: &TestUser, to: &TestUser) -> Value {
    let sent = app
        .gql_as(
            from,
            "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
            json!({ "id": to.id }),
        )
        .await;
    sent.ok()["sendFriendRequest"]["id"].clone()
}

/// Everything the mutations below could change, as the people involved see it.
async fn world_state(w: &World) -> Value {
    let session = w
        .app
        .gql_as(
            &w.ana,
            "query($id: ID!) { session(id: $id) { inviteCode endedAt members { edges { node { role user { id } } } } } }",
            json!({ "id": w.session_id }),
        )
        .await;
    let mut requests = Vec::new();
    for user in [&w.ana, &w.carl, &w.dan, &w.fay] {
        for direction in ["INCOMING", "OUTGOING"] {
            let response = w
                .app
                .gql_as(
                    user,
                    "query($d: FriendRequestDirection!) { friendRequests(direction: $d) { edges { node { id status } } } }",
                    json!({ "d": direction }),
                )
                .await;
            requests.push(response.ok().clone());
        }
    }
    json!({ "session": session.ok().clone(), "requests": requests })
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    let dan = app.sign_in("dan@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let fay = app.sign_in("fay@example.com").await;
    befriend(&app, &ana, &bob).await;
    let (session_id, invite_code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &invite_code).await.ok();
    let request_id = send_request(&app, &ana, &carl).await;
    let request_from_dan = send_request(&app, &dan, &ana).await;
    let request_to_fay = send_request(&app, &ana, &fay).await;
    World {
        app,
        ana,
        bob,
        carl,
        dan,
        eve,
        fay,
        session_id,
        request_id,
        request_from_dan,
        request_to_fay,
    }
}

#[tokio::test]
async fn reading_private_data() {
    let w = world().await;
    let s = json!({ "id": w.session_id });
    // (name, query, variables, what a stranger gets, the rightful user, what they get)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, Value, Expect, &TestUser, Expect)> = vec![
        (
            "me",
            "{ me { id } }",
            json!({}),
            Expect::Ok,
            &w.ana,
            Expect::Ok,
        ),
        (
            "session",
            "query($id: ID!) { session(id: $id) { id } }",
            s.clone(),
            Expect::Null("session"),
            &w.bob,
            Expect::Ok,
        ),
        (
            "session members",
            "query($id: ID!) { session(id: $id) { members { edges { node { role } } } } }",
            s.clone(),
            Expect::Null("session"),
            &w.bob,
            Expect::Ok,
        ),
        (
            "session node",
            "query($id: ID!) { node(id: $id) { id } }",
            s.clone(),
            Expect::Null("node"),
            &w.bob,
            Expect::Ok,
        ),
        (
            "friend request node",
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": w.request_id }),
            Expect::Null("node"),
            &w.carl,
            Expect::Ok,
        ),
        (
            "sessions",
            "{ sessions { edges { node { id } } } }",
            json!({}),
            Expect::Empty("sessions"),
            &w.bob,
            Expect::Some("sessions"),
        ),
        (
            "friends",
            "{ friends { edges { node { id } } } }",
            json!({}),
            Expect::Empty("friends"),
            &w.bob,
            Expect::Some("friends"),
        ),
        (
            "friend requests",
            "{ friendRequests(direction: INCOMING) { edges { node { id } } } }",
            json!({}),
            Expect::Empty("friendRequests"),
            &w.carl,
            Expect::Some("friendRequests"),
        ),
        // `sessionInvite` is not here: anyone holding the code may preview it, signed in or
        // not (tests/tests/api/invite_page.rs).
        (
            "user",
            "query($id: ID!) { user(id: $id) { id } }",
            json!({ "id": w.ana.id }),
            Expect::Ok,
            &w.bob,
            Expect::Ok,
        ),
        (
            "find by email",
            "query($e: String!) { findUserByEmail(email: $e) { id } }",
            json!({ "e": "ana@example.com" }),
            Expect::Ok,
            &w.bob,
            Expect::Ok,
        ),
    ];
    for (name, query, variables, stranger, rightful, rightful_gets) in cases {
        check(
            name,
            "anonymous",
            &w.app.gql_anon(query, variables.clone()).await,
            Expect::Code("UNAUTHENTICATED"),
        );
        check(
            name,
            "stranger",
            &w.app.gql_as(&w.eve, query, variables.clone()).await,
            stranger,
        );
        check(
            name,
            "rightful user",
            &w.app.gql_as(rightful, query, variables).await,
            rightful_gets,
        );
    }
}

#[tokio::test]
async fn what_strangers_see_of_a_person() {
    let w = world().await;
    let query = "query($id: ID!) { user(id: $id) { email friendship } }";
    let vars = json!({ "id": w.ana.id });
    let stranger = w.app.gql_as(&w.eve, query, vars.clone()).await;
    assert!(stranger.ok()["user"]["email"].is_null());
    assert_eq!(stranger.ok()["user"]["friendship"], "NONE");
    let friend = w.app.gql_as(&w.bob, query, vars.clone()).await;
    assert_eq!(friend.ok()["user"]["email"], "ana@example.com");
    // A pending request is not friendship: no e-mail yet.
    let requested = w.app.gql_as(&w.carl, query, vars).await;
    assert!(requested.ok()["user"]["email"].is_null());
    assert_eq!(requested.ok()["user"]["friendship"], "REQUEST_RECEIVED");
}

/// A mutation on someone's data and who may (not) run it.
struct MutationCase<'a> {
    name: &'static str,
    mutation: &'static str,
    variables: Value,
    /// What a user unrelated to the data gets.
    stranger: &'static str,
    /// A user who can see the data but may not change it, and what they get.
    onlooker: Option<(&'a TestUser, &'static str)>,
    /// Who may run it.
    rightful: &'a TestUser,
}

#[tokio::test]
async fn changing_private_data() {
    let w = world().await;
    let s = json!({ "id": w.session_id, "users": [] });
    let r = json!({ "id": w.request_id });
    let cases = [
        MutationCase {
            name: "inviteToSession",
            mutation: "mutation($id: ID!, $users: [ID!]!) { inviteToSession(sessionId: $id, userIds: $users) { id } }",
            variables: s.clone(),
            stranger: "NOT_FOUND",
            onlooker: None,
            rightful: &w.bob,
        },
        MutationCase {
            name: "rotateInviteCode",
            mutation: "mutation($id: ID!) { rotateInviteCode(sessionId: $id) { id } }",
            variables: s.clone(),
            stranger: "NOT_FOUND",
            onlooker: Some((&w.bob, "FORBIDDEN")),
            rightful: &w.ana,
        },
        MutationCase {
            name: "acceptFriendRequest",
            mutation: "mutation($id: ID!) { acceptFriendRequest(requestId: $id) { id } }",
            variables: r.clone(),
            stranger: "NOT_FOUND",
            onlooker: Some((&w.ana, "FORBIDDEN")),
            rightful: &w.carl,
        },
        MutationCase {
            name: "declineFriendRequest",
            mutation: "mutation($id: ID!) { declineFriendRequest(requestId: $id) { id } }",
            variables: json!({ "id": w.request_from_dan }),
            stranger: "NOT_FOUND",
            onlooker: Some((&w.dan, "FORBIDDEN")),
            rightful: &w.ana,
        },
        MutationCase {
            name: "cancelFriendRequest",
            mutation: "mutation($id: ID!) { cancelFriendRequest(requestId: $id) { id } }",
            variables: json!({ "id": w.request_to_fay }),
            stranger: "NOT_FOUND",
            onlooker: Some((&w.fay, "FORBIDDEN")),
            rightful: &w.ana,
        },
        MutationCase {
            name: "leaveSession",
            mutation: "mutation($id: ID!) { leaveSession(sessionId: $id) }",
            variables: s.clone(),
            stranger: "NOT_FOUND",
            onlooker: None,
            rightful: &w.bob,
        },
        MutationCase {
            name: "endSession",
            mutation: "mutation($id: ID!) { endSession(sessionId: $id) { id } }",
            variables: s.clone(),
            stranger: "NOT_FOUND",
            onlooker: None,
            rightful: &w.ana,
        },
    ];
    for case in cases {
        let (name, mutation, vars) = (case.name, case.mutation, case.variables);
        let before = (w.app.snapshot().await, world_state(&w).await);
        let anonymous = w.app.gql_anon(mutation, vars.clone()).await;
        check(
            name,
            "anonymous",
            &anonymous,
            Expect::Code("UNAUTHENTICATED"),
        );
        let stranger = w.app.gql_as(&w.eve, mutation, vars.clone()).await;
        check(name, "stranger", &stranger, Expect::Code(case.stranger));
        if let Some((user, code)) = case.onlooker {
            let onlooker = w.app.gql_as(user, mutation, vars.clone()).await;
            check(name, "onlooker", &onlooker, Expect::Code(code));
        }
        let after = (w.app.snapshot().await, world_state(&w).await);
        assert_eq!(after, before, "{name}: refused calls changed nothing");
        let rightful = w.app.gql_as(case.rightful, mutation, vars).await;
        check(name, "rightful user", &rightful, Expect::Ok);
    }
}

#[tokio::test]
async fn profile_changes_touch_only_the_viewer() {
    let w = world().await;
    let update = "mutation { updateProfile(input: { name: \"Mallory\" }) { id } }";
    w.app
        .gql_anon(update, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let response = w.app.gql_as(&w.eve, update, json!({})).await;
    assert_eq!(response.ok()["updateProfile"]["id"], w.eve.id);
    let ana = w.app.gql_as(&w.ana, "{ me { name } }", json!({})).await;
    assert_eq!(ana.ok()["me"]["name"], "ana");
}
