//! The API protects itself: budgets per client, a stricter one for
//! sign-ins, query depth and complexity limits, persisted queries, and the
//! metrics that show it happening.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestAppBuilder, first_error},
};

pub(crate) async fn post(
    app: &TestApp,
    body: Value,
    forwarded_for: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.client.post(app.url("/graphql")).json(&body);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> i64 {
    headers[name].to_str().unwrap().parse().unwrap()
}

const PLAIN: &str = "{ shops { totalCount } }";

api_test!(a_burst_over_the_limit_is_refused_then_recovers, [sqlite, postgres, sqlite_redis]);

async fn a_burst_over_the_limit_is_refused_then_recovers(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            // A point every five seconds: the burst is spent long before one
            // comes back, however slow the machine.
            c.rate_limit_per_minute = 12;
            c.rate_limit_burst = 4;
        })
        .start()
        .await;
    // An operation costing more than the burst can never run: it is too
    // complex, not a matter of waiting.
    let big = "{ shops(first: 50) { nodes { barbers(first: 20) { nodes { displayName } } } } }";
    let (status, _, body) = post(&app, json!({ "query": big }), None).await;
    assert_ne!(status, 500);
    let (code, message) = first_error(&body);
    assert_eq!(code, "QUERY_TOO_COMPLEX", "{body:#}");
    assert!(message.contains("at once"), "{message}");
    // It cost its arrival point only; three more are left.
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, body) = post(&app, json!({ "query": PLAIN }), None).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(header(&headers, "ratelimit-limit"), 4, "the most a client may hold");
        assert!(header(&headers, "ratelimit-reset") >= 1);
        remaining.push(header(&headers, "ratelimit-remaining"));
        assert_eq!(body["extensions"]["cost"]["requested"], 1);
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let (status, headers, body) = post(&app, json!({ "query": PLAIN }), None).await;
    assert_eq!(status, 429);
    assert_eq!(first_error(&body).0, "RATE_LIMITED");
    assert!(header(&headers, "retry-after") >= 1);
    assert_eq!(header(&headers, "ratelimit-remaining"), 0);

    let wait = header(&headers, "retry-after");
    assert!((1..=5).contains(&wait), "retry after {wait} s");
    tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap())).await;
    let (status, _, _) = post(&app, json!({ "query": PLAIN }), None).await;
    assert_eq!(status, 200, "a point came back when Retry-After said");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("bookedbarber_rate_limit_refusals_total"), "{metrics}");
}

api_test!(a_forged_forwarded_for_does_not_pick_a_new_bucket, [sqlite, postgres]);

async fn a_forged_forwarded_for_does_not_pick_a_new_bucket(builder: TestAppBuilder) {
    let app = builder
        .clone()
        .with_config(|c| {
            c.rate_limit_per_minute = 1;
            c.rate_limit_burst = 2;
        })
        .start()
        .await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(post(&app, json!({ "query": PLAIN }), Some(ip)).await.0, 200);
    }
    assert_eq!(
        post(&app, json!({ "query": PLAIN }), Some("203.0.113.3")).await.0,
        429,
        "same peer, same bucket"
    );

    // Behind a trusted proxy, the forwarded address is the client.
    let app = builder
        .with_config(|c| {
            c.rate_limit_per_minute = 1;
            c.rate_limit_burst = 2;
            c.trust_proxy = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .start()
        .await;
    for ip in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"] {
        assert_eq!(post(&app, json!({ "query": PLAIN }), Some(ip)).await.0, 200, "{ip}");
    }
    assert_eq!(post(&app, json!({ "query": PLAIN }), Some("203.0.113.1")).await.0, 429);
    // A client cannot pick its bucket by prepending an address.
    assert_eq!(
        post(&app, json!({ "query": PLAIN }), Some("198.51.100.9, 203.0.113.1")).await.0,
        429
    );
}

const LOGIN: &str =
    "mutation($email: String!) { login(email: $email, password: \"wrong password\") { token } }";

api_test!(sign_ins_are_limited_by_ip_and_by_email, [sqlite, postgres, sqlite_redis]);

async fn sign_ins_are_limited_by_ip_and_by_email(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.login_rate_limit_per_minute = 3;
            c.trust_proxy = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .start()
        .await;
    // One email from many places.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let (status, _, body) = post(
            &app,
            json!({ "query": LOGIN, "variables": { "email": "victim@example.com" } }),
            Some(ip),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(first_error(&body).0, "UNAUTHENTICATED");
    }
    let (status, headers, body) = post(
        &app,
        json!({ "query": LOGIN, "variables": { "email": "victim@example.com" } }),
        Some("198.51.100.4"),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(first_error(&body).0, "RATE_LIMITED");
    assert!(header(&headers, "retry-after") >= 1);
    // Many emails from one place.
    for n in 0..3 {
        let email = format!("guess{n}@example.com");
        let (status, _, _) = post(
            &app,
            json!({ "query": LOGIN, "variables": { "email": email } }),
            Some("192.0.2.7"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _, body) = post(
        &app,
        json!({ "query": LOGIN, "variables": { "email": "guess9@example.com" } }),
        Some("192.0.2.7"),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(first_error(&body).0, "RATE_LIMITED");
    // Browsing is not affected.
    assert_eq!(post(&app, json!({ "query": PLAIN }), Some("192.0.2.7")).await.0, 200);
}

const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}"#;

api_test!(deep_and_complex_operations_are_refused_before_any_resolver, [sqlite, postgres]);

async fn deep_and_complex_operations_are_refused_before_any_resolver(app: TestAppBuilder) {
    let app = app.start().await;
    app.seed(2, 2, 1, 0).await;
    // shops > nodes > (barbers > nodes > shop) × 5 > name: 18 levels.
    let deep = format!(
        "{{ shops {{ nodes {{ {} name {} }} }} }}",
        "barbers { nodes { shop { ".repeat(5),
        "} } } ".repeat(5)
    );
    let before = app.statements();
    let response = app.gql(&deep, json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "QUERY_TOO_COMPLEX");
    assert!(message.contains("nested"), "{message}");
    assert!(response["data"].is_null());
    assert_eq!(app.statements(), before, "no resolver ran");

    // Past async-graphql's own limits (32 levels, then its parser's 64),
    // still too complex rather than malformed; so is a fragment that hides
    // the depth, and an introspection query past 32.
    let nest = |levels: usize| {
        format!(
            "{{ {} __typename {} }}",
            "shops { nodes { ".repeat(levels / 2),
            "} } ".repeat(levels / 2)
        )
    };
    let fragment = format!(
        "{{ ...A }} fragment A on Query {{ shops {{ nodes {{ {} name {} }} }} }}",
        "barbers { nodes { shop { ".repeat(5),
        "} } } ".repeat(5)
    );
    let introspection = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ".repeat(12),
        "} } } ".repeat(12)
    );
    // Fragments nest as well: a chain of spreads, and inline fragments.
    let mut chain = String::from("{ ...F0 }");
    for level in 0..40 {
        chain.push_str(&format!(" fragment F{level} on Query {{ ...F{} }}", level + 1));
    }
    chain.push_str(" fragment F40 on Query { __typename }");
    let inline = format!("{{ {} __typename {} }}", "... on Query { ".repeat(40), "} ".repeat(40));
    for query in [nest(40), nest(100), nest(2_000), fragment, introspection, chain, inline] {
        let response = app.gql(&query, json!({})).await;
        let (code, message) = first_error(&response);
        assert_eq!(code, "QUERY_TOO_COMPLEX", "{}", &message[..message.len().min(300)]);
        assert!(message.contains("nested") && message.contains("at most"), "{message}");
    }
    assert_eq!(app.statements(), before, "no resolver ran");

    let wide = "{ shops(first: 100) { nodes { barbers(first: 100) { nodes { services { barbers { displayName services { name } } } } } } } }";
    let response = app.gql(wide, json!({})).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "QUERY_TOO_COMPLEX");
    assert!(message.contains("complexity"), "{message}");
    assert_eq!(app.statements(), before, "no resolver ran");

    // GraphiQL's own introspection query is deeper than the limit, and passes.
    let data = app.data(INTROSPECTION, json!({})).await;
    assert!(data["__schema"]["types"].as_array().unwrap().len() > 20);

    // A big but allowed page costs more than one point, and says so.
    let page = "{ shops(first: 50) { nodes { barbers(first: 20) { nodes { displayName } } } } rateLimit { cost remaining } }";
    let response = app.gql(page, json!({})).await;
    let requested = response["extensions"]["cost"]["requested"].as_i64().unwrap();
    assert!(requested > 1, "{response:#}");
    assert_eq!(response["data"]["rateLimit"]["cost"].as_i64().unwrap(), requested);
}

fn sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

api_test!(
    persisted_queries_register_then_run_by_hash,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        app.seed(1, 1, 1, 0).await;
        let query = "query Shops { shops { totalCount } }";
        let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(query) } });
        let (_, _, body) = post(&app, json!({ "extensions": persisted }), None).await;
        let (code, message) = first_error(&body);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        );
        let (status, _, body) =
            post(&app, json!({ "query": query, "extensions": persisted }), None).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["shops"]["totalCount"], 1);
        let (status, _, body) = post(&app, json!({ "extensions": persisted }), None).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["data"]["shops"]["totalCount"], 1);
        // Apollo's GET form: the hash alone in the URL.
        let response = app
            .client
            .get(app.url("/graphql"))
            .query(&[("extensions", persisted.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["shops"]["totalCount"], 1, "{body:#}");
        // A hash that does not match its query is refused.
        let wrong =
            json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256("something else") } });
        let (_, _, body) = post(&app, json!({ "query": query, "extensions": wrong }), None).await;
        assert_eq!(first_error(&body).0, "BAD_USER_INPUT", "{body:#}");
    }
);

api_test!(
    persisted_queries_are_bounded_in_size_budget_and_total,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        // Over 64 KiB: refused, and not kept.
        let padding = "a: __typename ".repeat(5_000);
        let big = format!("query Big {{ {padding} }}");
        assert!(big.len() > 64 * 1024);
        let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(&big) } });
        let (status, _, body) =
            post(&app, json!({ "query": big, "extensions": persisted }), None).await;
        assert_eq!(status, 200);
        let (code, message) = first_error(&body);
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains("at most 64 KiB"), "{message}");
        let (_, _, body) = post(&app, json!({ "extensions": persisted }), None).await;
        assert_eq!(first_error(&body).0, "PERSISTED_QUERY_NOT_FOUND");

        // The bytes all clients may register per window are bounded.
        let cache = &app.state.cache;
        assert!(cache.spend_window_bytes("apq-test", 600, 1_000).await);
        assert!(!cache.spend_window_bytes("apq-test", 600, 1_000).await, "the window is spent");
    }
);

api_test!(registering_a_persisted_query_costs_points, [sqlite, postgres]);

async fn registering_a_persisted_query_costs_points(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.rate_limit_per_minute = 1;
            c.rate_limit_burst = 100;
        })
        .start()
        .await;
    let (_, headers, _) = post(&app, json!({ "query": PLAIN }), None).await;
    let before = header(&headers, "ratelimit-remaining");
    let small = "query Small { shops { totalCount } }";
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(small) } });
    let (_, headers, body) =
        post(&app, json!({ "query": small, "extensions": persisted }), None).await;
    assert_eq!(body["data"]["shops"]["totalCount"], 0, "{body:#}");
    let spent = before - header(&headers, "ratelimit-remaining");
    assert_eq!(spent, 1 + 5, "the request's point and the registration's");
    // Running it by hash costs a plain request's point.
    let (_, headers, body) = post(&app, json!({ "extensions": persisted }), None).await;
    assert_eq!(body["data"]["shops"]["totalCount"], 0, "{body:#}");
    assert_eq!(before - 6 - header(&headers, "ratelimit-remaining"), 1);
}

api_test!(metrics_show_requests_errors_and_the_pool, [sqlite, postgres]);

async fn metrics_show_requests_errors_and_the_pool(app: TestAppBuilder) {
    let name = format!("MetricsProbe{:?}{}", app.backend(), std::process::id());
    let known = name.clone();
    let app = app.with_config(|c| c.metrics_operations = vec![known]).start().await;
    let metrics = || async {
        app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
    };
    let count = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = metrics().await;
    app.data(&format!("query {name} {{ shops {{ totalCount }} }}"), json!({})).await;
    app.gql("{ shops(first: 500) { totalCount } }", json!({})).await;
    let after = metrics().await;
    let requests =
        format!("bookedbarber_graphql_requests_total{{operation=\"{name}\",outcome=\"ok\"}}");
    assert_eq!(count(&after, &requests) - count(&before, &requests), 1.0, "{after}");
    let latency = format!(
        "bookedbarber_graphql_request_duration_seconds_count{{operation=\"{name}\",outcome=\"ok\"}}"
    );
    assert_eq!(count(&after, &latency) - count(&before, &latency), 1.0);
    // Where the server's time went: by operation, computed or kept.
    let busy = format!(
        "bookedbarber_graphql_busy_seconds_count{{operation=\"{name}\",answer=\"computed\"}}"
    );
    assert_eq!(count(&after, &busy) - count(&before, &busy), 1.0, "{after}");
    let errors = "bookedbarber_graphql_errors_total{code=\"BAD_USER_INPUT\"}";
    assert!(count(&after, errors) - count(&before, errors) >= 1.0);
    for gauge in [
        "bookedbarber_db_pool_connections{state=\"idle\"}",
        "bookedbarber_uptime_seconds",
        "bookedbarber_cache_degraded",
    ] {
        assert!(after.contains(gauge), "{gauge} missing");
    }
}

api_test!(a_request_refused_before_it_runs_costs_one_point, [sqlite, sqlite_redis]);

async fn a_request_refused_before_it_runs_costs_one_point(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.rate_limit_per_minute = 1;
            c.rate_limit_burst = 100;
        })
        .start()
        .await;
    let remaining = |response: &reqwest::Response| {
        response.headers()["ratelimit-remaining"].to_str().unwrap().parse::<i64>().unwrap()
    };
    let plain = app.client.post(app.url("/graphql")).json(&json!({ "query": PLAIN }));
    let before = remaining(&plain.send().await.unwrap());
    let refusals = [
        (
            app.client.post(app.url("/graphql")).header("content-type", "text/plain").body(PLAIN),
            415,
        ),
        (
            app.client
                .post(app.url("/graphql"))
                .header("content-type", "application/json")
                .body("{ not json"),
            400,
        ),
        (
            app.client
                .post(app.url("/graphql"))
                .header("authorization", "Bearer junk")
                .json(&json!({ "query": PLAIN })),
            401,
        ),
    ];
    for (n, (request, status)) in refusals.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let expected = before - 1 - i64::try_from(n).unwrap();
        assert_eq!(remaining(&response), expected, "a {status} costs one point");
    }
}

api_test!(an_operation_that_costs_more_than_is_left_gets_429, [sqlite, sqlite_redis]);

async fn an_operation_that_costs_more_than_is_left_gets_429(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.rate_limit_per_minute = 1;
            c.rate_limit_burst = 30;
        })
        .start()
        .await;
    let page = "{ shops(first: 50) { nodes { barbers(first: 20) { nodes { displayName } } } } }";
    let (status, _, body) = post(&app, json!({ "query": page }), None).await;
    assert_eq!(status, 200, "{body:#}");
    let cost = body["extensions"]["cost"]["requested"].as_i64().unwrap();
    assert!(cost > 10 && cost < 30, "the page costs {cost} points");
    // The second costs as much, and less than that is left: refused as a
    // whole, by the limit on cost (not the one on arrival).
    let (status, headers, body) = post(&app, json!({ "query": page }), None).await;
    assert_eq!(status, 429, "{body:#}");
    let (code, message) = first_error(&body);
    assert_eq!(code, "RATE_LIMITED");
    assert!(message.contains("costs"), "{message}");
    assert!(body["data"].is_null());
    assert!(header(&headers, "retry-after") >= 1);
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], header(&headers, "retry-after"));
}
