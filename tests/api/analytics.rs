//! Analytics: every number against a hand-made data set, the cache's
//! freshness after each kind of write, and single flight.

use bookedbarber::domain::dashboard::{Outcome, Section};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, NotSet};
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error, row_id, unkept},
    shop_fixture::{SET_HOURS, ShopFixture},
};

/// Every field of the dashboard.
pub(crate) const DASHBOARD: &str = r#"
query($shop: ID!, $from: Date!, $to: Date!) {
  analytics(shopId: $shop, from: $from, to: $to) {
    bookingsCount completedCount cancelledCount noShowCount revenueCents averageTicketCents
    noShowRate cancellationRate utilization repeatClientRate
    revenueByDay { date bookingsCount revenueCents }
    barberPerformance { barber { id } bookingsCount completedCount revenueCents noShowRate utilization }
    topServices { service { id } bookingsCount revenueCents }
    peakHours { weekday hour bookingsCount }
    generatedAt
  }
}"#;

const ANALYTICS_TZ: chrono_tz::Tz = chrono_tz::America::New_York;

fn local(date: (i32, u32, u32), hour: u32, minute: u32) -> DateTime<Utc> {
    ANALYTICS_TZ
        .with_ymd_and_hms(date.0, date.1, date.2, hour, minute, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) struct Dataset {
    pub shop: ShopFixture,
    barber_b: String,
    service_long: String,
}

/// Writes a past booking straight into the table, as time would have.
#[allow(clippy::too_many_arguments)]
async fn past_booking(
    app: &TestApp,
    shop: &ShopFixture,
    barber: &str,
    service: &str,
    client: &TestUser,
    start: DateTime<Utc>,
    minutes: i64,
    status: entity::BookingStatus,
    price: i64,
) {
    entity::booking::ActiveModel {
        id: NotSet,
        shop_id: Set(row_id(&shop.shop_id)),
        barber_id: Set(row_id(barber)),
        client_id: Set(row_id(&client.id)),
        service_id: Set(row_id(service)),
        starts_at: Set(start),
        ends_at: Set(start + Duration::minutes(minutes)),
        blocks_until: Set(start + Duration::minutes(minutes)),
        status: Set(status),
        price_cents: Set(price),
        currency: Set("USD".to_owned()),
        notes: Set(None),
        cancellation_reason: Set(None),
        created_at: Set(start - Duration::days(3)),
        updated_at: Set(start),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
}

/// The week of Monday 2026-06-01 to Sunday 2026-06-07 in New York (summer
/// time, UTC−4), with two barbers, two services and three clients.
pub(crate) async fn dataset(app: &TestApp) -> Dataset {
    use entity::BookingStatus::*;
    let shop = ShopFixture::open(app, "numbers", "America/New_York", "09:00", "17:00").await;
    // Barber A (the fixture's) works Monday to Friday, 09:00–17:00.
    shop.set_hours(app, (1..=5).map(|d| (d, "09:00", "17:00")).collect()).await;
    let data = app
        .data_as(
            &shop.owner,
            "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "displayName": "Bo" } }),
        )
        .await;
    let barber_b = data["addBarber"]["id"].as_str().unwrap().to_owned();
    // Barber B works Mondays, 10:00–14:00.
    app.data_as(
        &shop.owner,
        SET_HOURS,
        json!({ "barber": barber_b, "hours": [{ "weekday": 1, "opensAt": "10:00", "closesAt": "14:00" }] }),
    )
    .await;
    let data = app
        .data_as(
            &shop.owner,
            "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "name": "Long", "durationMinutes": 60, "priceCents": 5000, "barberIds": [shop.barber_id, barber_b] } }),
        )
        .await;
    let service_long = data["createService"]["id"].as_str().unwrap().to_owned();
    // A is off Wednesday 09:00–11:00 (120 minutes of work) and Saturday
    // (no work anyway).
    for (from, to) in [
        (local((2026, 6, 3), 9, 0), local((2026, 6, 3), 11, 0)),
        (local((2026, 6, 6), 0, 0), local((2026, 6, 7), 0, 0)),
    ] {
        app.data_as(
            &shop.owner,
            "mutation($input: AddTimeOffInput!) { addTimeOff(input: $input) { id } }",
            json!({ "input": { "barberId": shop.barber_id, "startsAt": from.to_rfc3339(), "endsAt": to.to_rfc3339() } }),
        )
        .await;
    }
    let c1 = app.register("c1@numbers.test", "correct horse battery", "C1").await;
    let c2 = app.register("c2@numbers.test", "correct horse battery", "C2").await;
    let c3 = app.register("c3@numbers.test", "correct horse battery", "C3").await;
    let (a, b, short, long) = (&shop.barber_id, &barber_b, &shop.service_id, &service_long);
    for (barber, service, client, start, minutes, status, price) in [
        (a, short, &c1, local((2026, 6, 1), 10, 0), 30, Completed, 2000),
        (a, long, &c1, local((2026, 6, 2), 11, 0), 60, Completed, 5000),
        (a, short, &c2, local((2026, 6, 2), 15, 0), 30, NoShow, 2000),
        (b, long, &c2, local((2026, 6, 1), 12, 0), 60, Cancelled, 5000),
        (b, short, &c3, local((2026, 6, 1), 10, 0), 30, Confirmed, 2000),
        // 23:30 on the last day is 03:30 UTC the next day, yet belongs here.
        (a, short, &c3, local((2026, 6, 7), 23, 30), 30, Completed, 2100),
        // Just outside the range on both ends.
        (a, short, &c1, local((2026, 6, 8), 0, 30), 30, Completed, 2000),
        (a, short, &c1, local((2026, 5, 31), 23, 0), 30, Completed, 2000),
    ] {
        past_booking(app, &shop, barber, service, client, start, minutes, status, price).await;
    }
    Dataset { shop, barber_b, service_long }
}

fn close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap();
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

api_test!(every_number_of_the_dashboard, [sqlite, postgres, sqlite_redis, postgres_redis], |app| {
    let d = dataset(&app).await;
    let vars = json!({ "shop": d.shop.shop_id, "from": "2026-06-01", "to": "2026-06-07" });
    let data = app.data_as(&d.shop.owner, DASHBOARD, vars.clone()).await;
    let a = &data["analytics"];
    assert_eq!(a["bookingsCount"], 6);
    assert_eq!(a["completedCount"], 3);
    assert_eq!(a["cancelledCount"], 1);
    assert_eq!(a["noShowCount"], 1);
    assert_eq!(a["revenueCents"], 2000 + 5000 + 2100);
    assert_eq!(a["averageTicketCents"], 3033, "9100 / 3 = 3033.33");
    close(&a["noShowRate"], 1.0 / 4.0);
    close(&a["cancellationRate"], 1.0 / 6.0);
    // Booked (CONFIRMED + COMPLETED): 30 + 60 + 30 + 30 minutes. Working:
    // A 5 × 480 − 120 off, B 240.
    close(&a["utilization"], 150.0 / (2400.0 - 120.0 + 240.0));
    // Non-cancelled bookings: c1 two, c2 one, c3 two.
    close(&a["repeatClientRate"], 2.0 / 3.0);

    let days = a["revenueByDay"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let expected_days = [
        ("2026-06-01", 3, 2000),
        ("2026-06-02", 2, 5000),
        ("2026-06-03", 0, 0),
        ("2026-06-04", 0, 0),
        ("2026-06-05", 0, 0),
        ("2026-06-06", 0, 0),
        ("2026-06-07", 1, 2100),
    ];
    for (day, (date, bookings, revenue)) in days.iter().zip(expected_days) {
        assert_eq!(
            day,
            &json!({ "date": date, "bookingsCount": bookings, "revenueCents": revenue })
        );
    }

    let barbers = a["barberPerformance"].as_array().unwrap();
    assert_eq!(barbers.len(), 2);
    let barber_a = barbers.iter().find(|b| b["barber"]["id"] == d.shop.barber_id.as_str()).unwrap();
    assert_eq!(barber_a["bookingsCount"], 4);
    assert_eq!(barber_a["completedCount"], 3);
    assert_eq!(barber_a["revenueCents"], 9100);
    close(&barber_a["noShowRate"], 0.25);
    close(&barber_a["utilization"], 120.0 / 2280.0);
    let barber_b = barbers.iter().find(|b| b["barber"]["id"] == d.barber_b.as_str()).unwrap();
    assert_eq!(barber_b["bookingsCount"], 2);
    assert_eq!(barber_b["completedCount"], 0);
    assert_eq!(barber_b["revenueCents"], 0);
    close(&barber_b["noShowRate"], 0.0);
    close(&barber_b["utilization"], 30.0 / 240.0);

    assert_eq!(
        a["topServices"],
        json!([
            { "service": { "id": d.service_long }, "bookingsCount": 2, "revenueCents": 5000 },
            { "service": { "id": d.shop.service_id }, "bookingsCount": 4, "revenueCents": 4100 }
        ])
    );
    assert_eq!(
        a["peakHours"],
        json!([
            { "weekday": 1, "hour": 10, "bookingsCount": 2 },
            { "weekday": 1, "hour": 12, "bookingsCount": 1 },
            { "weekday": 2, "hour": 11, "bookingsCount": 1 },
            { "weekday": 2, "hour": 15, "bookingsCount": 1 },
            { "weekday": 7, "hour": 23, "bookingsCount": 1 }
        ])
    );

    // Through the shop, the same numbers, from the cache.
    let hits = app.state.analytics.stat(Section::Summary, Outcome::Hit);
    let again = app
        .data_as(
            &d.shop.owner,
            "query($shop: ID!) { node(id: $shop) { ... on Shop { analytics(from: \"2026-06-01\", to: \"2026-06-07\") { revenueCents generatedAt } } } }",
            json!({ "shop": d.shop.shop_id }),
        )
        .await;
    assert_eq!(again["node"]["analytics"]["revenueCents"], 9100);
    assert_eq!(
        again["node"]["analytics"]["generatedAt"], a["generatedAt"],
        "a hit keeps its instant"
    );
    assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Hit), hits + 1);
});

api_test!(
    one_number_computes_one_section,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let d = dataset(&app).await;
        let vars = json!({ "shop": d.shop.shop_id, "from": "2026-06-01", "to": "2026-06-07" });
        let query = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { revenueCents } }";
        app.data_as(&d.shop.owner, &unkept(query), vars.clone()).await;
        assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Miss), 1);
        for section in [Section::ByDay, Section::Barbers, Section::Services, Section::PeakHours] {
            for outcome in [Outcome::Hit, Outcome::Miss] {
                assert_eq!(app.state.analytics.stat(section, outcome), 0, "{section:?}");
            }
        }
        app.data_as(&d.shop.owner, &unkept(query), vars).await;
        assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Hit), 1);
        assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Miss), 1);
        // The same counters, for operators.
        let metrics =
            app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.lines().any(|l| l.starts_with("bookedbarber_analytics_cache_total")
                && l.contains("section=\"summary\"")
                && l.contains("outcome=\"hit\"")),
            "{metrics}"
        );
    }
);

api_test!(
    concurrent_misses_compute_once,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let d = dataset(&app).await;
        let vars = json!({ "shop": d.shop.shop_id, "from": "2026-06-01", "to": "2026-06-07" });
        let results = futures_util::future::join_all((0..20).map(|_| {
            let (app, owner, vars) = (&app, &d.shop.owner, vars.clone());
            async move { app.data_as(owner, &unkept(DASHBOARD), vars).await }
        }))
        .await;
        assert!(results.iter().all(|r| r["analytics"]["revenueCents"] == 9100));
        for section in Section::ALL {
            assert_eq!(
                app.state.analytics.stat(section, Outcome::Miss),
                1,
                "{section:?} computed once"
            );
            assert_eq!(app.state.analytics.stat(section, Outcome::Hit), 19, "{section:?}");
        }
    }
);

// Every mutation that changes what a dashboard shows, each followed by a
// read of the cached dashboard: deleting any one invalidation (an arm of
// `Effects::invalidate`, or the change a domain write returns) fails here.
api_test!(
    every_kind_of_write_shows_up_in_the_next_query,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "fresh", "UTC", "09:00", "17:00").await;
        let client = app.register("client@fresh.test", "correct horse battery", "Client").await;
        let date = shop.upcoming_weekday();
        let query = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { bookingsCount cancelledCount completedCount noShowCount utilization generatedAt peakHours { hour } barberPerformance { bookingsCount } } }";
        let read = {
            let (app, shop) = (&app, &shop);
            move |from: NaiveDate, to: NaiveDate| {
                let vars =
                    json!({ "shop": shop.shop_id, "from": from.to_string(), "to": to.to_string() });
                async move { app.data_as(&shop.owner, query, vars).await["analytics"].clone() }
            }
        };
        let (from, to) = (date - Duration::days(1), date + Duration::days(1));
        let before = read(from, to).await;
        assert_eq!(before, read(from, to).await, "unchanged data: a hit");
        // createBooking.
        let booked = shop.book(&app, &client, shop.at(date, 10, 0)).await;
        let id = booked["data"]["createBooking"]["id"].clone();
        let after_booking = read(from, to).await;
        assert_eq!(after_booking["bookingsCount"], 1);
        close(&after_booking["utilization"], 30.0 / (3.0 * 480.0));
        // recordPayment (changes no number here, but must not be served stale).
        app.data_as(
            &shop.owner,
            "mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { id } }",
            json!({ "input": { "bookingId": id, "amountCents": 500, "method": "CASH" } }),
        )
        .await;
        let after_payment = read(from, to).await;
        assert_ne!(
            after_payment["generatedAt"], after_booking["generatedAt"],
            "recomputed after a payment"
        );
        // rescheduleBooking.
        app.data_as(
        &client,
        "mutation($id: ID!, $at: DateTime!) { rescheduleBooking(id: $id, startsAt: $at) { id } }",
        json!({ "id": id, "at": shop.at(date, 11, 0).to_rfc3339() }),
    )
    .await;
        assert_eq!(read(from, to).await["peakHours"], json!([{ "hour": 11 }]));
        // Two more, to complete and to miss later.
        let second = shop.book(&app, &client, shop.at(date, 12, 0)).await["data"]["createBooking"]
            ["id"]
            .clone();
        let third =
            shop.book(&app, &client, shop.at(date, 13, 0)).await["data"]["createBooking"]["id"]
                .clone();
        assert_eq!(read(from, to).await["bookingsCount"], 3);
        // addTimeOff.
        app.data_as(
        &shop.owner,
        "mutation($input: AddTimeOffInput!) { addTimeOff(input: $input) { id } }",
        json!({ "input": { "barberId": shop.barber_id, "startsAt": shop.at(date, 14, 0).to_rfc3339(), "endsAt": shop.at(date, 16, 0).to_rfc3339() } }),
    )
    .await;
        close(&read(from, to).await["utilization"], 90.0 / (3.0 * 480.0 - 120.0));
        // setWorkingHours.
        shop.set_hours(&app, (1..=7).map(|d| (d, "09:00", "13:00")).collect()).await;
        close(&read(from, to).await["utilization"], 90.0 / (3.0 * 240.0));
        // addBarber.
        app.data_as(
            &shop.owner,
            "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "displayName": "Second chair" } }),
        )
        .await;
        assert_eq!(read(from, to).await["barberPerformance"].as_array().unwrap().len(), 2);
        // cancelBooking.
        app.data_as(
            &client,
            "mutation($id: ID!) { cancelBooking(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
        assert_eq!(read(from, to).await["cancelledCount"], 1);

        // completeBooking and markNoShow, on bookings moved into the past (in
        // the database, which no cached range has seen yet).
        crate::lifecycle::let_time_pass(&app, &second, 3).await;
        crate::lifecycle::let_time_pass(&app, &third, 2).await;
        let today = Utc::now().date_naive();
        let (past_from, past_to) = (today - Duration::days(2), today + Duration::days(2));
        let past = read(past_from, past_to).await;
        assert_eq!(
            (past["bookingsCount"].clone(), past["completedCount"].clone()),
            (json!(2), json!(0))
        );
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { completeBooking(id: $id) { status } }",
            json!({ "id": second }),
        )
        .await;
        assert_eq!(read(past_from, past_to).await["completedCount"], 1);
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { markNoShow(id: $id) { status } }",
            json!({ "id": third }),
        )
        .await;
        let closed = read(past_from, past_to).await;
        assert_eq!(closed["noShowCount"], 1);
        // updateShop: another time zone puts the bookings in other hours.
        app.data_as(
        &shop.owner,
        "mutation($id: ID!, $input: UpdateShopInput!) { updateShop(id: $id, input: $input) { id } }",
        json!({ "id": shop.shop_id, "input": { "timezone": "Asia/Kolkata" } }),
    )
    .await;
        assert_ne!(read(past_from, past_to).await["peakHours"], closed["peakHours"]);
    }
);

api_test!(
    only_the_owner_and_only_sensible_ranges,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "private", "UTC", "09:00", "17:00").await;
        let client = app.register("client@private.test", "correct horse battery", "Client").await;
        let query = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { bookingsCount } }";
        let vars = |from: &str, to: &str| json!({ "shop": shop.shop_id, "from": from, "to": to });
        for (user, code) in [(&shop.barber_user, "FORBIDDEN"), (&client, "FORBIDDEN")] {
            assert_eq!(
                first_error(&app.gql_as(user, query, vars("2026-01-01", "2026-01-31")).await).0,
                code
            );
        }
        assert_eq!(
            first_error(&app.gql(query, vars("2026-01-01", "2026-01-31")).await).0,
            "UNAUTHENTICATED"
        );
        for (from, to, word) in [
            ("2026-02-01", "2026-01-31", "from"),
            ("2025-01-01", "2026-01-02", "366"),
            ("2026-02-30", "2026-03-01", "Date"),
        ] {
            let (code, message) =
                first_error(&app.gql_as(&shop.owner, query, vars(from, to)).await);
            assert_eq!(code, "BAD_USER_INPUT", "{from}..{to}");
            assert!(message.contains(word), "{word}: {message}");
        }
        // 366 days is fine (a leap year).
        let data = app.data_as(&shop.owner, query, vars("2028-01-01", "2028-12-31")).await;
        assert_eq!(data["analytics"]["bookingsCount"], 0);
    }
);
