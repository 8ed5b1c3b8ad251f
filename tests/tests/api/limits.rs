//! Query limits and hostile arguments.

use photon_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn over_deep_queries_are_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let mut query = "name".to_owned();
    for _ in 0..20 {
        query = format!("ofType {{ {query} }}");
    }
    let query = format!("{{ __schema {{ types {{ fields {{ type {{ {query} }} }} }} }} }}");
    app.gql_as(&ana, &query, json!({}))
        .await
        .assert_code("GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn graphiql_introspection_fits_within_the_limits() {
    let app = TestApp::spawn().await;
    // The depth of GraphiQL's introspection query (TypeRef nests ofType seven times).
    let mut type_ref = "kind name".to_owned();
    for _ in 0..7 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    let query = format!(
        "{{ __schema {{ types {{ name fields(includeDeprecated: true) {{ name args {{ name type {{ {type_ref} }} }} type {{ {type_ref} }} }} }} }} }}"
    );
    let response = app.gql_anon(&query, json!({})).await;
    assert!(response.ok()["__schema"]["types"].as_array().unwrap().len() > 10);
}

#[tokio::test]
async fn over_complex_queries_are_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    // 100 aliases of a 100-item list of sessions, each listing 100 members.
    let field = "sessions(first: 100) { edges { node { members(first: 100) { edges { node { user { name } } } } } } }";
    let aliases: String = (0..100).map(|i| format!("a{i}: {field} ")).collect();
    let response = app
        .gql_as(&ana, &format!("{{ {aliases} }}"), json!({}))
        .await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    // Many cheap aliases add up too.
    let aliases: String = (0..3000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    app.gql_as(&ana, &format!("{{ {aliases} }}"), json!({}))
        .await
        .assert_code("GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn page_sizes_are_bounded() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    for first in [-1, 101, 1_000_000] {
        app.gql_as(
            &ana,
            "query($f: Int) { friends(first: $f) { edges { cursor } } }",
            json!({ "f": first }),
        )
        .await
        .assert_code("BAD_USER_INPUT");
    }
    let zero = app
        .gql_as(
            &ana,
            "{ friends(first: 0) { edges { cursor } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert!(zero.ok()["friends"]["edges"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn forged_cursors_are_bad_input() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    for after in ["", "!!!", "bm90IGpzb24", "e30", "WzEsMiwzXQ"] {
        app.gql_as(
            &ana,
            "query($a: String) { sessions(after: $a) { edges { cursor } } }",
            json!({ "a": after }),
        )
        .await
        .assert_code("BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn internal_errors_are_masked_and_coded() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    // Break the database under the server: the error must not reach the client verbatim.
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, "DROP TABLE friendships")
        .await
        .unwrap();
    let response = app
        .gql_as(&ana, "{ friends { edges { cursor } } }", json!({}))
        .await;
    response.assert_code("INTERNAL_SERVER_ERROR");
    let text = response.body.to_string();
    assert!(
        !text.to_lowercase().contains("friendships"),
        "leaked: {text}"
    );
    assert!(!text.to_lowercase().contains("select"), "leaked: {text}");
    assert!(response.headers.contains_key("x-request-id"));
}
