//! What a browser needs and what protects its user: only JSON bodies run
//! (a cross-site form cannot), CORS for configured origins only, security
//! headers, and metrics that junk cannot flood or reach from outside.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{TestApp, first_error};

const REGISTER: &str = r#"{"query":"mutation { register(input: { email: \"csrf@example.com\", password: \"fine and long\", name: \"C\" }) { token } }"}"#;

async fn users(app: &TestApp) -> i64 {
    crate::helpers::scalar(app, "SELECT COUNT(*) AS n FROM users").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_json_bodies_run() {
    let app = TestApp::sqlite().start().await;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = app.client.post(app.url("/graphql")).body(REGISTER);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        let (code, message) = first_error(&body);
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains("application/json"), "{message}");
    }
    assert_eq!(users(&app).await, 0, "no cross-site form registered anyone");
    for content_type in
        ["application/json", "application/json; charset=utf-8", "application/graphql-response+json"]
    {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("content-type", content_type)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{content_type}");
    }
}

fn cors_headers(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get("access-control-allow-origin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_configured_origins_only() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    // Unset: no origin may call from a browser.
    let app = TestApp::sqlite().start().await;
    let response = preflight(&app, "https://app.example.com").await.unwrap();
    assert!(cors_headers(response.headers()).is_none());

    let app = TestApp::sqlite()
        .with_config(|c| {
            c.cors_allowed_origins =
                vec!["https://app.example.com".into(), "http://localhost:3000".into()];
        })
        .start()
        .await;
    let response = preflight(&app, "https://app.example.com").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(cors_headers(headers).unwrap(), "https://app.example.com");
    let methods = headers["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    let response = preflight(&app, "https://evil.example").await.unwrap();
    assert!(cors_headers(response.headers()).is_none());
    // The request itself, with the rate-limit headers readable by the page.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "http://localhost:3000")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(cors_headers(response.headers()).unwrap(), "http://localhost:3000");
    let exposed =
        response.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("ratelimit-remaining"), "{exposed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_and_private_answers() {
    let app = TestApp::sqlite().start().await;
    for path in ["/health", "/graphql", "/ready"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self' 'sha256-",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    // The hash is the page's inline script's.
    let html = page.text().await.unwrap();
    let script = html.split("<script>").nth(1).unwrap().split("</script>").next().unwrap();
    use base64::Engine;
    use sha2::Digest;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    assert!(policy.contains(&format!("'sha256-{hash}'")), "{policy}");

    let anonymous = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(anonymous.headers().get("cache-control").is_none());
    let user = app.register("private@example.com", "fine and long", "P").await;
    let (status, _) = app
        .gql_with_header(&format!("Bearer {}", user.token), "{ viewer { email } }", json!({}))
        .await;
    assert_eq!(status, 200);
    let personal = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&user.token)
        .json(&json!({ "query": "{ viewer { email } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(personal.headers()["cache-control"], "no-store");
}

fn count(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_operation_names_cannot_crowd_out_real_ones() {
    let app = TestApp::sqlite()
        .with_config(|c| c.metrics_operations = vec!["ShopPage".into()])
        .start()
        .await;
    let metrics = || async {
        app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
    };
    for n in 0..300 {
        app.gql(&format!("query Junk{n}x{} {{ __typename }}", std::process::id()), json!({})).await;
    }
    app.gql("query ShopPage { __typename }", json!({})).await;
    // A persisted query's name is learned when it is registered.
    let query = format!("query Persisted{} {{ __typename }}", std::process::id());
    use sha2::Digest;
    let hash = format!("{:x}", sha2::Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "extensions": extensions }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.client
        .post(app.url("/graphql"))
        .json(&json!({ "extensions": extensions }))
        .send()
        .await
        .unwrap();
    let text = metrics().await;
    assert!(!text.contains("operation=\"Junk"), "junk names got labels");
    assert!(count(&text, "bookedbarber_graphql_requests_total{operation=\"other\"") >= 300.0);
    assert_eq!(count(&text, "bookedbarber_graphql_requests_total{operation=\"ShopPage\""), 1.0);
    let persisted = format!(
        "bookedbarber_graphql_requests_total{{operation=\"Persisted{}\"",
        std::process::id()
    );
    assert_eq!(count(&text, &persisted), 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_apart_from_the_api() {
    let app = TestApp::sqlite()
        .with_config(|c| c.metrics_bind_addr = Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await;
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let internal = format!("http://{}/metrics", app.metrics_addr.unwrap());
    let response = app.client.get(internal).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("bookedbarber_uptime_seconds"));
}

/// A request refused before it runs (here for its token) still has its
/// body read, however slowly it arrives, so the client's next request on
/// the same connection is answered. (Under load, a refusal sent before the
/// body was in made the server drop the connection under the client's
/// next request.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refusal_leaves_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::sqlite().start().await;
    let body = r#"{"query":"{ shops { totalCount } }"}"#;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer junk\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stream.write_all(&body.as_bytes()[10..]).await.unwrap();
    let next = format!(
        "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(next.as_bytes()).await.unwrap();
    let mut answers = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answers.extend_from_slice(&buffer[..n]),
            }
            if String::from_utf8_lossy(&answers).matches("HTTP/1.1 ").count() == 2
                && answers.ends_with(b"}")
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&answers);
    let statuses: Vec<&str> =
        text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["401", "200"], "{text}");
}
