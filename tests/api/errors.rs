//! Bad input gets a clear error with its code; failures never leak SQL.

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{api_test, helpers::first_error};

api_test!(first_over_100_is_bad_input, [sqlite, postgres], |app| {
    let response = app.gql("{ shops(first: 101) { totalCount } }", json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("100"), "{message}");
    let response = app.gql("{ shops(first: -1) { totalCount } }", json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
    let response = app.gql("{ shops(first: 1, last: 1) { totalCount } }", json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
});

api_test!(a_bad_cursor_is_bad_input, [sqlite, postgres], |app| {
    let response = app.gql(r#"{ shops(after: "not-a-cursor") { totalCount } }"#, json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("after") && message.contains("cursor"), "{message}");
});

api_test!(unknown_and_malformed_ids, [sqlite, postgres], |app| {
    app.seed(1, 1, 1, 0).await;
    let data = app.data("{ shops { nodes { id barbers { nodes { id } } } } }", json!({})).await;
    let shop_id = data["shops"]["nodes"][0]["id"].as_str().unwrap().to_owned();

    // A well-formed id of a shop that does not exist.
    use base64::Engine;
    let missing = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("Shop:999999");
    let response =
        app.gql("query($id: ID!) { shop(id: $id) { name } }", json!({ "id": missing })).await;
    assert_eq!(first_error(&response).0, "NOT_FOUND");
    assert!(response["data"]["shop"].is_null());
    let response =
        app.gql("query($id: ID!) { node(id: $id) { id } }", json!({ "id": missing })).await;
    assert_eq!(first_error(&response).0, "NOT_FOUND");
    let response = app.gql(r#"{ shop(slug: "no-such-shop") { name } }"#, json!({})).await;
    assert_eq!(first_error(&response).0, "NOT_FOUND");

    // Not an id at all, or the id of another kind of object.
    let response = app.gql(r#"{ barber(id: "garbage!") { displayName } }"#, json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
    let response = app
        .gql("query($id: ID!) { barber(id: $id) { displayName } }", json!({ "id": shop_id }))
        .await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("Barber") && message.contains("Shop"), "{message}");

    // Neither or both of id and slug.
    let response = app.gql("{ shop { name } }", json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
});

api_test!(invalid_documents_are_bad_input, [sqlite, postgres], |app| {
    let response = app.gql("{ shops { ", json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
    let response = app.gql("{ shops { noSuchField } }", json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
    let response = app.gql(r#"{ shops(first: "ten") { totalCount } }"#, json!({})).await;
    assert_eq!(first_error(&response).0, "BAD_USER_INPUT");
});

api_test!(an_internal_failure_is_generic_and_leaks_no_sql, [sqlite, postgres], |app| {
    app.seed(1, 1, 1, 0).await;
    // Break the database under the running server.
    app.state.db.execute_unprepared("DROP TABLE working_hours").await.unwrap();
    let response = app
        .gql(
            "{ shops { nodes { name barbers { nodes { workingHours { weekday } } } } } }",
            json!({}),
        )
        .await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "INTERNAL_SERVER_ERROR");
    let lower = message.to_lowercase();
    for leak in ["select", "working_hours", "sql", "relation", "table"] {
        assert!(!lower.contains(leak), "message leaks {leak:?}: {message}");
    }
    // The rest of the answer still comes.
    assert!(response["data"]["shops"]["nodes"][0]["name"].is_string(), "{response:#}");
});

api_test!(a_body_that_is_not_graphql_gets_a_json_error, [sqlite, postgres], |app| {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{ this is not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(first_error(&body).0, "BAD_USER_INPUT");
});
