//! Tiny requests that ask for unbounded work, and connections that hold the
//! server's resources without asking for anything, are refused or shed.
//! These run the real binary as a process, to measure it as one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    api_test,
    helpers::{TestAppBuilder, first_error},
    process::ServerProcess,
};

/// `{...F<levels>}`, each fragment spreading the one below it twice:
/// 2^levels fields of `__typename` in about a kilobyte.
pub fn fragment_bomb(levels: usize) -> String {
    let mut query = format!("{{...F{levels}}} fragment F0 on Query{{__typename}}");
    for level in 1..=levels {
        query.push_str(&format!(" fragment F{level} on Query{{...F{0} ...F{0}}}", level - 1));
    }
    query
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_bomb_is_refused_at_once_and_the_server_keeps_its_memory() {
    let server = ServerProcess::start(&[], None).await;
    let bomb = fragment_bomb(28);
    assert!(bomb.len() < 1_100, "{} bytes", bomb.len());
    let plain = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let peak_before = server.memory_kb("VmHWM");
    for via_get in [false, true] {
        let request = if via_get {
            server.client.get(server.url("/graphql")).query(&[("query", bomb.as_str())])
        } else {
            server.client.post(server.url("/graphql")).json(&json!({ "query": bomb }))
        };
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let (code, message) = first_error(&body);
        assert_eq!(code, "QUERY_TOO_COMPLEX", "{body:#}");
        assert!(message.contains("268435456 fields"), "{message}");
        assert!(body["data"].is_null());
        eprintln!(
            "the 2^28 fragment bomb over {} was refused in {:.2} ms",
            if via_get { "GET" } else { "POST" },
            elapsed.as_secs_f64() * 1000.0
        );
        // Not a speed target: expanded, it would take minutes and gigabytes.
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
    let grown = server.memory_kb("VmHWM").saturating_sub(peak_before);
    eprintln!("peak memory grew by {grown} kB");
    assert!(grown < 16 * 1024, "peak memory grew by {grown} kB");
}

async fn fields_are_counted_after_expansion(app: TestAppBuilder) {
    let app = app.with_config(|c| c.max_query_fields = 8).start().await;
    // Eight fields, `__typename` included, spread through fragments: allowed.
    let eight = "{ shops { ...S } } fragment S on ShopConnection { totalCount a: __typename nodes { ...N } }
        fragment N on Shop { id name b: __typename c: __typename }";
    assert!(app.gql(eight, json!({})).await.get("errors").is_none());
    let before = app.statements();
    let nine = eight.replace("c: __typename", "c: __typename d: __typename");
    let response = app.gql(&nine, json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "QUERY_TOO_COMPLEX");
    assert!(message.contains("9 fields") && message.contains("at most 8"), "{message}");
    assert_eq!(app.statements(), before, "nothing ran");
    // The same fragment spread over and over at one level.
    let repeated = "{ ...T ...T ...T ...T } fragment T on Query { __typename }";
    let response = app.gql(repeated, json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "QUERY_TOO_COMPLEX");
    assert!(message.contains("spread 4 times"), "{message}");
    // A cycle is a client's mistake, and says so.
    let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    let (code, message) = first_error(&app.gql(cycle, json!({})).await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("cycle"), "{message}");
}

api_test!(fields_are_counted_after_expansion, [sqlite]);

/// A connection that sends a request line and one header, then nothing.
async fn half_open(addr: std::net::SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: bookedbarber\r\n").await.ok()?;
    Some(stream)
}

/// Whether the server has closed `stream` (end of file or a reset) within
/// `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A response (an error page) before closing: keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_a_normal_request() {
    // 256 descriptors, as in the probe that found 300 half-open connections
    // enough to time out every request.
    let server = ServerProcess::start(&[], Some(256)).await;
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        if let Some(stream) = half_open(server.addr).await {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 900, "only {} connections opened", idle.len());
    let started = Instant::now();
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": "{ shops { totalCount } }" }))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a normal request is answered while a thousand connections idle");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["shops"]["totalCount"], 0, "{body:#}");
    eprintln!(
        "answered in {:.1} ms beside {} half-open connections",
        elapsed.as_secs_f64() * 1000.0,
        idle.len()
    );
    // The oldest idle connections made room, and the server says so.
    assert!(closed_by_server(&mut idle[0], Duration::from_secs(5)).await);
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("bookedbarber_http_connections_shed_total{reason=\"idle_evicted\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_headers_or_idle_after_a_response_are_closed() {
    let server = ServerProcess::start(&[("HEADER_READ_TIMEOUT_SECS", "1")], None).await;
    let mut stalled = half_open(server.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut stalled, Duration::from_secs(10)).await);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}");

    // Keep-alive: one request, then silence.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: bookedbarber\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let read = kept.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut kept, Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_takes_no_longer_than_its_grace_even_with_a_request_stuck() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let mut server = ServerProcess::start(&[("SHUTDOWN_TIMEOUT_SECS", "2")], None).await;
    // Hold the database's write lock, so a sign-up stalls inside the server
    // (SQLite's busy timeout is 10 s).
    let database = sea_orm::Database::connect(server.database_url.as_str()).await.unwrap();
    let lock = database.begin().await.unwrap();
    lock.execute_unprepared("CREATE TABLE shutdown_probe (x INTEGER)").await.unwrap();
    let stuck = {
        let (client, url) = (server.client.clone(), server.url("/graphql"));
        tokio::spawn(async move {
            let body = json!({
                "query": "mutation { register(input: { email: \"late@example.com\", password: \"a fine passphrase\", name: \"Late\" }) { token } }",
            });
            client.post(url).json(&body).send().await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = server.terminate().await;
    eprintln!("shut down in {:.2} s with a grace of 2 s", took.as_secs_f64());
    assert!(took < Duration::from_millis(2_900), "shutdown took {took:?}");
    assert!(stuck.await.unwrap().is_err(), "the stuck request was cut off, not answered");
    lock.rollback().await.unwrap();
}

async fn computed_fields_weigh_what_they_cost(app: TestAppBuilder) {
    let app = app.start().await;
    let slots = |n: usize| {
        let fields: String = (0..n)
            .map(|i| format!("s{i}: availableSlots(barberId: \"x\", serviceId: \"y\", date: \"2030-01-01\") {{ startsAt }} "))
            .collect();
        format!("{{ {fields} }}")
    };
    // One costs a few points, not one.
    let response = app.gql(&slots(1), json!({})).await;
    let cost = response["extensions"]["cost"]["requested"].as_u64().unwrap();
    assert!(cost >= 2, "availableSlots costs {cost} points");
    // Two thousand aliased copies took 1.35 s of server time; now even a
    // hundred are refused before any of them runs.
    let before = app.statements();
    let (code, message) = first_error(&app.gql(&slots(100), json!({})).await);
    assert_eq!(code, "QUERY_TOO_COMPLEX", "{message}");
    assert_eq!(app.statements(), before);
    let dashboards: String = (0..20)
        .map(|i| format!("a{i}: analytics(shopId: \"x\", from: \"2030-01-01\", to: \"2030-01-31\") {{ bookingsCount }} "))
        .collect();
    let (code, _) = first_error(&app.gql(&format!("{{ {dashboards} }}"), json!({})).await);
    assert_eq!(code, "QUERY_TOO_COMPLEX");
}

api_test!(computed_fields_weigh_what_they_cost, [sqlite]);
