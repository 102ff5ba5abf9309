//! Analytics kept per shop-local day stay exact: random writes against the
//! from-scratch computation, and read-your-writes across replicas, also
//! when Redis was away during the write.

use bookedbarber::{
    auth::{
        Viewer,
        identity::{Loaded, load_viewer},
    },
    cache::{Entry, Fallback},
    domain::{
        analytics::{self, Range, Section},
        barber::{self as barbers, NewTimeOff},
        change::{Changed, Effects},
        dashboard::{Dashboard, DayOutcome, Outcome},
        lifecycle::{self, NewBooking, NewPayment},
        working_hours::Interval,
    },
    error::AppError,
};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use entity::{BookingStatus, PaymentMethod};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestAppBuilder, row_id, unkept},
    proxy::Proxy,
    shop_fixture::{SET_HOURS, ShopFixture},
};

/// A New York shop: its clocks go back on 2026-11-01.
const TZ: chrono_tz::Tz = chrono_tz::America::New_York;

fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).unwrap()
}

/// Ranges checked after every write: the days written to, the day of the
/// change of clocks alone, around it, wider with empty days, and two whole
/// months (kept as one entry each) around a partial one.
fn ranges() -> [(NaiveDate, NaiveDate); 5] {
    [
        (date(10, 29), date(11, 3)),
        (date(11, 1), date(11, 1)),
        (date(10, 31), date(11, 2)),
        (date(10, 25), date(11, 8)),
        (date(9, 20), date(11, 30)),
    ]
}

/// A value without its `generated_at` fields, for comparing numbers.
fn numbers_only(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("generated_at");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

struct World {
    shop: i64,
    owner: Viewer,
    clients: Vec<Viewer>,
    barbers: Vec<i64>,
    services: Vec<i64>,
    /// Every booking made: its id, start and status as last written.
    bookings: Vec<(i64, DateTime<Utc>, BookingStatus)>,
}

async fn viewer(app: &TestApp, user_id: &str) -> Viewer {
    let loaded = load_viewer(&app.state.db, row_id(user_id), None).await.unwrap();
    match loaded {
        Loaded::Viewer(viewer) => viewer,
        _ => panic!("the user {user_id} exists"),
    }
}

async fn world(app: &TestApp) -> World {
    let shop = ShopFixture::open(app, "property", TZ.name(), "00:00", "24:00").await;
    let second = app
        .data_as(
            &shop.owner,
            "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "displayName": "Alex" } }),
        )
        .await["addBarber"]["id"]
        .clone();
    let week: Vec<Value> =
        (1..=6).map(|d| json!({ "weekday": d, "opensAt": "06:00", "closesAt": "23:00" })).collect();
    app.data_as(&shop.owner, SET_HOURS, json!({ "barber": second, "hours": week })).await;
    let long = app
        .data_as(
            &shop.owner,
            "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "name": "Cut and beard", "durationMinutes": 45, "priceCents": 4000, "currency": "EUR", "barberIds": [shop.barber_id, second] } }),
        )
        .await["createService"]["id"]
        .clone();
    let mut clients = Vec::new();
    for n in 0..3 {
        let user = app
            .register(&format!("client{n}@property.test"), "correct horse battery", "Client")
            .await;
        clients.push(viewer(app, &user.id).await);
    }
    World {
        shop: row_id(&shop.shop_id),
        owner: viewer(app, &shop.owner.id).await,
        clients,
        barbers: vec![row_id(&shop.barber_id), row_id(second.as_str().unwrap())],
        services: vec![row_id(&shop.service_id), row_id(long.as_str().unwrap())],
        bookings: Vec::new(),
    }
}

/// A start on a quarter hour of one of the two weeks around the change of
/// clocks. Most fall in a busy morning, so bookings share local hours on
/// one day and weekday-hours a week apart; the rest at any local time (the
/// evening's are on the next day in UTC).
fn random_start(rng: &mut StdRng) -> DateTime<Utc> {
    let day = date(10, 25) + Duration::days(rng.random_range(0..15));
    let minute = if rng.random_bool(0.7) {
        rng.random_range(36..48) * 15
    } else {
        rng.random_range(0..=94) * 15
    };
    TZ.from_local_datetime(&day.and_hms_opt(minute / 60, minute % 60, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// Applies one random write and publishes what it changed, as a resolver
/// would; refusals (a taken slot, a closed booking) are part of the game,
/// internal errors are not.
async fn random_write(app: &TestApp, effects: &Effects, w: &mut World, rng: &mut StdRng) -> String {
    let db = &app.state.db;
    // A booking in one of `statuses`, at random.
    let pick = |rng: &mut StdRng, w: &World, statuses: &[BookingStatus]| {
        let found: Vec<_> =
            w.bookings.iter().filter(|(_, _, status)| statuses.contains(status)).collect();
        (!found.is_empty()).then(|| {
            let (id, start, _) = found[rng.random_range(0..found.len())];
            (*id, *start)
        })
    };
    let kind = rng.random_range(0..20);
    let booking = match kind {
        6..=13 => pick(rng, w, &[BookingStatus::Confirmed]),
        14..=15 => pick(rng, w, &[BookingStatus::Confirmed, BookingStatus::Completed]),
        _ => None,
    };
    let bookings = &mut w.bookings;
    // Keeps the list in step with a write that went through.
    let track = |changed: Changed<entity::booking::Model>| {
        changed.map(|b| match bookings.iter_mut().find(|(id, _, _)| *id == b.id) {
            Some(entry) => *entry = (b.id, b.starts_at, b.status),
            None => bookings.push((b.id, b.starts_at, b.status)),
        })
    };
    let (what, result): (String, Result<Changed<()>, AppError>) = match (kind, booking) {
        (0..=15, None) => {
            let start = random_start(rng);
            let client = &w.clients[rng.random_range(0..w.clients.len())];
            // The second barber offers only the second service.
            let barber = rng.random_range(0..2);
            let new = NewBooking {
                barber_id: w.barbers[barber],
                service_id: w.services[rng.random_range(barber..2)],
                starts_at: start,
                notes: None,
            };
            let made = lifecycle::create(db, client, new, start - Duration::days(3)).await;
            (format!("book {start}"), made.map(|(made, ..)| made).map(track))
        }
        (6..=7, Some((id, _))) => {
            let start = random_start(rng);
            let moved =
                lifecycle::reschedule(db, &w.owner, id, start, start - Duration::days(3)).await;
            (format!("reschedule {id} to {start}"), moved.map(track))
        }
        (8..=9, Some((id, start))) => (
            format!("cancel {id}"),
            lifecycle::cancel(db, &w.owner, id, None, start - Duration::days(1)).await.map(track),
        ),
        (10..=13, Some((id, start))) => {
            let to =
                if rng.random_bool(0.7) { BookingStatus::Completed } else { BookingStatus::NoShow };
            (
                format!("close {id} as {to:?}"),
                lifecycle::close(db, &w.owner, id, to, start + Duration::hours(1)).await.map(track),
            )
        }
        (14..=15, Some((id, start))) => {
            let new = NewPayment {
                booking_id: id,
                amount_cents: rng.random_range(100..=2500),
                method: PaymentMethod::Card,
            };
            (
                format!("pay {id}"),
                lifecycle::record_payment(db, &w.owner, new, start + Duration::hours(2))
                    .await
                    .map(track),
            )
        }
        (16, _) => {
            let barber = w.barbers[rng.random_range(0..2)];
            let model = entity::barber::Entity::find_by_id(barber).one(db).await.unwrap().unwrap();
            let mut hours: Vec<Interval> = Vec::new();
            for weekday in 1..=7 {
                if rng.random_bool(0.9) {
                    hours.push(Interval {
                        weekday,
                        opens_minute: rng.random_range(0..=6) * 60,
                        closes_minute: rng.random_range(18..=24) * 60,
                    });
                }
            }
            (
                format!("hours of {barber}: {} days", hours.len()),
                barbers::set_working_hours(db, w.owner.id(), &model, hours).await,
            )
        }
        _ => {
            let barber = w.barbers[rng.random_range(0..2)];
            let model = entity::barber::Entity::find_by_id(barber).one(db).await.unwrap().unwrap();
            // Fractions of a second, as the API accepts: read as whole
            // seconds, an overlap can come out a minute longer.
            let starts_at = random_start(rng) + Duration::milliseconds(rng.random_range(0..1000));
            let ends_at = starts_at
                + Duration::minutes(rng.random_range(4..=120) * 15)
                + Duration::milliseconds(rng.random_range(-999..1000));
            let new = NewTimeOff { starts_at, ends_at, reason: None };
            (
                format!("time off of {barber} {starts_at}..{ends_at}"),
                barbers::add_time_off(db, w.owner.id(), &model, new).await.map(erase),
            )
        }
    };
    match result {
        Ok(changed) => {
            effects.publish(changed).await;
            what
        }
        Err(AppError::Internal(error)) => panic!("{what}: an internal error: {error:#}"),
        Err(error) => format!("{what}: refused ({error:?})"),
    }
}

fn erase<T>(changed: Changed<T>) -> Changed<()> {
    changed.map(|_| ())
}

/// Every section over every range, through the cache, against the
/// from-scratch computation.
async fn check_every_section(app: &TestApp, shop_id: i64, step: &str) {
    let db = &app.state.db;
    let shop = entity::shop::Entity::find_by_id(shop_id).one(db).await.unwrap().unwrap();
    for (from, to) in ranges() {
        let range = Range::new(&shop, from, to).unwrap();
        let route = std::sync::Arc::new(app.state.reads.route(None, false));
        let dashboard = Dashboard::new(route, app.state.analytics.clone(), &shop, range);
        let cached = [
            serde_json::to_value(dashboard.summary().await.unwrap()).unwrap(),
            serde_json::to_value(dashboard.by_day().await.unwrap()).unwrap(),
            serde_json::to_value(dashboard.barbers().await.unwrap()).unwrap(),
            serde_json::to_value(dashboard.services().await.unwrap()).unwrap(),
            serde_json::to_value(dashboard.peak_hours().await.unwrap()).unwrap(),
        ];
        for (section, cached) in Section::ALL.into_iter().zip(cached) {
            let scratch = analytics::from_scratch(db, shop_id, section, &range).await.unwrap();
            let scratch = match serde_json::to_value(scratch).unwrap() {
                Value::Object(map) => map.into_iter().next().unwrap().1,
                other => other,
            };
            let scratch = match (section, scratch) {
                (Section::Summary, value) => value,
                (_, value) => value["rows"].clone(),
            };
            assert_eq!(
                numbers_only(cached),
                numbers_only(scratch),
                "{section:?} over {from}..={to} after {step}"
            );
        }
    }
}

/// Seeds of the random sequences: fixed ones, and `ANALYTICS_PROPERTY_SEED`
/// to replay or explore.
fn seeds() -> Vec<u64> {
    match std::env::var("ANALYTICS_PROPERTY_SEED") {
        Ok(seed) => vec![seed.parse().expect("ANALYTICS_PROPERTY_SEED is a number")],
        Err(_) => vec![1, 2],
    }
}

api_test!(random_writes_keep_every_section_exact, [sqlite, postgres_redis], |app| {
    let effects = Effects::new(
        app.state.analytics.clone(),
        app.state.known.clone(),
        app.state.public.clone(),
        app.state.events.clone(),
    );
    let mut w = world(&app).await;
    let mut done = Vec::new();
    for seed in seeds() {
        let mut rng = StdRng::seed_from_u64(seed);
        check_every_section(&app, w.shop, "nothing").await;
        for n in 0..40 {
            let what = random_write(&app, &effects, &mut w, &mut rng).await;
            check_every_section(&app, w.shop, &format!("write {n} of seed {seed}: {what}")).await;
            done.push(what);
        }
    }
    // Every kind of write happened, not only refusals.
    for kind in ["book", "reschedule", "cancel", "close", "pay", "hours", "time off"] {
        assert!(
            done.iter().any(|what| what.starts_with(kind) && !what.contains("refused")),
            "no {kind} went through: {done:#?}"
        );
    }
    // The cache did the work: whole sections and single days were reused.
    let analytics = &app.state.analytics;
    for section in Section::ALL {
        assert!(analytics.stat(section, Outcome::Hit) > 0, "{section:?} sections hit");
        assert!(analytics.day_stat(section, DayOutcome::Cached) > 0, "{section:?} days reused");
        assert!(
            analytics.day_stat(section, DayOutcome::Recomputed) > 0,
            "{section:?} days computed"
        );
    }
});

const COUNTS: &str = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { bookingsCount cancelledCount revenueByDay { bookingsCount } } }";

/// The dashboard of the booking's week as `shop`'s owner sees it on `app`.
async fn counts(app: &TestApp, shop: &ShopFixture, date: NaiveDate) -> Value {
    let vars = json!({ "shop": shop.shop_id, "from": (date - Duration::days(3)).to_string(), "to": (date + Duration::days(3)).to_string() });
    app.data_as(&shop.owner, &unkept(COUNTS), vars).await["analytics"].clone()
}

/// Reads the dashboard on `app` twice; the second read is a hit.
async fn warm(app: &TestApp, shop: &ShopFixture, date: NaiveDate) -> Value {
    let first = counts(app, shop, date).await;
    let hits = app.state.analytics.stat(Section::Summary, Outcome::Hit);
    assert_eq!(counts(app, shop, date).await, first);
    assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Hit), hits + 1, "kept");
    first
}

api_test!(
    a_booking_on_one_replica_shows_in_the_others_next_dashboard,
    [sqlite_redis, postgres_redis],
    |app| {
        let other = app.replica().await;
        let shop = ShopFixture::open(&app, "replicas", "Europe/Paris", "09:00", "17:00").await;
        let client = app.register("client@replicas.test", "correct horse battery", "Client").await;
        let date = shop.upcoming_weekday();
        let before = warm(&other, &shop, date).await;
        assert_eq!(before["bookingsCount"], 0);
        let booked = shop.book(&app, &client, shop.at(date, 10, 0)).await;
        assert!(booked.get("errors").is_none(), "{booked:#}");
        let after = counts(&other, &shop, date).await;
        assert_eq!(after["bookingsCount"], 1);
        assert_eq!(after["revenueByDay"][3]["bookingsCount"], 1);
        // Only that day was computed again.
        let recomputed = other.state.analytics.day_stat(Section::Summary, DayOutcome::Recomputed);
        assert_eq!(recomputed, 7 + 1, "the first read's 7 days, then the booking's day");
    }
);

/// Redis's address, from `TEST_REDIS_URL`.
fn redis_addr() -> std::net::SocketAddr {
    let url = url::Url::parse(&std::env::var("TEST_REDIS_URL").unwrap()).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let port = url.port().unwrap_or(6379);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).unwrap().next().unwrap()
}

api_test!(
    a_write_while_redis_is_away_shows_on_every_replica_once_it_is_back,
    [sqlite_redis, postgres_redis]
);

async fn a_write_while_redis_is_away_shows_on_every_replica_once_it_is_back(
    builder: TestAppBuilder,
) {
    let proxy = Proxy::start(redis_addr()).await;
    let app = builder
        .with_config(|config| {
            config.redis_url = Some(format!("redis://{}", proxy.addr));
            config.redis_timeout_ms = 500;
        })
        .start()
        .await;
    let other = app.replica().await;
    let shop = ShopFixture::open(&app, "outage", "America/New_York", "09:00", "17:00").await;
    let client = app.register("client@outage.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let booked = shop.book(&app, &client, shop.at(date, 10, 0)).await;
    let id = booked["data"]["createBooking"]["id"].clone();
    assert_eq!(warm(&other, &shop, date).await["cancelledCount"], 0);

    // Redis goes away; the cancellation commits on the first replica,
    // which cannot bump the day's version.
    proxy.sever();
    let cancelled = app
        .data_as(
            &client,
            "mutation($id: ID!) { cancelBooking(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(cancelled["cancelBooking"]["status"], "CANCELLED");
    assert!(app.state.cache.health().problem.is_some(), "the first replica saw Redis fail");
    proxy.restore();

    // The other replica never saw Redis fail, and Redis still holds the
    // old versions: the shop's mark in the database tells it.
    let misses = other.state.analytics.stat(Section::Summary, Outcome::Miss);
    let after = counts(&other, &shop, date).await;
    assert_eq!(after["cancelledCount"], 1, "{after:#}");
    assert_eq!(
        other.state.analytics.stat(Section::Summary, Outcome::Miss),
        misses + 1,
        "answered through the cache, not around it"
    );
}

#[test]
fn ranges_cross_the_change_of_clocks() {
    let (from, to) = ranges()[1];
    assert_eq!(from, to);
    let start = TZ.from_local_datetime(&from.and_hms_opt(0, 0, 0).unwrap()).single().unwrap();
    let end = TZ
        .from_local_datetime(&(to + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap();
    assert_eq!((end - start).num_hours(), 25, "2026-11-01 has 25 hours in New York");
}

api_test!(
    a_cascade_reads_its_fallbacks_only_when_a_first_entry_is_missing,
    [sqlite, sqlite_redis],
    |app| {
        let cache = &app.state.cache;
        let scope = "cascade:versions";
        let key = |name: &str| name.to_owned();
        let bytes = |text: &str| Some(text.as_bytes().to_vec());
        cache
            .write_many(vec![
                Entry::new(key("cascade:first:a"), b"A".to_vec()),
                Entry::new(key("cascade:month"), b"M".to_vec()),
            ])
            .await
            .unwrap();
        let month = Fallback { key: Some(key("cascade:month")), fields: vec![key("d1")] };

        // Every first entry is there: nothing else is read.
        let read = cache
            .read_cascade(
                &[key("cascade:first:a")],
                scope,
                "cascade:",
                std::slice::from_ref(&month),
            )
            .await
            .unwrap();
        assert_eq!(read.first, vec![bytes("A")]);
        assert!(read.fallbacks.is_none());

        // One is missing: each fallback's entry, and the versioned entries of
        // the fields of those missing or without a key, at their versions.
        assert!(cache.bump_fields(scope, &[key("d2")]).await);
        let d2 = cache.fields(scope, &[key("d2")]).await.unwrap()[0].unwrap();
        cache
            .write_many(vec![Entry::new(format!("cascade:d2:v{d2}"), b"D2".to_vec())])
            .await
            .unwrap();
        let fallbacks = [
            month.clone(),
            Fallback { key: Some(key("cascade:gone")), fields: vec![key("d1"), key("d2")] },
            Fallback { key: None, fields: vec![key("d2")] },
        ];
        let read = cache
            .read_cascade(
                &[key("cascade:first:a"), key("cascade:first:b")],
                scope,
                "cascade:",
                &fallbacks,
            )
            .await
            .unwrap();
        assert_eq!(read.first, vec![bytes("A"), None]);
        assert_eq!(
            read.fallbacks.unwrap(),
            vec![
                (bytes("M"), vec![]),
                (None, vec![(0, None), (d2, bytes("D2"))]),
                (None, vec![(d2, bytes("D2"))]),
            ]
        );

        // No first keys: the fallbacks are read.
        let days = Fallback { key: None, fields: vec![key("d2")] };
        let read = cache.read_cascade(&[], scope, "cascade:", &[days]).await.unwrap();
        assert_eq!(read.fallbacks.unwrap(), vec![(None, vec![(d2, bytes("D2"))])]);

        // An entry past its TTL is never served, though Redis, which counts
        // whole seconds, may still hold it.
        cache
            .write_many(vec![
                Entry::new(key("cascade:stale"), b"S".to_vec())
                    .for_ttl(std::time::Duration::from_millis(1)),
            ])
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let stale = Fallback { key: Some(key("cascade:stale")), fields: vec![key("d2")] };
        let read = cache
            .read_cascade(&[key("cascade:first:b")], scope, "cascade:", &[stale])
            .await
            .unwrap();
        assert_eq!(read.fallbacks.unwrap()[0].0, None);
    }
);
