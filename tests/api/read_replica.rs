//! Reads routed to a real streaming replica: `TEST_READ_DATABASE_URL`,
//! which `.ci/start-replica` starts on port 5433 as a hot standby of the
//! PostgreSQL of `TEST_DATABASE_URL`.
//!
//! Where a read was served is told by what it shows: replay on the replica
//! is paused, so a booking made since is on the primary alone. A list that
//! lacks it came from the replica; one that has it came from the primary.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, TestAppBuilder, TestUser},
    proxy::Proxy,
    shop_fixture::ShopFixture,
};

/// Replay is paused for the whole replica: one test at a time holds it.
static REPLICA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long after their write a user's reads go to the primary, here. The
/// replica serves reads only while it lags less than this.
const READ_AFTER_WRITE: Duration = Duration::from_secs(2);

const SHOP_BOOKINGS: &str = "query($shop: ID!) { bookings(shopId: $shop, first: 50) { totalCount edges { node { id status } } } shop(id: $shop) { bookings(first: 50) { totalCount } } }";
const MY_BOOKINGS: &str = "{ bookings(first: 50) { totalCount } }";
const ANALYTICS: &str = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { bookingsCount cancelledCount } }";
const CANCEL: &str = "mutation($id: ID!) { cancelBooking(id: $id) { status } }";

/// The replica's own connection, for pausing and resuming its replay.
async fn replica_admin() -> DatabaseConnection {
    let url = std::env::var("TEST_READ_DATABASE_URL").unwrap();
    Database::connect(url.as_str()).await.unwrap()
}

/// The column `column` of the one row `sql` (with `values`) answers on `db`.
async fn one<T: sea_orm::TryGetable>(
    db: &DatabaseConnection,
    sql: &str,
    values: Vec<sea_orm::Value>,
    column: &str,
) -> T {
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    db.query_one_raw(statement).await.unwrap().unwrap().try_get::<T>("", column).unwrap()
}

async fn replay(replica: &DatabaseConnection, paused: bool) {
    let call = if paused { "pg_wal_replay_pause()" } else { "pg_wal_replay_resume()" };
    replica.execute_unprepared(&format!("SELECT {call}")).await.unwrap();
    if !paused {
        return;
    }
    // Pausing takes effect between two records.
    for _ in 0..200 {
        let sql = "SELECT pg_get_wal_replay_pause_state() AS state";
        if one::<String>(replica, sql, vec![], "state").await == "paused" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the replica's replay did not pause");
}

/// Waits until the replica has replayed everything the primary flushed.
async fn caught_up(app: &TestApp, replica: &DatabaseConnection) {
    let sql = "SELECT pg_current_wal_flush_lsn()::text AS lsn";
    let lsn: String = one(&app.state.db, sql, vec![], "lsn").await;
    for _ in 0..500 {
        let sql = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done";
        if one::<bool>(replica, sql, vec![lsn.clone().into()], "done").await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the replica did not catch up with the primary");
}

/// Pauses the replica's replay right after it replayed a write of its
/// own (a bystander's sign-up): its lag, the age of the last transaction
/// it replayed, starts from now.
async fn pause_after_a_write(app: &TestApp, replica: &DatabaseConnection, name: &str) {
    app.register(&format!("{name}@bystanders.test"), "correct horse battery", "Bystander").await;
    caught_up(app, replica).await;
    replay(replica, true).await;
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until `/ready` says reads go where `reads` names.
async fn reads_go_to(app: &TestApp, reads: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = readiness(app).await;
        assert_eq!(status, 200, "a replica's state never makes the API unready: {body}");
        if body["checks"]["readReplica"]["reads"] == reads {
            return body["checks"]["readReplica"].clone();
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reads never went to the {reads}: {last}");
}

/// A server whose reads may go to the replica. Without `keep_answers`,
/// signed-in answers are not kept, so every list is read again where the
/// route sends it.
fn app_with_replica(via: Option<std::net::SocketAddr>, keep_answers: bool) -> TestAppBuilder {
    TestApp::postgres().with_redis().with_read_replica(via).with_config(|config| {
        config.read_after_write_secs = READ_AFTER_WRITE.as_secs();
        config.personal_cache = keep_answers;
    })
}

/// What the owner's dashboard lists show: the ids in `bookings(shopId)`,
/// and the totals of it and of `Shop.bookings`.
async fn shop_lists(app: &TestApp, owner: &TestUser, shop_id: &str) -> (Vec<String>, u64, u64) {
    let data = app.data_as(owner, SHOP_BOOKINGS, json!({ "shop": shop_id })).await;
    let ids = data["bookings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let total = data["bookings"]["totalCount"].as_u64().unwrap();
    let nested = data["shop"]["bookings"]["totalCount"].as_u64().unwrap();
    (ids, total, nested)
}

/// A test's hold on the replica, a server whose reads go to it, and a
/// shop there with a client.
struct OnReplica {
    _held: tokio::sync::MutexGuard<'static, ()>,
    replica: DatabaseConnection,
    app: TestApp,
    shop: ShopFixture,
    client: TestUser,
}

/// Takes the replica (its replay running), starts `builder` once its reads
/// go there, and opens the shop `slug`; `None` where the variant cannot run.
async fn on_replica(builder: TestAppBuilder, slug: &str) -> Option<OnReplica> {
    if !builder.runs_here() {
        return None;
    }
    let held = REPLICA.lock().await;
    let replica = replica_admin().await;
    replay(&replica, false).await;
    let app = builder.start().await;
    reads_go_to(&app, "replica").await;
    let shop = ShopFixture::open(&app, slug, "Europe/Berlin", "09:00", "17:00").await;
    let email = format!("client@{slug}.test");
    let client = app.register(&email, "correct horse battery", "Client").await;
    Some(OnReplica { _held: held, replica, app, shop, client })
}

#[tokio::test]
async fn staff_lists_read_from_the_replica_and_writers_see_their_own_writes_on_every_server() {
    let Some(OnReplica { _held, replica, app, shop, client }) =
        on_replica(app_with_replica(None, false), "replica-shop").await
    else {
        return;
    };
    // A second API server on the same databases and Redis.
    let other = app.replica().await;
    reads_go_to(&other, "replica").await;
    let day = shop.upcoming_weekday();
    let first = shop.book(&app, &client, shop.at(day, 10, 0)).await;
    let first_id = first["data"]["createBooking"]["id"].as_str().unwrap().to_owned();
    caught_up(&app, &replica).await;
    // The owner's own writes (opening the shop) are past the window.
    tokio::time::sleep(READ_AFTER_WRITE + Duration::from_millis(200)).await;

    pause_after_a_write(&app, &replica, "first").await;
    let second = shop.book(&app, &client, shop.at(day, 11, 0)).await;
    let second_id = second["data"]["createBooking"]["id"].as_str().unwrap().to_owned();

    // The owner did not write: their lists come from the replica, which
    // has not replayed the second booking.
    let replica_statements = app.state.reads.replica_statements();
    let (ids, total, nested) = shop_lists(&app, &shop.owner, &shop.shop_id).await;
    assert_eq!(ids, vec![first_id.clone()], "the owner's list came from the paused replica");
    assert_eq!((total, nested), (1, 1));
    assert!(app.state.reads.replica_statements() > replica_statements);
    let (ids, ..) = shop_lists(&other, &shop.owner, &shop.shop_id).await;
    assert_eq!(ids, vec![first_id.clone()], "and on the other server too");

    // The client wrote: their own list is read from the primary.
    let mine = app.data_as(&client, MY_BOOKINGS, json!({})).await;
    assert_eq!(mine["bookings"]["totalCount"], 2);

    // Analytics are kept in the cache under the versions the second
    // booking bumped: they are never computed from a replica that lacks
    // it (else that stale answer would be kept).
    let range = json!({ "shop": shop.shop_id, "from": day.to_string(), "to": day.to_string() });
    let numbers = other.data_as(&shop.owner, ANALYTICS, range.clone()).await;
    assert_eq!(numbers["analytics"]["bookingsCount"], 2, "analytics hold the newest booking");

    // The owner writes on one server and reads on the other at once: from
    // the primary, since the write's mark is shared through Redis.
    let cancelled = app.data_as(&shop.owner, CANCEL, json!({ "id": second_id })).await;
    assert_eq!(cancelled["cancelBooking"]["status"], "CANCELLED");
    let (ids, total, nested) = shop_lists(&other, &shop.owner, &shop.shop_id).await;
    assert_eq!(ids.len(), 2, "the owner sees the booking they just cancelled");
    assert!(ids.contains(&second_id));
    assert_eq!((total, nested), (2, 2));
    let numbers = other.data_as(&shop.owner, ANALYTICS, range.clone()).await;
    assert_eq!(numbers["analytics"]["cancelledCount"], 1);

    // Past the window, and with the replica caught up, the replica serves
    // the owner again, and shows everything.
    replay(&replica, false).await;
    caught_up(&app, &replica).await;
    tokio::time::sleep(READ_AFTER_WRITE + Duration::from_millis(200)).await;
    let replica_statements = other.state.reads.replica_statements();
    let (ids, total, _) = shop_lists(&other, &shop.owner, &shop.shop_id).await;
    assert_eq!((ids.len(), total), (2, 2));
    assert!(other.state.reads.replica_statements() > replica_statements);
    let numbers = other.data_as(&shop.owner, ANALYTICS, range).await;
    assert_eq!(numbers["analytics"]["cancelledCount"], 1);
}

#[tokio::test]
async fn a_replica_that_stops_sends_reads_to_the_primary_until_it_returns() {
    let Ok(replica_url) = std::env::var("TEST_READ_DATABASE_URL") else {
        // `runs_here` says why.
        assert!(!app_with_replica(None, false).runs_here());
        return;
    };
    let upstream = url::Url::parse(&replica_url).unwrap();
    let upstream =
        tokio::net::lookup_host((upstream.host_str().unwrap(), upstream.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = Proxy::start(upstream).await;
    let Some(OnReplica { _held, replica, app, shop, client }) =
        on_replica(app_with_replica(Some(proxy.addr), false), "stopping").await
    else {
        return;
    };
    let health = reads_go_to(&app, "replica").await;
    assert_eq!(health["status"], "ok");
    assert!(health["lagSeconds"].as_f64().unwrap() <= 10.0);
    let day = shop.upcoming_weekday();
    shop.book(&app, &client, shop.at(day, 10, 0)).await;
    caught_up(&app, &replica).await;
    tokio::time::sleep(READ_AFTER_WRITE + Duration::from_millis(200)).await;
    let before = app.state.reads.replica_statements();
    assert_eq!(shop_lists(&app, &shop.owner, &shop.shop_id).await.1, 1);
    assert!(app.state.reads.replica_statements() > before, "read from the replica");

    // The replica stops: the very next read is answered, from the primary.
    // (Unless the prober saw it stop first, the read that finds it gone
    // is sent again to the primary; tried until that happened once.)
    let mut fell_back = false;
    for _ in 0..5 {
        reads_go_to(&app, "replica").await;
        let before = app.state.reads.replica_fallbacks();
        proxy.sever();
        assert_eq!(shop_lists(&app, &shop.owner, &shop.shop_id).await.1, 1);
        if app.state.reads.replica_fallbacks() > before {
            fell_back = true;
            break;
        }
        proxy.restore();
    }
    assert!(fell_back, "a read the stopped replica failed was answered by the primary");
    let health = reads_go_to(&app, "primary").await;
    assert_eq!(health["status"], "degraded");
    assert!(health["reason"].as_str().unwrap().contains("does not answer"), "{health}");
    let range = json!({ "shop": shop.shop_id, "from": day.to_string(), "to": day.to_string() });
    let numbers = app.data_as(&shop.owner, ANALYTICS, range).await;
    assert_eq!(numbers["analytics"]["bookingsCount"], 1);

    // It returns: reads go back to it by themselves.
    proxy.restore();
    reads_go_to(&app, "replica").await;
    let before = app.state.reads.replica_statements();
    assert_eq!(shop_lists(&app, &shop.owner, &shop.shop_id).await.1, 1);
    assert!(app.state.reads.replica_statements() > before, "read from the replica again");
}

#[tokio::test]
async fn a_replica_lagging_past_the_limit_sends_reads_to_the_primary() {
    let builder =
        app_with_replica(None, false).with_config(|config| config.max_replica_lag_secs = 1);
    let Some(OnReplica { _held, replica, app, shop, client }) =
        on_replica(builder, "lagging").await
    else {
        return;
    };
    let day = shop.upcoming_weekday();
    caught_up(&app, &replica).await;

    // Replay stops while writes go on: the replica falls behind by more
    // than the second allowed.
    pause_after_a_write(&app, &replica, "lagging").await;
    shop.book(&app, &client, shop.at(day, 10, 0)).await;
    tokio::time::sleep(READ_AFTER_WRITE + Duration::from_millis(200)).await;
    let health = reads_go_to(&app, "primary").await;
    assert_eq!(health["status"], "degraded");
    assert!(health["lagSeconds"].as_f64().unwrap() > 1.0, "{health}");
    assert!(health["reason"].as_str().unwrap().contains("lags more than 1 s"), "{health}");
    let (ids, total, nested) = shop_lists(&app, &shop.owner, &shop.shop_id).await;
    assert_eq!((ids.len(), total, nested), (1, 1, 1), "read from the primary");

    replay(&replica, false).await;
    let health = reads_go_to(&app, "replica").await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn an_answer_kept_for_later_is_never_read_from_a_replica_behind_it() {
    let Some(OnReplica { _held, replica, app, shop, client }) =
        on_replica(app_with_replica(None, true), "kept").await
    else {
        return;
    };
    let day = shop.upcoming_weekday();
    shop.book(&app, &client, shop.at(day, 10, 0)).await;
    caught_up(&app, &replica).await;
    tokio::time::sleep(READ_AFTER_WRITE + Duration::from_millis(200)).await;
    let before = app.state.reads.replica_statements();
    assert_eq!(shop_lists(&app, &shop.owner, &shop.shop_id).await.1, 1);
    assert!(app.state.reads.replica_statements() > before + 1, "read from the replica");

    // The client's booking moves the versions the owner's kept list was
    // kept under; the replica has not replayed it. A list computed there
    // would be kept under the new versions, and stay wrong: the owner's
    // list is read from the primary instead, and kept right.
    pause_after_a_write(&app, &replica, "kept").await;
    shop.book(&app, &client, shop.at(day, 11, 0)).await;
    let (ids, total, nested) = shop_lists(&app, &shop.owner, &shop.shop_id).await;
    assert_eq!((ids.len(), total, nested), (2, 2, 2));
    // Kept: read again, it costs no statement anywhere.
    let (primary, on_replica) = (app.statements(), app.state.reads.replica_statements());
    let (ids, total, nested) = shop_lists(&app, &shop.owner, &shop.shop_id).await;
    assert_eq!((ids.len(), total, nested), (2, 2, 2));
    assert_eq!((app.statements(), app.state.reads.replica_statements()), (primary, on_replica));
    replay(&replica, false).await;
}

#[tokio::test]
async fn without_a_replica_every_read_goes_to_the_primary_and_ready_says_so() {
    let app = TestApp::sqlite().start().await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["readReplica"], json!({ "status": "ok", "reads": "primary" }));
    assert!(!app.state.reads.has_replica());
}
