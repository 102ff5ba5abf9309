//! Several replicas behind a load balancer: one budget per client, kept in
//! the Redis they share, and each replica's share of it while Redis is away.

use serde_json::json;

use crate::{
    api_test,
    cache_faults::{OwnRedis, free_port, ready},
    helpers::{TestApp, TestAppBuilder, TestUser},
};

/// Requests `user` gets answered, sending them round-robin over `servers`,
/// before the first is refused with 429 (at most 200).
async fn answered_before_refused(servers: &[&TestApp], user: Option<&TestUser>) -> usize {
    for n in 0..200 {
        let server = servers[n % servers.len()];
        let token = user.map(|user| format!("Bearer {}", user.token));
        let mut request =
            server.client.post(server.url("/graphql")).json(&json!({ "query": "{ __typename }" }));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request.send().await.unwrap();
        match response.status().as_u16() {
            200 => {}
            429 => return n,
            other => panic!("answered {other}"),
        }
    }
    200
}

/// A budget of `burst` points that does not refill while a test runs (a
/// point a minute comes back).
fn fixed_budget(config: &mut bookedbarber::config::Config, burst: u32) {
    config.rate_limit_burst = burst;
    config.rate_limit_per_minute = 1;
}

async fn a_client_spends_one_budget_across_three_replicas(builder: TestAppBuilder) {
    let app = builder.with_config(|config| fixed_budget(config, 30)).start().await;
    let (second, third) = (app.replica().await, app.replica().await);
    let alone = app.register("alone@replicas.test", "correct horse battery", "Alone").await;
    let spread = app.register("spread@replicas.test", "correct horse battery", "Spread").await;

    let one_server = answered_before_refused(&[&app], Some(&alone)).await;
    let three_servers = answered_before_refused(&[&app, &second, &third], Some(&spread)).await;
    println!(
        "answered before the first 429: {one_server} on one server, {three_servers} over three"
    );
    assert!((29..=31).contains(&one_server), "{one_server}");
    assert!(one_server.abs_diff(three_servers) <= 1, "{one_server} vs {three_servers}");
    // Each replica refuses the spent budget (in process each would hold 30).
    for server in [&app, &second, &third] {
        assert_eq!(answered_before_refused(&[server], Some(&spread)).await, 0);
        let (_, body) = ready(server).await;
        assert_eq!(body["checks"]["rateLimits"], json!({ "status": "ok", "store": "redis" }));
    }
}

api_test!(a_client_spends_one_budget_across_three_replicas, [sqlite_redis, postgres_redis]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_answers_while_redis_is_away_and_shares_again_when_it_is_back() {
    let port = free_port();
    let Some(mut redis) = OwnRedis::start(port) else {
        crate::helpers::skip_or_fail("redis-server", "its own Redis");
        return;
    };
    let app = TestApp::sqlite()
        .with_config(|config| {
            config.redis_url = Some(format!("redis://127.0.0.1:{port}"));
            fixed_budget(config, 30);
            config.rate_limit_replicas = 3;
        })
        .start()
        .await;
    let (second, third) = (app.replica().await, app.replica().await);
    let servers = [&app, &second, &third];
    assert_eq!(ready(&app).await.1["checks"]["rateLimits"]["store"], "redis");

    redis.kill();
    // Never closed: every replica answers, each from its share (30 / 3).
    for server in servers {
        let answered = answered_before_refused(&[server], None).await;
        assert!((9..=11).contains(&answered), "{answered} answered on one replica alone");
        let (status, body) = ready(server).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["checks"]["rateLimits"]["status"], "degraded", "{body:#}");
        assert_eq!(body["checks"]["rateLimits"]["store"], "in-process");
    }

    // Back: shared again by itself, once each replica's breaker lets a
    // command through (a few seconds; readiness probes try at once).
    let _redis = OwnRedis::start(port).expect("redis-server starts again");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let answered = answered_before_refused(&[&app, &second, &third], None).await;
    assert!((29..=31).contains(&answered), "{answered} answered over three replicas");
    for server in servers {
        let (_, body) = ready(server).await;
        assert_eq!(body["checks"]["rateLimits"]["store"], "redis", "{body:#}");
    }
}

api_test!(
    a_kept_answer_pays_its_point_in_the_one_round_trip_it_makes,
    [sqlite_redis, postgres_redis]
);

/// Runs `redis-cli` against the Redis of `TEST_REDIS_URL`.
fn redis_cli(args: &[&str]) -> String {
    let url = std::env::var("TEST_REDIS_URL").unwrap();
    let out = std::process::Command::new("redis-cli").arg("-u").arg(url).args(args).output();
    String::from_utf8(out.expect("redis-cli runs").stdout).unwrap().trim().to_owned()
}

async fn a_kept_answer_pays_its_point_in_the_one_round_trip_it_makes(builder: TestAppBuilder) {
    let app = builder.with_config(|config| fixed_budget(config, 100)).start().await;
    let other = app.replica().await;
    let user = app.register("roundtrip@example.test", "correct horse battery", "Trips").await;
    // Signed in, any answer is kept for its viewer; anonymous, one that
    // says it may be kept, and costs more than a point.
    let query = |signed_in: bool| match signed_in {
        true => "{ __typename }",
        false => "{ shops(first: 100) { totalCount nodes { id name slug } } }",
    };
    let send = |server: &TestApp, token: Option<&str>| {
        let mut request = server
            .client
            .post(server.url("/graphql"))
            .json(&json!({ "query": query(token.is_some()) }));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    let remaining = |response: &reqwest::Response| -> u64 {
        response.headers()["RateLimit-Remaining"].to_str().unwrap().parse().unwrap()
    };
    for token in [Some(user.token.as_str()), None] {
        // Computed and kept, then served kept.
        send(&app, token).await.unwrap();
        send(&app, token).await.unwrap();
        let mut left = Vec::new();
        let mut cost = 0;
        let before = app.state.cache.round_trips();
        for n in 0..5 {
            if n == 2 {
                // Redis forgets its scripts: the charge loads it again,
                // within the same call, and is made once.
                assert_eq!(redis_cli(&["SCRIPT", "FLUSH"]), "OK");
            }
            let response = send(&app, token).await.unwrap();
            assert_eq!(response.status(), 200);
            left.push(remaining(&response));
            let body: serde_json::Value = response.json().await.unwrap();
            cost = body["extensions"]["cost"]["requested"].as_u64().unwrap();
        }
        assert_eq!(cost > 1, token.is_none(), "the anonymous answer costs {cost} points");
        assert_eq!(
            app.state.cache.round_trips() - before,
            5,
            "one call to Redis each: the charge and the kept answer's versions (signed in: {})",
            token.is_some()
        );
        let charged: Vec<u64> = left.windows(2).map(|w| w[0] - w[1]).collect();
        assert_eq!(charged, vec![cost; 4], "each paid its cost, once: {left:?}");
        // The budget is the one in Redis: the other server charges it too.
        let response = send(&other, token).await.unwrap();
        assert_eq!(remaining(&response), left[4] - cost, "one budget across the servers");
    }

    // A kept answer is never served past what makes it stale: a shop
    // opened changes the anonymous count, and a signed-out token is
    // refused even where its answers were kept.
    let shop = json!({ "input": { "name": "Trips", "slug": "trips", "timezone": "Europe/Paris", "address": "1 Rue" } });
    app.data_as(
        &user,
        "mutation($input: CreateShopInput!) { createShop(input: $input) { id } }",
        shop,
    )
    .await;
    let counted: serde_json::Value = send(&app, None).await.unwrap().json().await.unwrap();
    assert_eq!(counted["data"]["shops"]["totalCount"], 1);
    app.data_as(&user, "mutation { logout }", json!({})).await;
    let refused = send(&app, Some(&user.token)).await.unwrap();
    assert_eq!(refused.status(), 401);
}

// A document seen before whose cost does not vary with its variables pays
// it all on arrival, in the round trip it makes first: one call to the
// budget, not two. One whose page size comes from a variable pays its
// point, then the rest. Each request pays exactly its cost, once.
async fn a_known_document_pays_its_cost_on_arrival(builder: TestAppBuilder) {
    let app = builder.with_config(|config| fixed_budget(config, 300)).start().await;
    let send = |query: &'static str, variables: serde_json::Value| {
        let app = &app;
        async move {
            let before = app.state.cache.round_trips();
            let response = app.post_graphql(None, query, variables).await;
            assert_eq!(response.status(), 200);
            let left: u64 =
                response.headers()["RateLimit-Remaining"].to_str().unwrap().parse().unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body.get("errors").is_none(), "{body:#}");
            let cost = body["extensions"]["cost"]["requested"].as_u64().unwrap();
            (left, cost, app.state.cache.round_trips() - before)
        }
    };
    // Anonymous and computed every time: each search is another answer.
    let fixed = "query($s: String) { shops(first: 50, search: $s) { nodes { id name slug } } }";
    let paged = "query($n: Int!) { shops(first: $n) { nodes { id name slug address } } }";
    let (mut left, _, _) = send("{ __typename }", json!({})).await;
    let mut trips = Vec::new();
    for search in ["a", "b", "c"] {
        let (now, cost, made) = send(fixed, json!({ "s": search })).await;
        assert!(cost > 1, "costs {cost}");
        assert_eq!(left - now, cost, "paid its cost once");
        (left, trips) = (now, [trips, vec![made]].concat());
    }
    // Known: the charge of its whole cost; the answer not kept, with the
    // versions it starts from; the versions of the list it showed, after;
    // keeping it. No second call for the budget.
    assert_eq!(trips[1..], [4, 4], "calls to Redis: {trips:?}");
    let mut costs = Vec::new();
    for n in [50, 10, 70, 10] {
        let (now, cost, _) = send(paged, json!({ "n": n })).await;
        assert_eq!(left - now, cost, "a page of {n} paid its cost once");
        (left, costs) = (now, [costs, vec![cost]].concat());
    }
    assert!(costs[0] > costs[1] && costs[2] > costs[0], "costs by page: {costs:?}");
}
api_test!(a_known_document_pays_its_cost_on_arrival, [sqlite_redis, postgres_redis]);
