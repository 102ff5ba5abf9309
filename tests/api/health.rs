//! Liveness, readiness, GraphiQL and request ids.

use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::api_test;

api_test!(health_answers_ok, [sqlite, postgres], |app| {
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
});

api_test!(ready_names_each_dependency, [sqlite, postgres], |app| {
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["migrations"]["status"], "ok");
    assert!(body["checks"]["cache"]["status"].is_string());
});

api_test!(ready_is_503_while_a_migration_is_pending, [sqlite, postgres], |app| {
    // Forget that the last migration was applied, as a database restored
    // from an older backup would.
    app.state.db.execute_unprepared("DELETE FROM seaql_migrations").await.unwrap();
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["migrations"]["status"], "error");
    assert!(body["checks"]["migrations"]["reason"].as_str().unwrap().contains("pending"));
});

api_test!(ready_is_503_when_the_database_does_not_answer, [sqlite, postgres], |app| {
    app.state.db.clone().close().await.unwrap();
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["status"], "error");
    // Liveness does not depend on the database.
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
});

api_test!(graphiql_is_served_on_get, [sqlite, postgres], |app| {
    let response = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap();
    assert!(page.contains("GraphiQL"));
    // Everything the page loads comes from this server, not from a CDN.
    assert!(!page.contains("https://") && !page.contains("http://"), "{page}");
    let assets: Vec<&str> = page
        .split("src=\"")
        .skip(1)
        .chain(page.split("href=\"").skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(assets.len(), 4, "{assets:?}");
    for asset in assets {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("immutable"), "{cache}");
        assert!(response.bytes().await.unwrap().len() > 1_000, "{asset}");
    }
});

api_test!(get_with_a_query_answers_it, [sqlite, postgres], |app| {
    app.seed(2, 2, 1, 0).await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ shops { totalCount } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["shops"]["totalCount"], 2);
});

api_test!(request_ids_are_echoed_or_made, [sqlite, postgres], |app| {
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "test-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "test-request-42");
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(!response.headers()["x-request-id"].is_empty());
});
