//! A booking's life after it is made: moving, cancelling, closing, paying.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error, row_id, scalar},
    shop_fixture::ShopFixture,
};

const CANCEL: &str = "mutation($id: ID!, $reason: String) { cancelBooking(id: $id, reason: $reason) { status cancellationReason } }";
const COMPLETE: &str = "mutation($id: ID!) { completeBooking(id: $id) { status } }";
const NO_SHOW: &str = "mutation($id: ID!) { markNoShow(id: $id) { status } }";
const RESCHEDULE: &str = "mutation($id: ID!, $at: DateTime!) { rescheduleBooking(id: $id, startsAt: $at) { startsAt endsAt status } }";
const PAY: &str = "mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { paymentStatus payments { amountCents method } } }";

async fn booked(
    app: &TestApp,
    shop: &ShopFixture,
    client: &TestUser,
    start: DateTime<Utc>,
) -> Value {
    let response = shop.book(app, client, start).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["createBooking"]["id"].clone()
}

fn code(response: &Value) -> String {
    if response.get("errors").is_some() { first_error(response).0 } else { "OK".to_owned() }
}

/// Moves a booking `hours_ago` into the past, as time would.
pub async fn let_time_pass(app: &TestApp, id: &Value, hours_ago: i64) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let start = Utc::now() - Duration::hours(hours_ago);
    let end = start + Duration::minutes(30);
    entity::booking::Entity::update_many()
        .col_expr(entity::booking::Column::StartsAt, Expr::value(start))
        .col_expr(entity::booking::Column::EndsAt, Expr::value(end))
        .col_expr(entity::booking::Column::BlocksUntil, Expr::value(end))
        .filter(entity::booking::Column::Id.eq(row_id(id.as_str().unwrap())))
        .exec(&app.state.db)
        .await
        .unwrap();
}

api_test!(cancel_by_client_until_the_cutoff_and_by_staff_any_time, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "cancel", "UTC", "00:00", "24:00").await;
    let client = app.register("client@cancel.test", "correct horse battery", "Client").await;
    let stranger = app.register("stranger@cancel.test", "correct horse battery", "Stranger").await;
    let date = shop.upcoming_weekday();
    let id = booked(&app, &shop, &client, shop.at(date, 10, 0)).await;

    let vars = json!({ "id": id, "reason": "Flu" });
    assert_eq!(code(&app.gql_as(&stranger, CANCEL, vars.clone()).await), "FORBIDDEN");
    let data = app.data_as(&client, CANCEL, vars.clone()).await;
    assert_eq!(
        data["cancelBooking"],
        json!({ "status": "CANCELLED", "cancellationReason": "Flu" })
    );
    // The slot is free again at once.
    assert!(shop.slots(&app, date).await.contains(&shop.at(date, 10, 0)));
    let again = app.gql_as(&client, CANCEL, vars).await;
    let (found, message) = first_error(&again);
    assert_eq!(found, "BAD_USER_INPUT");
    assert!(message.contains("CANCELLED"), "{message}");

    // Inside the cut-off (2 h): the client may not, the barber may.
    shop.policy(&app, json!({ "minNoticeMinutes": 0 })).await;
    let soon = Utc::now() + Duration::minutes(75);
    let soon = soon
        - Duration::minutes(i64::from(chrono::Timelike::minute(&soon) % 15))
        - Duration::seconds(i64::from(chrono::Timelike::second(&soon)))
        - Duration::nanoseconds(i64::from(soon.timestamp_subsec_nanos()));
    // Every day is open 00:00–24:00, but no booking runs across midnight
    // (each day's hours end there): one that would starts at midnight,
    // still inside the cut-off.
    let ends = soon + Duration::minutes(30);
    let soon = if ends.date_naive() == soon.date_naive() || ends.time() == chrono::NaiveTime::MIN {
        soon
    } else {
        ends.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
    };
    let id = booked(&app, &shop, &client, soon).await;
    let late = app.gql_as(&client, CANCEL, json!({ "id": id })).await;
    let (found, message) = first_error(&late);
    assert_eq!(found, "BAD_USER_INPUT");
    assert!(message.contains("120 minutes"), "{message}");
    let data = app.data_as(&shop.barber_user, CANCEL, json!({ "id": id })).await;
    assert_eq!(data["cancelBooking"]["status"], "CANCELLED");
});

api_test!(complete_and_no_show_only_after_the_start_and_only_once, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "close", "UTC", "00:00", "24:00").await;
    let client = app.register("client@close.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let first = booked(&app, &shop, &client, shop.at(date, 10, 0)).await;
    let second = booked(&app, &shop, &client, shop.at(date, 11, 0)).await;

    let early = app.gql_as(&shop.owner, COMPLETE, json!({ "id": first })).await;
    let (found, message) = first_error(&early);
    assert_eq!(found, "BAD_USER_INPUT");
    assert!(message.contains("before it starts"), "{message}");

    let_time_pass(&app, &first, 2).await;
    assert_eq!(code(&app.gql_as(&client, COMPLETE, json!({ "id": first })).await), "FORBIDDEN");
    let data = app.data_as(&shop.barber_user, COMPLETE, json!({ "id": first })).await;
    assert_eq!(data["completeBooking"]["status"], "COMPLETED");
    for (mutation, action) in [(COMPLETE, "complete"), (NO_SHOW, "no-show"), (CANCEL, "cancel")] {
        let response = app.gql_as(&shop.owner, mutation, json!({ "id": first })).await;
        let (found, message) = first_error(&response);
        assert_eq!(found, "BAD_USER_INPUT", "{action}");
        assert!(message.contains("COMPLETED"), "{action}: {message}");
    }

    app.data_as(&shop.owner, CANCEL, json!({ "id": second })).await;
    let response = app.gql_as(&shop.owner, COMPLETE, json!({ "id": second })).await;
    assert!(first_error(&response).1.contains("CANCELLED"));

    let third = booked(&app, &shop, &client, shop.at(date, 12, 0)).await;
    let_time_pass(&app, &third, 4).await;
    let data = app.data_as(&shop.owner, NO_SHOW, json!({ "id": third })).await;
    assert_eq!(data["markNoShow"]["status"], "NO_SHOW");
});

api_test!(reschedule_frees_the_old_time_under_the_same_rules, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "move", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@move.test", "correct horse battery", "Client").await;
    let other = app.register("other@move.test", "correct horse battery", "Other").await;
    let date = shop.upcoming_weekday();
    let id = booked(&app, &shop, &client, shop.at(date, 10, 0)).await;
    booked(&app, &shop, &other, shop.at(date, 14, 0)).await;

    // Onto another booking: CONFLICT; outside hours: BAD_USER_INPUT.
    let onto = app
        .gql_as(&client, RESCHEDULE, json!({ "id": id, "at": shop.at(date, 14, 15).to_rfc3339() }))
        .await;
    assert_eq!(code(&onto), "CONFLICT");
    let outside = app
        .gql_as(&client, RESCHEDULE, json!({ "id": id, "at": shop.at(date, 18, 0).to_rfc3339() }))
        .await;
    assert_eq!(code(&outside), "BAD_USER_INPUT");
    assert_eq!(
        code(
            &app.gql_as(
                &other,
                RESCHEDULE,
                json!({ "id": id, "at": shop.at(date, 11, 0).to_rfc3339() })
            )
            .await
        ),
        "FORBIDDEN"
    );

    // Half an hour later overlaps only itself, which does not count.
    let data = app
        .data_as(&client, RESCHEDULE, json!({ "id": id, "at": shop.at(date, 10, 15).to_rfc3339() }))
        .await;
    let moved: DateTime<Utc> =
        data["rescheduleBooking"]["startsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(moved, shop.at(date, 10, 15));
    let slots = shop.slots(&app, date).await;
    assert!(slots.contains(&shop.at(date, 9, 45)), "the old time is free again");
    assert!(!slots.contains(&shop.at(date, 10, 15)));
});

api_test!(payments_add_up_to_the_price_and_never_more, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "pay", "UTC", "00:00", "24:00").await;
    let client = app.register("client@pay.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let id = booked(&app, &shop, &client, shop.at(date, 10, 0)).await;
    let pay = |amount: i64, method: &str| json!({ "input": { "bookingId": id, "amountCents": amount, "method": method } });

    assert_eq!(code(&app.gql_as(&client, PAY, pay(100, "CARD")).await), "FORBIDDEN");
    for bad in [0, -5] {
        let response = app.gql_as(&shop.owner, PAY, pay(bad, "CARD")).await;
        let (found, message) = first_error(&response);
        assert_eq!(found, "BAD_USER_INPUT");
        assert!(message.contains("amountCents"), "{message}");
    }
    let data = app.data_as(&shop.owner, PAY, pay(1000, "CASH")).await;
    assert_eq!(data["recordPayment"]["paymentStatus"], "PARTIALLY_PAID");
    let over = app.gql_as(&shop.owner, PAY, pay(1501, "CARD")).await;
    let (found, message) = first_error(&over);
    assert_eq!(found, "BAD_USER_INPUT");
    assert!(message.contains("1500"), "{message}");
    let data = app.data_as(&shop.barber_user, PAY, pay(1500, "CARD")).await;
    assert_eq!(data["recordPayment"]["paymentStatus"], "PAID");
    assert_eq!(
        data["recordPayment"]["payments"],
        json!([{ "amountCents": 1000, "method": "CASH" }, { "amountCents": 1500, "method": "CARD" }])
    );
    assert_eq!(code(&app.gql_as(&shop.owner, PAY, pay(1, "OTHER")).await), "BAD_USER_INPUT");

    // Ten concurrent payments of half the price: two fit, no more.
    let second = booked(&app, &shop, &client, shop.at(date, 12, 0)).await;
    let half = json!({ "input": { "bookingId": second, "amountCents": 1250, "method": "CARD" } });
    let attempts = (0..10).map(|_| app.gql_as(&shop.owner, PAY, half.clone()));
    let results = futures_util::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(accepted, 2);
    let row = row_id(second.as_str().unwrap());
    let paid = scalar(
        &app,
        &format!(
            "SELECT CAST(SUM(amount_cents) AS BIGINT) AS n FROM payments WHERE booking_id = {row}"
        ),
    )
    .await;
    assert_eq!(paid, 2500);

    // No payment for a cancelled booking.
    let third = booked(&app, &shop, &client, shop.at(date, 14, 0)).await;
    app.data_as(&client, CANCEL, json!({ "id": third })).await;
    let response = app
        .gql_as(
            &shop.owner,
            PAY,
            json!({ "input": { "bookingId": third, "amountCents": 100, "method": "CASH" } }),
        )
        .await;
    assert!(first_error(&response).1.contains("CANCELLED"));
});
