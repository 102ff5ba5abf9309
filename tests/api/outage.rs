//! The database in trouble: a statement past its timeout fails with
//! `TIMEOUT` and frees its connection; a database that goes away is refused
//! at once on every path and recovered from without a restart, with no
//! booking lost or doubled. PostgreSQL only: the outage is a TCP proxy
//! between the server and the shared PostgreSQL, severed and restored.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestAppBuilder, TestUser, first_error},
    proxy::Proxy,
    shop_fixture::{BOOK, ShopFixture},
};

/// PostgreSQL's address, from `TEST_DATABASE_URL`.
fn postgres_addr() -> Option<SocketAddr> {
    let url = url::Url::parse(&std::env::var("TEST_DATABASE_URL").ok()?).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).ok()?.next()
}

/// POSTs `query` (as `user`, when given): status, body and how long it took.
async fn send(
    app: &TestApp,
    user: Option<&TestUser>,
    query: &str,
    variables: Value,
) -> (u16, Value, Duration) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        }
        Err(_) => (0, Value::Null, started.elapsed()),
    }
}

/// What became of one booking attempt.
#[derive(Debug)]
enum Outcome {
    /// Answered with the booking: it must be stored.
    Booked,
    /// Refused before anything was done: it must not be stored.
    Refused,
    /// Failed while the database went away: either way.
    Unknown,
}

api_test!(a_database_outage_fails_fast_and_recovers_without_losing_a_booking, [postgres]);

async fn a_database_outage_fails_fast_and_recovers_without_losing_a_booking(app: TestAppBuilder) {
    let upstream = postgres_addr().expect("TEST_DATABASE_URL names a reachable server");
    let proxy = Proxy::start(upstream).await;
    let app = app
        .via(proxy.addr)
        // Production's, not the patient tests' minute.
        .with_config(|c| c.database_acquire_timeout_secs = 5)
        .start()
        .await;
    let app = Arc::new(app);
    let shop = Arc::new(ShopFixture::open(&app, "outage", "UTC", "08:00", "20:00").await);
    let mut clients = Vec::new();
    for n in 0..4 {
        clients.push(
            app.register(&format!("client{n}@outage.test"), "correct horse battery", "C").await,
        );
    }

    // Clients book distinct slots, each attempt with a note of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<HashMap<String, Outcome>>> = Arc::default();
    let first_day = Utc::now().date_naive() + chrono::Duration::days(2);
    let mut load = Vec::new();
    for client in clients.clone() {
        let (app, shop, stop, next, outcomes) = (
            Arc::clone(&app),
            Arc::clone(&shop),
            Arc::clone(&stop),
            Arc::clone(&next),
            Arc::clone(&outcomes),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let day = first_day + chrono::Duration::days(i64::try_from(n / 24).unwrap());
                let minutes = u32::try_from(n % 24).unwrap() * 30;
                let start = shop.at(day, 8 + minutes / 60, minutes % 60);
                let note = format!("attempt {n}");
                let input = json!({ "input": {
                    "barberId": shop.barber_id, "serviceId": shop.service_id,
                    "startsAt": start.to_rfc3339(), "notes": note,
                }});
                let (status, body, _) = send(&app, Some(&client), BOOK, input).await;
                let outcome = if body["data"]["createBooking"]["id"].is_string() {
                    Outcome::Booked
                } else if status == 503
                    && body["errors"][0]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("nothing was done"))
                {
                    Outcome::Refused
                } else {
                    Outcome::Unknown
                };
                outcomes.lock().unwrap().insert(note, outcome);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.sever();
    let severed = Instant::now();
    while !app.state.db_health.is_open() {
        assert!(severed.elapsed() < Duration::from_secs(5), "the outage was never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("outage noticed after {} ms", severed.elapsed().as_millis());
    // Now every path is refused at once, signed in or not.
    let mut latencies = Vec::new();
    for round in 0..20 {
        let user = (round % 2 == 0).then(|| &clients[0]);
        let (status, body, took) = send(&app, user, "{ shops { totalCount } }", json!({})).await;
        assert_eq!(status, 503, "{body:#}");
        assert_eq!(first_error(&body).0, "SERVICE_UNAVAILABLE");
        latencies.push(took);
    }
    latencies.sort();
    eprintln!(
        "refusals during the outage: median {:.1} ms, slowest {:.1} ms",
        latencies[10].as_secs_f64() * 1e3,
        latencies[19].as_secs_f64() * 1e3
    );
    assert!(latencies[17] < Duration::from_millis(100), "{latencies:?}");
    // Readiness says so within a second, in words for the public.
    let started = Instant::now();
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body["checks"]["database"]["reason"], "unavailable: the database does not answer",
        "{body:#}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.restore();
    let restored = Instant::now();
    loop {
        let (status, _, _) = send(&app, None, "{ shops { totalCount } }", json!({})).await;
        if status == 200 {
            break;
        }
        assert!(restored.elapsed() < Duration::from_secs(2), "not recovered 2 s after restoring");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("recovered {} ms after the database came back", restored.elapsed().as_millis());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // Nothing lost, nothing doubled, nothing done that was refused.
    let stored: Vec<(String, i64)> = app
        .state
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT notes, COUNT(*) AS n FROM bookings GROUP BY notes".to_owned(),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| (row.try_get("", "notes").unwrap(), row.try_get("", "n").unwrap()))
        .collect();
    let stored: HashMap<String, i64> = stored.into_iter().collect();
    let outcomes = outcomes.lock().unwrap();
    let count = |wanted: fn(&Outcome) -> bool| outcomes.values().filter(|o| wanted(o)).count();
    eprintln!(
        "{} attempts: {} booked, {} refused, {} unknown",
        outcomes.len(),
        count(|o| matches!(o, Outcome::Booked)),
        count(|o| matches!(o, Outcome::Refused)),
        count(|o| matches!(o, Outcome::Unknown)),
    );
    assert!(count(|o| matches!(o, Outcome::Booked)) > 5);
    assert!(count(|o| matches!(o, Outcome::Refused)) > 5);
    assert!(stored.values().all(|n| *n == 1), "a booking was stored twice: {stored:?}");
    for (note, outcome) in outcomes.iter() {
        match outcome {
            Outcome::Booked => assert!(stored.contains_key(note), "{note} was lost"),
            Outcome::Refused => assert!(!stored.contains_key(note), "{note} was refused yet done"),
            Outcome::Unknown => {}
        }
    }
    assert!(stored.keys().all(|note| outcomes.contains_key(note)), "a booking nobody made");
}

api_test!(a_statement_past_its_timeout_fails_with_timeout_and_frees_its_connection, [postgres]);

async fn a_statement_past_its_timeout_fails_with_timeout_and_frees_its_connection(
    app: TestAppBuilder,
) {
    let app = app
        .with_config(|c| {
            c.database_statement_timeout_ms = 500;
        })
        .start()
        .await;
    // A lock held far longer than the statement timeout.
    let lock = app.state.db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE users IN EXCLUSIVE MODE").await.unwrap();
    let register = "mutation { register(input: { email: \"slow@example.com\", password: \"a fine passphrase\", name: \"Slow\" }) { token } }";
    let started = Instant::now();
    let (status, body, _) = send(&app, None, register, json!({})).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body:#}");
    let (code, message) = first_error(&body);
    assert_eq!(code, "TIMEOUT", "{body:#}");
    assert!(message.contains("took too long"), "{message}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Queries that do not touch the locked table never waited.
    let (status, body, _) = send(&app, None, "{ shops { totalCount } }", json!({})).await;
    assert_eq!((status, &body["data"]["shops"]["totalCount"]), (200, &json!(0)));
    // The timed-out statement gave its connection back.
    // (sqlx returns a connection to the pool in a task of its own.)
    let returned = Instant::now();
    while bookedbarber::db::pool_use(&app.state.db).0 > 1 {
        assert!(returned.elapsed() < Duration::from_secs(2), "the connection was not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.rollback().await.unwrap();
    let (_, body, _) = send(&app, None, register, json!({})).await;
    assert!(body["data"]["register"]["token"].is_string(), "{body:#}");
}

api_test!(a_request_past_the_request_timeout_gets_a_json_timeout, [postgres]);

async fn a_request_past_the_request_timeout_gets_a_json_timeout(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.database_statement_timeout_ms = 0;
            c.request_timeout_secs = 1;
        })
        .start()
        .await;
    let lock = app.state.db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE users IN EXCLUSIVE MODE").await.unwrap();
    let register = "mutation { register(input: { email: \"cut@example.com\", password: \"a fine passphrase\", name: \"Cut\" }) { token } }";
    let (status, body, took) = send(&app, None, register, json!({})).await;
    assert_eq!(status, 408, "{body:#}");
    assert_eq!(first_error(&body).0, "TIMEOUT");
    assert!(took < Duration::from_secs(3));
    lock.rollback().await.unwrap();
}

api_test!(a_connection_closed_while_idle_is_replaced_before_use, [postgres]);

/// Pooled connections are no longer pinged before every statement, only
/// after sitting idle: ones PostgreSQL closed meanwhile (a restart, an
/// administrator) are found and replaced, and the request never sees them.
async fn a_connection_closed_while_idle_is_replaced_before_use(app: TestAppBuilder) {
    let app = app.with_config(|c| c.public_cache = false).start().await;
    let shops = "{ shops { totalCount } }";
    // Several connections in use at once, then idle in the pool.
    let answers =
        futures_util::future::join_all((0..8).map(|_| send(&app, None, shops, json!({})))).await;
    assert!(answers.iter().all(|(status, body, _)| *status == 200 && body["data"].is_object()));
    tokio::time::sleep(app.state.config.ping_idle() + Duration::from_millis(300)).await;
    // PostgreSQL ends every session of the server's database.
    let admin = admin().await;
    let database = url::Url::parse(&app.state.config.database_url).unwrap().path()[1..].to_owned();
    let ended = admin
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            [database.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "ended")
        .unwrap();
    assert!(ended >= 1, "no session of the server's database to end");
    // Every request after it is answered, on connections opened afresh.
    let answers =
        futures_util::future::join_all((0..8).map(|_| send(&app, None, shops, json!({})))).await;
    for (status, body, _) in answers {
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["data"]["shops"]["totalCount"], 0, "{body:#}");
    }
}

/// A pool of one connection to the test's database, with the server's
/// settings but no ping before use (however long it sat idle), used by
/// nothing else: what it does is the pool's own doing.
async fn lone_pool(app: &TestApp) -> sea_orm::DatabaseConnection {
    let mut config = (*app.state.config).clone();
    config.database_max_connections = 1;
    config.database_min_connections = 0;
    config.database_ping_idle_ms = 3_600_000;
    bookedbarber::db::connect_lazy(&config).await.unwrap().0
}

/// The statement's one `BIGINT` column, or the error.
async fn scalar(db: &impl ConnectionTrait, sql: &str) -> Result<i64, sea_orm::DbErr> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await?
        .expect("a row");
    row.try_get_by_index::<i64>(0)
}

/// The administrator's connection to the shared PostgreSQL.
async fn admin() -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(std::env::var("TEST_DATABASE_URL").unwrap()).await.unwrap()
}

api_test!(a_connection_whose_session_ended_in_use_is_not_handed_out_again, [postgres]);

/// A connection whose session ended under it fails its statement and is
/// then closed, never handed out again, even within the idle time that
/// spares a connection its ping before use: the next statement runs on a
/// connection opened afresh. (sqlx pings every connection as it comes
/// back; a change that skips that ping must keep this.)
async fn a_connection_whose_session_ended_in_use_is_not_handed_out_again(app: TestAppBuilder) {
    let app = app.start().await;
    let pool = lone_pool(&app).await;
    let first = scalar(&pool, "SELECT CAST(pg_backend_pid() AS BIGINT)").await.unwrap();
    let admin = admin().await;
    let ended = scalar(
        &admin,
        &format!(
            "SELECT CAST(CASE WHEN pg_terminate_backend({first}) THEN 1 ELSE 0 END AS BIGINT)"
        ),
    )
    .await
    .unwrap();
    assert_eq!(ended, 1, "the session could not be ended");
    let gone = Instant::now();
    while scalar(&admin, &format!("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {first}"))
        .await
        .unwrap()
        > 0
    {
        assert!(gone.elapsed() < Duration::from_secs(5), "the session did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pooled connection does not know yet: its next statement fails.
    // (A ping before use would have found it, but it sat idle for less
    // than the threshold.)
    let failed = scalar(&pool, "SELECT CAST(pg_backend_pid() AS BIGINT)").await;
    assert!(failed.is_err(), "a statement ran on an ended session: {failed:?}");
    // And every one after it runs, on a new session.
    for _ in 0..3 {
        let pid = scalar(&pool, "SELECT CAST(pg_backend_pid() AS BIGINT)").await;
        let pid = pid.expect("the ended session was handed out again");
        assert_ne!(pid, first);
    }
}

api_test!(a_transaction_dropped_unfinished_frees_its_locks_at_once, [postgres]);

/// A transaction dropped without commit or rollback (a request cut off
/// mid-write) queues its `ROLLBACK`; the connection coming back must send
/// it at once rather than sit idle in the pool with the transaction and
/// its locks still open.
async fn a_transaction_dropped_unfinished_frees_its_locks_at_once(app: TestAppBuilder) {
    let app = app.start().await;
    let pool = lone_pool(&app).await;
    let key = 4_242_424;
    let transaction = pool.begin().await.unwrap();
    scalar(&transaction, &format!("SELECT CAST(1 AS BIGINT) FROM pg_advisory_xact_lock({key})"))
        .await
        .unwrap();
    // Taken and given back in one statement, so on one session.
    let free = format!(
        "SELECT CAST(CASE WHEN pg_try_advisory_lock({key}) AND pg_advisory_unlock({key}) \
         THEN 1 ELSE 0 END AS BIGINT)"
    );
    // Advisory locks belong to one database: the server's.
    let other = sea_orm::Database::connect(app.state.config.database_url.clone()).await.unwrap();
    assert_eq!(scalar(&other, &free).await.unwrap(), 0, "the transaction holds no lock");
    drop(transaction);
    // Nothing else uses the pool: only its own return of the connection
    // can end the transaction.
    let dropped = Instant::now();
    while scalar(&other, &free).await.unwrap() == 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the dropped transaction still holds its lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
