//! Admission control: past its capacity the server refuses at once with
//! 503 and `OVERLOADED`, before doing any of the request, and takes work
//! again as soon as a turn frees.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{Backend, TestAppBuilder, first_error},
    protection::post,
};

async fn a_server_at_capacity_refuses_at_once_and_does_nothing(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.max_in_flight_requests = 1;
            c.admission_timeout_ms = 200;
        })
        .start()
        .await;
    // Hold the write lock on accounts, so a sign-up stalls inside the server
    // holding the only turn.
    let lock = app.state.db.begin().await.unwrap();
    lock.execute_unprepared(match app.backend {
        Backend::Sqlite => "CREATE TABLE admission_probe (x INTEGER)",
        Backend::Postgres => "LOCK TABLE users IN EXCLUSIVE MODE",
    })
    .await
    .unwrap();
    let signup = {
        let (client, url) = (app.client.clone(), app.url("/graphql"));
        tokio::spawn(async move {
            let body = json!({
                "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                "variables": { "input": {
                    "email": "patient@example.com", "password": "long enough", "name": "Pat",
                }},
            });
            let response = client.post(url).json(&body).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        })
    };
    for _ in 0..200 {
        if app.state.admission.in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(app.state.admission.in_flight(), 1, "the sign-up never started");

    let (status, headers, body) =
        post(&app, json!({ "query": "{ shops { totalCount } }" }), None).await;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(headers["retry-after"], "1");
    let (code, message) = first_error(&body);
    assert_eq!(code, "OVERLOADED");
    assert!(message.contains("nothing was done"), "{message}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("bookedbarber_overload_refusals_total"), "{metrics}");

    // The stalled request finishes once the lock goes, and the next one runs.
    lock.rollback().await.unwrap();
    let signed_up = signup.await.unwrap();
    assert!(signed_up["data"]["register"]["token"].is_string(), "{signed_up:#}");
    let (status, _, body) = post(&app, json!({ "query": "{ shops { totalCount } }" }), None).await;
    assert_eq!((status, &body["data"]["shops"]["totalCount"]), (200, &json!(0)), "{body:#}");
}

api_test!(a_server_at_capacity_refuses_at_once_and_does_nothing, [sqlite, postgres]);
