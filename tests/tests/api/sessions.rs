//! Sessions: create, join, invite, leave, end, rotate, list.

use photon_tests::{TestApp, befriend, create_session, join};
use serde_json::json;

const SESSION: &str = "query($id: ID!) { session(id: $id) { id title viewerRole inviteCode inviteUrl photoLifetimeHours endedAt owner { id } members { edges { node { role user { id } } } } } }";
const CREATE: &str = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id title photoLifetimeHours viewerRole } }";
const END: &str = "mutation($id: ID!) { endSession(sessionId: $id) { id endedAt } }";
const LEAVE: &str = "mutation($id: ID!) { leaveSession(sessionId: $id) }";
const ROTATE: &str = "mutation($id: ID!) { rotateInviteCode(sessionId: $id) { inviteCode } }";
const INVITE: &str = "mutation($id: ID!, $users: [ID!]!) { inviteToSession(sessionId: $id, userIds: $users) { id } }";
const PREVIEW: &str =
    "query($code: String!) { sessionInvite(code: $code) { title memberCount ended owner { id } } }";

#[tokio::test]
async fn the_creator_owns_a_new_session_with_a_typeable_invite() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (id, code) = create_session(&app, &ana, "  Beach day 🏖️ ").await;
    let response = app.gql_as(&ana, SESSION, json!({ "id": id })).await;
    let session = &response.ok()["session"];
    assert_eq!(session["title"], "Beach day 🏖️");
    assert_eq!(session["viewerRole"], "OWNER");
    assert_eq!(session["photoLifetimeHours"], 5);
    assert_eq!(session["owner"]["id"], ana.id);
    assert!(session["endedAt"].is_null());
    // 16 symbols in four groups, URL-safe.
    assert_eq!(code.len(), 19);
    assert!(code.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()));
    assert_eq!(
        session["inviteUrl"],
        format!("{}/join/{code}", app.base_url)
    );
    let members = session["members"]["edges"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["node"]["role"], "OWNER");
}

#[tokio::test]
async fn bad_titles_and_lifetimes_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let before = app.snapshot().await;
    let long = "x".repeat(81);
    let bad = [
        json!({ "title": "" }),
        json!({ "title": " \n\t " }),
        json!({ "title": long }),
        json!({ "title": "nul\u{0}byte" }),
        json!({ "title": "bell\u{7}" }),
        json!({ "title": "rtl\u{202E}override" }),
        json!({ "title": "ok", "photoLifetimeHours": 0 }),
        json!({ "title": "ok", "photoLifetimeHours": -5 }),
        json!({ "title": "ok", "photoLifetimeHours": 73 }),
    ];
    for input in bad {
        app.gql_as(&ana, CREATE, json!({ "input": input }))
            .await
            .assert_code("BAD_USER_INPUT");
    }
    // Values of the wrong type are refused by validation, before any resolver runs.
    for input in [
        json!({ "title": 5 }),
        json!({ "title": "ok", "photoLifetimeHours": 1e12 }),
    ] {
        app.gql_as(&ana, CREATE, json!({ "input": input }))
            .await
            .assert_code("GRAPHQL_VALIDATION_FAILED");
    }
    assert_eq!(app.snapshot().await, before);

    // Long but legal Unicode is fine: 80 characters, many bytes each.
    let emoji = "🏖".repeat(80);
    let response = app
        .gql_as(
            &ana,
            CREATE,
            json!({ "input": { "title": emoji, "photoLifetimeHours": 72 } }),
        )
        .await;
    assert_eq!(response.ok()["createSession"]["photoLifetimeHours"], 72);
}

#[tokio::test]
async fn friends_join_with_the_code_however_they_type_it() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    let typed = [
        code.clone(),
        code.to_lowercase(),
        code.replace('-', ""),
        code.replace('-', " "),
    ];
    for (i, variant) in typed.iter().enumerate() {
        let friend = app.sign_in(&format!("friend{i}@example.com")).await;
        let response = join(&app, &friend, variant).await;
        assert_eq!(response.ok()["joinSession"]["id"], id.as_str());
        assert_eq!(response.ok()["joinSession"]["viewerRole"], "MEMBER");
    }
    let members = app.gql_as(&ana, SESSION, json!({ "id": id })).await;
    assert_eq!(
        members.ok()["session"]["members"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(app.count("events", "kind = 'member_joined'").await, 4);
}

#[tokio::test]
async fn joining_twice_is_harmless() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    join(&app, &bob, &code).await.ok();
    assert_eq!(app.count("session_members", "").await, 2);
    assert_eq!(app.count("events", "kind = 'member_joined'").await, 1);
}

#[tokio::test]
async fn unknown_and_malformed_codes_are_not_found() {
    let app = TestApp::spawn().await;
    let bob = app.sign_in("bob@example.com").await;
    for code in ["0000-0000-0000-0000", "nope", "", "💥", &"A".repeat(5000)] {
        join(&app, &bob, code).await.assert_code("NOT_FOUND");
        let preview = app.gql_as(&bob, PREVIEW, json!({ "code": code })).await;
        assert!(preview.ok()["sessionInvite"].is_null());
    }
    assert_eq!(app.count("session_members", "").await, 0);
}

#[tokio::test]
async fn an_invite_previews_the_session_before_joining() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach").await;
    let preview = app.gql_as(&bob, PREVIEW, json!({ "code": code })).await;
    let invite = &preview.ok()["sessionInvite"];
    assert_eq!(invite["title"], "Beach");
    assert_eq!(invite["memberCount"], 1);
    assert_eq!(invite["ended"], false);
    assert_eq!(invite["owner"]["id"], ana.id);
    // The code is the capability: no sign-in needed to see what it leads to.
    let anonymous = app.gql_anon(PREVIEW, json!({ "code": code })).await;
    assert_eq!(anonymous.ok()["sessionInvite"], *invite);
}

#[tokio::test]
async fn a_non_member_sees_exactly_what_a_missing_session_shows() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (id, _) = create_session(&app, &ana, "Beach").await;
    let missing = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("Session:{}", uuid::Uuid::now_v7()))
    };
    for mutation_or_query in [SESSION, END, LEAVE, ROTATE] {
        let real = app
            .gql_as(&eve, mutation_or_query, json!({ "id": id }))
            .await;
        let fake = app
            .gql_as(&eve, mutation_or_query, json!({ "id": missing }))
            .await;
        assert_eq!(real.body, fake.body, "{mutation_or_query}");
    }
    let real = app
        .gql_as(&eve, INVITE, json!({ "id": id, "users": [] }))
        .await;
    let fake = app
        .gql_as(&eve, INVITE, json!({ "id": missing, "users": [] }))
        .await;
    real.assert_code("NOT_FOUND");
    assert_eq!(real.body, fake.body);
    let node = app
        .gql_as(
            &eve,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(node.ok()["node"].is_null());
}

#[tokio::test]
async fn only_the_owner_ends_a_session_and_then_nobody_joins() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();

    app.gql_as(&bob, END, json!({ "id": id }))
        .await
        .assert_code("FORBIDDEN");
    app.gql_anon(END, json!({ "id": id }))
        .await
        .assert_code("UNAUTHENTICATED");
    let ended = app.gql_as(&ana, END, json!({ "id": id })).await;
    let ended_at = ended.ok()["endSession"]["endedAt"].clone();
    assert!(ended_at.is_string());
    // Ending again changes nothing.
    let again = app.gql_as(&ana, END, json!({ "id": id })).await;
    assert_eq!(again.ok()["endSession"]["endedAt"], ended_at);
    assert_eq!(app.count("events", "kind = 'session_ended'").await, 1);

    join(&app, &carl, &code).await.assert_code("CONFLICT");
    let preview = app.gql_as(&carl, PREVIEW, json!({ "code": code })).await;
    assert_eq!(preview.ok()["sessionInvite"]["ended"], true);
    // Members still see it.
    let seen = app.gql_as(&bob, SESSION, json!({ "id": id })).await;
    assert_eq!(seen.ok()["session"]["endedAt"], ended_at);
}

#[tokio::test]
async fn members_leave_and_can_come_back_but_the_owner_cannot_leave() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();

    app.gql_as(&ana, LEAVE, json!({ "id": id }))
        .await
        .assert_code("CONFLICT");
    app.gql_anon(LEAVE, json!({ "id": id }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(
        app.gql_as(&bob, LEAVE, json!({ "id": id })).await.ok()["leaveSession"],
        true
    );
    assert!(app.gql_as(&bob, SESSION, json!({ "id": id })).await.ok()["session"].is_null());
    app.gql_as(&bob, LEAVE, json!({ "id": id }))
        .await
        .assert_code("NOT_FOUND");
    assert_eq!(app.count("events", "kind = 'member_left'").await, 1);

    join(&app, &bob, &code).await.ok();
    assert_eq!(
        app.gql_as(&bob, SESSION, json!({ "id": id })).await.ok()["session"]["viewerRole"],
        "MEMBER"
    );
    assert_eq!(app.count("session_members", "").await, 2);
}

#[tokio::test]
async fn rotating_the_code_retires_the_old_one() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    let (id, old_code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &old_code).await.ok();

    app.gql_as(&bob, ROTATE, json!({ "id": id }))
        .await
        .assert_code("FORBIDDEN");
    let rotated = app.gql_as(&ana, ROTATE, json!({ "id": id })).await;
    let new_code = rotated.ok()["rotateInviteCode"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_code, old_code);
    join(&app, &carl, &old_code).await.assert_code("NOT_FOUND");
    join(&app, &carl, &new_code).await.ok();
}

#[tokio::test]
async fn members_invite_their_friends_and_only_their_friends() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    befriend(&app, &ana, &bob).await;
    befriend(&app, &ana, &carl).await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();

    let before = app.count("events", "kind = 'member_invited'").await;
    app.gql_as(&ana, INVITE, json!({ "id": id, "users": [eve.id] }))
        .await
        .assert_code("BAD_USER_INPUT");
    app.gql_as(
        &ana,
        INVITE,
        json!({ "id": id, "users": [carl.id, eve.id] }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    app.gql_as(&ana, INVITE, json!({ "id": id, "users": ["garbage"] }))
        .await
        .assert_code("BAD_USER_INPUT");
    assert_eq!(app.count("events", "kind = 'member_invited'").await, before);

    // Bob is already a member: only Carl is invited, once, however often he is named.
    app.gql_as(
        &ana,
        INVITE,
        json!({ "id": id, "users": [bob.id, carl.id, carl.id] }),
    )
    .await
    .ok();
    assert_eq!(
        app.count(
            "events",
            "kind = 'member_invited' AND push_state = 'pending'"
        )
        .await,
        1
    );
    // Bob is a member but not Carl's... he is not friends with Eve either.
    app.gql_as(&bob, INVITE, json!({ "id": id, "users": [eve.id] }))
        .await
        .assert_code("BAD_USER_INPUT");
    app.gql_as(&eve, INVITE, json!({ "id": id, "users": [] }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_anon(INVITE, json!({ "id": id, "users": [] }))
        .await
        .assert_code("UNAUTHENTICATED");
    let too_many: Vec<String> = (0..51).map(|_| carl.id.clone()).collect();
    app.gql_as(&ana, INVITE, json!({ "id": id, "users": too_many }))
        .await
        .assert_code("BAD_USER_INPUT");
}

#[tokio::test]
async fn the_session_list_filters_by_activity_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let mut ids = Vec::new();
    for title in ["one", "two", "three", "four"] {
        ids.push(create_session(&app, &ana, title).await.0);
    }
    app.gql_as(&ana, END, json!({ "id": ids[0] })).await.ok();
    let (_, bob_code) = create_session(&app, &bob, "bob's").await;
    let _ = bob_code;

    let list = "query($active: Boolean, $first: Int, $after: String) { sessions(active: $active, first: $first, after: $after) { edges { node { id title } } pageInfo { hasNextPage endCursor } } }";
    let titles = |response: &photon_tests::GqlResponse| -> Vec<String> {
        response.ok()["sessions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.gql_as(&ana, list, json!({})).await;
    assert_eq!(titles(&all), ["four", "three", "two", "one"]);
    let active = app.gql_as(&ana, list, json!({ "active": true })).await;
    assert_eq!(titles(&active), ["four", "three", "two"]);
    let ended = app.gql_as(&ana, list, json!({ "active": false })).await;
    assert_eq!(titles(&ended), ["one"]);

    let first = app.gql_as(&ana, list, json!({ "first": 3 })).await;
    assert_eq!(titles(&first), ["four", "three", "two"]);
    assert_eq!(first.ok()["sessions"]["pageInfo"]["hasNextPage"], true);
    let cursor = first.ok()["sessions"]["pageInfo"]["endCursor"].clone();
    let rest = app
        .gql_as(&ana, list, json!({ "first": 3, "after": cursor }))
        .await;
    assert_eq!(titles(&rest), ["one"]);
    assert_eq!(rest.ok()["sessions"]["pageInfo"]["hasNextPage"], false);
    app.gql_anon(list, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test]
async fn the_member_list_pages_in_joining_order() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (id, code) = create_session(&app, &ana, "Beach").await;
    let mut expected = vec![ana.id.clone()];
    for i in 0..4 {
        let user = app.sign_in(&format!("m{i}@example.com")).await;
        join(&app, &user, &code).await.ok();
        expected.push(user.id);
    }
    let query = "query($id: ID!, $after: String) { session(id: $id) { members(first: 2, after: $after) { edges { node { user { id } } } pageInfo { hasNextPage endCursor } } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let response = app
            .gql_as(&ana, query, json!({ "id": id, "after": after }))
            .await;
        let members = response.ok()["session"]["members"].clone();
        for edge in members["edges"].as_array().unwrap() {
            seen.push(edge["node"]["user"]["id"].as_str().unwrap().to_owned());
        }
        if members["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = members["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn session_mutations_need_a_signed_in_user() {
    let app = TestApp::spawn().await;
    app.gql_anon(CREATE, json!({ "input": { "title": "x" } }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_anon(
        "mutation { joinSession(inviteCode: \"0000-0000-0000-0000\") { id } }",
        json!({}),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    assert_eq!(app.count("sessions", "").await, 0);
}

#[tokio::test]
async fn a_list_of_sessions_shows_each_ones_own_members() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let carl = app.sign_in("carl@example.com").await;
    // Three sessions with 1, 2 and 3 members: members are loaded for all of them at once.
    let (_, solo) = create_session(&app, &ana, "solo").await;
    let (_, pair) = create_session(&app, &ana, "pair").await;
    let (_, trio) = create_session(&app, &ana, "trio").await;
    let _ = solo;
    join(&app, &bob, &pair).await.ok();
    join(&app, &bob, &trio).await.ok();
    join(&app, &carl, &trio).await.ok();

    let query = "{ sessions { edges { node { title owner { name } photoCount photos(first: 1) { edges { node { id } } } members(first: 2) { edges { node { user { name } } } pageInfo { hasNextPage } } } } } }";
    let before = app.settled_statements().await;
    let response = app.gql_as(&ana, query, json!({})).await;
    // Sessions, their members, photos and photo counts, the owners, the members' users: a
    // statement each, however many sessions there are (no N+1).
    let statements = app.statements() - before;
    assert!(statements <= 6, "{statements} statements");
    let sessions = response.ok()["sessions"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let summary: Vec<(String, Vec<String>, bool)> = sessions
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            let names = node["members"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["node"]["user"]["name"].as_str().unwrap().to_owned())
                .collect();
            (
                node["title"].as_str().unwrap().to_owned(),
                names,
                node["members"]["pageInfo"]["hasNextPage"] == true,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "trio".to_owned(),
                vec!["ana".to_owned(), "bob".to_owned()],
                true
            ),
            (
                "pair".to_owned(),
                vec!["ana".to_owned(), "bob".to_owned()],
                false
            ),
            ("solo".to_owned(), vec!["ana".to_owned()], false),
        ]
    );

    for title in ["four", "five", "six"] {
        let (_, code) = create_session(&app, &ana, title).await;
        join(&app, &carl, &code).await.ok();
    }
    let before = app.settled_statements().await;
    app.gql_as(&ana, query, json!({})).await.ok();
    assert_eq!(
        app.statements() - before,
        statements,
        "twice the sessions, same statements"
    );
}
