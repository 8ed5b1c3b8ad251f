//! Pushes people keep on: photo pushes paced per session, each member's notification level
//! (ALL, DIGEST, NONE), the digest after the end and the warning before photos expire, all
//! against the fake FCM.

use std::time::{Duration, Instant};

use photon_tests::fake_fcm::{FakeFcm, Sent};
use photon_tests::photos::{complete, photo_bytes, stage, upload};
use photon_tests::{Backend, TestApp, TestUser, create_session, create_session_with, join};
use serde_json::json;

const SET_LEVEL: &str = "mutation($s: ID!, $level: NotificationLevel!) {
    setSessionNotifications(sessionId: $s, level: $level) { id viewerNotifications }
}";
const LEVEL: &str = "query($s: ID!) { session(id: $s) { viewerNotifications } }";

async fn spawn(interval_secs: u64, extra: &[&str]) -> (TestApp, FakeFcm) {
    let fcm = FakeFcm::start().await;
    let mut args = fcm.args();
    args.extend(
        [
            "--push-poll-ms=25".to_owned(),
            "--push-coalesce-ms=1000".to_owned(),
            format!("--push-min-interval-secs={interval_secs}"),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| (*s).to_owned())),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (TestApp::spawn_with(&args).await, fcm)
}

async fn device(app: &TestApp, user: &TestUser, token: &str) {
    app.gql_as(
        user,
        "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { id } }",
        json!({ "t": token }),
    )
    .await
    .ok();
}

async fn set_level(app: &TestApp, user: &TestUser, session: &str, level: &str) {
    let set = app
        .gql_as(user, SET_LEVEL, json!({ "s": session, "level": level }))
        .await;
    assert_eq!(
        set.ok()["setSessionNotifications"]["viewerNotifications"],
        level
    );
}

async fn settled(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("events", "push_state = 'pending'").await > 0 {
        assert!(Instant::now() < deadline, "pushes still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `token` has received `n` pushes (or fails after 20 s).
async fn delivered(fcm: &FakeFcm, token: &str, n: usize) -> Vec<Sent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = fcm.delivered_to(token);
        if sent.len() >= n {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "{token} got {} pushes, expected {n}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn only_members_set_their_own_level() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bo, &code).await.ok();
    let vars = json!({ "s": session, "level": "NONE" });
    app.gql_anon(SET_LEVEL, vars.clone())
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&eve, SET_LEVEL, vars.clone())
        .await
        .assert_code("NOT_FOUND");
    app.gql_as(&bo, SET_LEVEL, json!({ "s": session, "level": "LOUD" }))
        .await
        .assert_code("GRAPHQL_VALIDATION_FAILED");
    set_level(&app, &bo, &session, "NONE").await;
    set_level(&app, &ana, &session, "DIGEST").await;
    // Each chose for themselves only.
    for (user, level) in [(&bo, "NONE"), (&ana, "DIGEST")] {
        let seen = app.gql_as(user, LEVEL, json!({ "s": session })).await;
        assert_eq!(seen.ok()["session"]["viewerNotifications"], level);
    }
    assert_eq!(
        app.count("session_members", "notifications = 'all'").await,
        0
    );
}

/// ALL: one push for a burst, then nothing until the interval has passed, then one push
/// summing up everything held back. NONE hears nothing; DIGEST one summary at the end.
#[tokio::test]
async fn photo_pushes_are_paced_and_levels_are_kept() {
    let (app, fcm) = spawn(4, &["--expiry-warning-mins=0"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let di = app.sign_in("di@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    for (user, token) in [(&bo, "bo-phone"), (&cy, "cy-phone"), (&di, "di-phone")] {
        join(&app, user, &code).await.ok();
        device(&app, user, token).await;
    }
    device(&app, &ana, "ana-phone").await;
    set_level(&app, &cy, &session, "NONE").await;
    set_level(&app, &di, &session, "DIGEST").await;

    // Every photo is staged (slot and bytes) first, so each burst is only its completions.
    let mut staged = Vec::new();
    for (seed, who) in [
        (0, &ana),
        (1, &ana),
        (2, &bo),
        (3, &bo),
        (4, &bo),
        (5, &ana),
    ] {
        staged.push((
            stage(&app, who, &session, photo_bytes(seed, 256)).await,
            who,
        ));
    }
    for (photo, who) in &staged[..2] {
        complete(&app, *who, photo).await;
    }
    let first = delivered(&fcm, "bo-phone", 1).await;
    assert_eq!(first[0].body(), "ana added 2 photos to Beach day");
    // A second burst right away is held back for the interval, then summed up in one push.
    for (photo, who) in &staged[2..] {
        complete(&app, *who, photo).await;
    }
    let second = delivered(&fcm, "bo-phone", 2).await;
    let gap = second[1].at.duration_since(first[0].at);
    // The interval runs between claims, not arrivals: the first send also fetched FCM's
    // access token and may have reached the fake later than the claim by that much (over
    // 100 ms on a loaded machine). Unpaced, the two would arrive milliseconds apart.
    assert!(gap >= Duration::from_millis(3000), "paced by only {gap:?}");
    assert_eq!(second[1].body(), "ana added a photo to Beach day");
    let ana_heard = delivered(&fcm, "ana-phone", 1).await;
    assert_eq!(ana_heard[0].body(), "bo added 3 photos to Beach day");
    settled(&app).await;
    assert_eq!(fcm.delivered_to("bo-phone").len(), 2);
    assert_eq!(fcm.delivered_to("ana-phone").len(), 1);

    // The end: DIGEST gets its one summary, ALL and NONE nothing more.
    app.gql_as(
        &ana,
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();
    let digest = delivered(&fcm, "di-phone", 1).await;
    assert_eq!(digest[0].body(), "6 photos from ana and bo in Beach day");
    assert_eq!(digest[0].data("type"), "photos_digest");
    settled(&app).await;
    assert!(
        fcm.delivered_to("cy-phone").is_empty(),
        "NONE heard something"
    );
    assert_eq!(fcm.delivered_to("di-phone").len(), 1);
    assert_eq!(fcm.delivered_to("bo-phone").len(), 2);
}

/// A member's photo pushes leave out whoever they block: nothing when only they uploaded,
/// and a summary that neither counts nor names them otherwise.
#[tokio::test]
async fn a_blocker_hears_nothing_of_the_people_they_block() {
    let (app, fcm) = spawn(0, &["--expiry-warning-mins=0"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    for user in [&bo, &cy] {
        join(&app, user, &code).await.ok();
    }
    device(&app, &ana, "ana-phone").await;
    device(&app, &cy, "cy-phone").await;
    app.gql_as(
        &ana,
        "mutation($id: ID!) { blockUser(userId: $id) }",
        json!({ "id": bo.id }),
    )
    .await
    .ok();
    for seed in 0..2 {
        upload(&app, &bo, &session, &photo_bytes(seed, 256)).await;
    }
    settled(&app).await;
    assert_eq!(
        delivered(&fcm, "cy-phone", 1).await[0].body(),
        "bo added 2 photos to Beach day"
    );
    assert!(fcm.delivered_to("ana-phone").is_empty(), "Ana heard of Bo");
    let staged = [
        stage(&app, &bo, &session, photo_bytes(2, 256)).await,
        stage(&app, &cy, &session, photo_bytes(3, 256)).await,
    ];
    complete(&app, &bo, &staged[0]).await;
    complete(&app, &cy, &staged[1]).await;
    settled(&app).await;
    let heard = fcm.delivered_to("ana-phone");
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].body(), "cy added a photo to Beach day");
}

/// About an hour before the first photos expire, one warning per member with a device, once,
/// however many replicas look; NONE is spared.
#[tokio::test]
async fn members_are_warned_once_before_the_photos_expire() {
    let (app, fcm) = spawn(0, &[]).await;
    let replica = if app.backend == Backend::Postgres {
        let fcm_args = fcm.args();
        let mut args: Vec<&str> = fcm_args.iter().map(String::as_str).collect();
        args.extend(["--push-poll-ms=25", "--push-min-interval-secs=0"]);
        Some(app.spawn_replica(&args).await)
    } else {
        None
    };
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    // A one-hour lifetime: the first photo is within the warning's hour as soon as it lands.
    let input = json!({ "title": "Beach day", "photoLifetimeHours": 1 });
    let (session, code) = create_session_with(&app, &ana, input).await;
    for (user, token) in [(&bo, "bo-phone"), (&cy, "cy-phone")] {
        join(&app, user, &code).await.ok();
        device(&app, user, token).await;
    }
    device(&app, &ana, "ana-phone").await;
    set_level(&app, &cy, &session, "NONE").await;
    for seed in 0..3 {
        upload(&app, &ana, &session, &photo_bytes(seed, 256)).await;
    }

    let warned = |sent: &Sent| sent.data("type") == "photos_expiring";
    for token in ["ana-phone", "bo-phone"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fcm.delivered_to(token).iter().any(warned) {
            assert!(Instant::now() < deadline, "{token} was not warned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Several more looks by every replica change nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    settled(&app).await;
    for token in ["ana-phone", "bo-phone"] {
        let warnings: Vec<Sent> = fcm.delivered_to(token).into_iter().filter(warned).collect();
        assert_eq!(warnings.len(), 1, "{token}");
        assert_eq!(
            warnings[0].body(),
            "Beach day's photos disappear in an hour \u{2014} save them"
        );
        assert_eq!(warnings[0].data("sessionId"), session);
    }
    assert!(!fcm.delivered_to("cy-phone").iter().any(warned));
    assert_eq!(app.count("events", "kind = 'photos_expiring'").await, 1);

    // A longer lifetime moves the expiry out of the hour: no new warning until it comes near.
    app.gql_as(
        &ana,
        "mutation($s: ID!) { updateSession(sessionId: $s, input: { photoLifetimeHours: 5 }) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("events", "kind = 'photos_expiring'").await, 1);
    drop(replica);
}
