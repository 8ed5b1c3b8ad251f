//! GraphQL over HTTP: media types, status codes, GET rules, batches, malformed requests.

use photon_tests::TestApp;
use serde_json::{Value, json};

const GRJ: &str = "application/graphql-response+json";

async fn post_raw(
    app: &TestApp,
    content_type: &str,
    accept: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_query_answers_in_the_media_type_the_client_prefers() {
    let app = TestApp::spawn().await;
    let body = r#"{"query":"{ authProviders { name } }"}"#;

    let response = post_raw(&app, "application/json", Some(GRJ), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], GRJ);

    let response = post_raw(&app, "application/json", None, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");

    let response = post_raw(
        &app,
        "application/json",
        Some("application/json, */*"),
        body,
    )
    .await;
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn a_request_nobody_can_read_is_not_acceptable() {
    let app = TestApp::spawn().await;
    let response = post_raw(
        &app,
        "application/json",
        Some("text/plain"),
        r#"{"query":"{ __typename }"}"#,
    )
    .await;
    assert_eq!(response.status(), 406);
    TestApp::read(response).await.assert_code("BAD_REQUEST");
}

#[tokio::test]
async fn parse_and_validation_errors_are_400_with_the_new_media_type_and_200_with_json() {
    let app = TestApp::spawn().await;

    let response = TestApp::read(
        post_raw(
            &app,
            "application/json",
            Some(GRJ),
            r#"{"query":"{ me { id "}"#,
        )
        .await,
    )
    .await;
    assert_eq!(response.status, 400);
    response.assert_code("GRAPHQL_PARSE_FAILED");
    assert!(
        response.body.get("data").is_none(),
        "a request error has no data"
    );

    let response = TestApp::read(
        post_raw(
            &app,
            "application/json",
            Some(GRJ),
            r#"{"query":"{ noSuchField }"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(response.status, 400);
    response.assert_code("GRAPHQL_VALIDATION_FAILED");

    let response = TestApp::read(
        post_raw(
            &app,
            "application/json",
            Some("application/json"),
            r#"{"query":"{ noSuchField }"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(response.status, 200);
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_a_code_and_write_nothing() {
    let app = TestApp::spawn().await;
    let before = app.snapshot().await;
    for body in [
        "",
        "{",
        "[]",
        "null",
        r#"{"query": 5}"#,
        r#"{"variables":{}}"#,
        "\u{0}",
    ] {
        let response = TestApp::read(post_raw(&app, "application/json", None, body).await).await;
        assert_eq!(response.status, 400, "body {body:?}");
        response.assert_code("BAD_REQUEST");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let app = TestApp::spawn().await;
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ] {
        let response = post_raw(&app, content_type, None, r#"{"query":"{ __typename }"}"#).await;
        assert_eq!(response.status(), 415, "{content_type}");
    }
    let response = post_raw(
        &app,
        "application/json; charset=utf-8",
        None,
        r#"{"query":"{ __typename }"}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let huge = format!(
        r#"{{"query":"{{ __typename }}","x":"{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let response = post_raw(&app, "application/json", None, &huge).await;
    assert_eq!(response.status(), 413);
    TestApp::read(response).await.assert_code("BAD_REQUEST");
}

#[tokio::test]
async fn queries_work_over_get() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[
            ("query", "query Me { me { email } }"),
            ("operationName", "Me"),
        ])
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let response = TestApp::read(response).await;
    assert_eq!(response.ok()["me"]["email"], "ana@example.com");
}

#[tokio::test]
async fn mutations_over_get_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let before = app.snapshot().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[(
            "query",
            r#"mutation { devSignIn(email: "eve@example.com") { accessToken } }"#,
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn batches_answer_each_operation_in_order() {
    let app = TestApp::spawn().await;
    let body = json!([
        { "query": "{ authProviders { name } }" },
        { "query": "{ me { id } }" },
    ]);
    let response = post_raw(&app, "application/json", None, &body.to_string()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body.as_array().expect("an array");
    assert_eq!(results.len(), 2);
    assert!(results[0].get("errors").is_none());
    assert_eq!(
        results[1]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn the_join_link_redirects_to_the_app() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let (_, code) = photon_tests::create_session(&app, &owner, "Beach").await;
    let response = app
        .client
        .get(app.url(&format!("/join/{code}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(
        response.headers()["location"],
        format!("photon://join?code={code}")
    );

    let response = app
        .client
        .get(app.url("/join/not-a-code"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
