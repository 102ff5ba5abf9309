//! Webhooks: every event posted, signed, retried after failures, and not
//! lost when the server delivering it is killed.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    api_test,
    helpers::{TestApp, TestAppBuilder, first_error, row_id, scalar},
    process::ServerProcess,
    shop_fixture::ShopFixture,
};

/// What a receiver was sent.
#[derive(Debug)]
struct Received {
    signature: String,
    event_id: String,
    body: Bytes,
}

/// How the receiver answers: `fail` 500s first, then 200s; `hang` requests
/// get no answer at all.
struct Script {
    fail: AtomicUsize,
    hang: AtomicUsize,
    seen: mpsc::UnboundedSender<Received>,
}

async fn receive(
    State(script): State<Arc<Script>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let header =
        |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let _ = script.seen.send(Received {
        signature: header("bookedbarber-signature"),
        event_id: header("bookedbarber-event-id"),
        body,
    });
    if script.hang.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
        std::future::pending::<()>().await;
    }
    if script.fail.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    axum::http::StatusCode::OK
}

/// A receiver on port 0: its URL and what it is sent.
async fn receiver(fail: usize, hang: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (seen, received) = mpsc::unbounded_channel();
    let script =
        Arc::new(Script { fail: AtomicUsize::new(fail), hang: AtomicUsize::new(hang), seen });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = Router::new().route("/hook", post(receive)).with_state(script);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

/// Checks a delivery's signature as a receiver would: the HMAC-SHA256 of
/// `"<t>.<body>"` keyed with the secret, in hex, compared in constant
/// time, and `t` recent.
fn verify(secret: &str, signature: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let Ok(expected) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

const CREATE_WEBHOOK: &str = "mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { id url events active secret } }";
const DELIVERIES: &str = "query($shop: ID!) { shop(id: $shop) { webhooks { id secret deliveries { nodes { status attempts lastStatusCode lastError deliveredAt event { kind booking { id } } } } } } }";

async fn next(received: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("a delivery within 30 s")
        .unwrap()
}

async fn hooked(app: &TestApp, shop: &ShopFixture, url: &str, events: Value) -> String {
    let created = app
        .data_as(
            &shop.owner,
            CREATE_WEBHOOK,
            json!({ "input": { "shopId": shop.shop_id, "url": url, "events": events } }),
        )
        .await;
    let webhook = &created["createWebhook"];
    assert_eq!(webhook["active"], true);
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    secret
}

async fn every_event_signed_and_retried(builder: TestAppBuilder) {
    let app = builder
        .with_config(|config| {
            config.webhook_allow_private_addresses = true;
            config.webhook_retry_base_ms = 50;
        })
        .start()
        .await;
    let shop = ShopFixture::open(&app, "hooked", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@hooked.test", "correct horse battery", "Client").await;
    let (url, mut received) = receiver(2, 0).await;
    let secret = hooked(&app, &shop, &url, json!(["CREATED", "CANCELLED"])).await;

    let booked = shop.book(&app, &client, shop.at(shop.upcoming_weekday(), 10, 0)).await;
    let booking = booked["data"]["createBooking"]["id"].as_str().unwrap().to_owned();
    // Two 500s, then the delivery: the same event, signed each time.
    let attempts =
        [next(&mut received).await, next(&mut received).await, next(&mut received).await];
    for attempt in &attempts {
        assert!(verify(&secret, &attempt.signature, &attempt.body), "{attempt:?}");
        assert!(!verify("whsec_wrong", &attempt.signature, &attempt.body));
        assert_eq!(attempt.event_id, attempts[0].event_id, "one event, retried");
        let body: Value = serde_json::from_slice(&attempt.body).unwrap();
        assert_eq!(body["kind"], "CREATED");
        assert_eq!(body["bookingId"], booking.as_str());
        assert_eq!(body["id"], attempt.event_id.as_str());
    }
    // A tampered body fails the check.
    assert!(!verify(&secret, &attempts[2].signature, b"{\"kind\":\"CANCELLED\"}"));

    app.data_as(
        &client,
        "mutation($id: ID!) { cancelBooking(id: $id) { id } }",
        json!({ "id": booking }),
    )
    .await;
    let cancelled = next(&mut received).await;
    assert!(verify(&secret, &cancelled.signature, &cancelled.body));
    assert_eq!(serde_json::from_slice::<Value>(&cancelled.body).unwrap()["kind"], "CANCELLED");

    // What the owner sees of it; the secret is never shown again. The
    // worker records the delivery once the receiver's answer is in, a
    // moment after the receiver has the body.
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = app.data_as(&shop.owner, DELIVERIES, json!({ "shop": shop.shop_id })).await;
        if seen["shop"]["webhooks"][0]["deliveries"]["nodes"][0]["status"] == "DELIVERED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let webhook = &seen["shop"]["webhooks"][0];
    assert_eq!(webhook["secret"], Value::Null);
    let deliveries = webhook["deliveries"]["nodes"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:#?}");
    assert_eq!(deliveries[0]["event"]["kind"], "CANCELLED");
    assert_eq!(deliveries[0]["status"], "DELIVERED");
    assert_eq!(deliveries[0]["attempts"], 1);
    assert_eq!(deliveries[1]["event"]["kind"], "CREATED");
    assert_eq!(deliveries[1]["status"], "DELIVERED");
    assert_eq!(deliveries[1]["attempts"], 3);
    assert_eq!(deliveries[1]["lastStatusCode"], 200);
    assert_eq!(deliveries[1]["event"]["booking"]["id"], booking.as_str());
    assert_eq!(received.try_recv().ok().map(|r| r.event_id), None, "nothing else was sent");
}

api_test!(every_event_signed_and_retried, [sqlite, postgres]);

api_test!(webhooks_go_only_to_public_https_and_only_for_owners, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "ssrf", "Europe/London", "09:00", "17:00").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/hook",
        "http://hooks.example.com/hook",
        "file:///etc/passwd",
    ] {
        let refused = app
            .gql_as(
                &shop.owner,
                CREATE_WEBHOOK,
                json!({ "input": { "shopId": shop.shop_id, "url": url, "events": ["CREATED"] } }),
            )
            .await;
        assert_eq!(first_error(&refused).0, "BAD_USER_INPUT", "{url}: {refused:#}");
    }
    let no_kinds = app
        .gql_as(&shop.owner, CREATE_WEBHOOK, json!({ "input": { "shopId": shop.shop_id, "url": "https://hooks.example.com/x", "events": [] } }))
        .await;
    assert_eq!(first_error(&no_kinds).0, "BAD_USER_INPUT");
    let barber = app
        .gql_as(&shop.barber_user, CREATE_WEBHOOK, json!({ "input": { "shopId": shop.shop_id, "url": "https://hooks.example.com/x", "events": ["CREATED"] } }))
        .await;
    assert_eq!(first_error(&barber).0, "FORBIDDEN");

    let created = app
        .data_as(&shop.owner, CREATE_WEBHOOK, json!({ "input": { "shopId": shop.shop_id, "url": "https://hooks.example.com/x", "events": ["PAID", "CREATED", "PAID"] } }))
        .await;
    assert_eq!(created["createWebhook"]["events"], json!(["CREATED", "PAID"]));
    let id = created["createWebhook"]["id"].as_str().unwrap();
    let by_barber = app
        .gql_as(
            &shop.barber_user,
            "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(first_error(&by_barber).0, "NOT_FOUND");
    let deleted = app
        .data_as(
            &shop.owner,
            "mutation($id: ID!) { deleteWebhook(id: $id) { id active } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteWebhook"]["active"], false);
    let left = app.data_as(&shop.owner, DELIVERIES, json!({ "shop": shop.shop_id })).await;
    assert_eq!(left["shop"]["webhooks"], json!([]));
    let log = app
        .data_as(
            &shop.owner,
            "query($shop: ID!) { shop(id: $shop) { auditLog(first: 2) { nodes { kind } } } }",
            json!({ "shop": shop.shop_id }),
        )
        .await;
    assert_eq!(
        log["shop"]["auditLog"]["nodes"],
        json!([{ "kind": "WEBHOOK_DELETED" }, { "kind": "WEBHOOK_CREATED" }])
    );
});

/// A server killed while a receiver holds its delivery open: another
/// server on the same database delivers it once the claim expires.
async fn a_killed_server_loses_no_delivery(builder: TestAppBuilder) {
    let app = builder
        .with_config(|config| {
            config.webhook_allow_private_addresses = true;
            // This one only takes requests; the process below delivers.
            config.webhook_worker = false;
            config.webhook_timeout_secs = 1;
            config.webhook_retry_base_ms = 50;
        })
        .start()
        .await;
    let shop = ShopFixture::open(&app, "killed", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@killed.test", "correct horse battery", "Client").await;
    let (url, mut received) = receiver(0, 1).await;
    let secret = hooked(&app, &shop, &url, json!(["CREATED"])).await;

    let mut deliverer = ServerProcess::start_on(
        &app.state.config.database_url,
        &[("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true"), ("WEBHOOK_TIMEOUT_SECS", "1")],
    )
    .await;
    let booked = shop.book(&app, &client, shop.at(shop.upcoming_weekday(), 10, 0)).await;
    let booking = booked["data"]["createBooking"]["id"].as_str().unwrap().to_owned();
    let first = next(&mut received).await;
    // Mid-delivery: the receiver holds the request open.
    deliverer.child.kill().await.unwrap();
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'PENDING'").await,
        1,
        "the delivery is still owed"
    );

    let mut config = (*app.state.config).clone();
    config.webhook_worker = true;
    let replica = app.replica_with(config).await;
    let again = next(&mut received).await;
    assert_eq!(again.event_id, first.event_id, "the same event, delivered again");
    assert!(verify(&secret, &again.signature, &again.body));
    assert_eq!(
        serde_json::from_slice::<Value>(&again.body).unwrap()["bookingId"],
        booking.as_str()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while scalar(
        &replica,
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'DELIVERED'",
    )
    .await
        != 1
    {
        assert!(tokio::time::Instant::now() < deadline, "the delivery was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = row_id(&first.event_id);
    assert_eq!(
        scalar(&app, &format!("SELECT CAST(attempts AS BIGINT) AS n FROM webhook_deliveries WHERE event_id = {event}")).await,
        2
    );
}

api_test!(a_killed_server_loses_no_delivery, [sqlite, postgres]);
