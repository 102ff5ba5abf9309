//! Input the database would refuse is refused by the API, with a clear
//! error: NUL characters anywhere, text longer than its column, dates and
//! cursors the API could not have written. Every mutation is run with the
//! longest text it allows, on both databases.

use chrono::Duration;
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error},
    shop_fixture::{BOOK, ShopFixture},
};

/// `n` characters of two bytes each, so a limit counted in bytes fails.
fn long(n: usize) -> String {
    "é".repeat(n)
}

async fn refused(app: &TestApp, user: Option<&TestUser>, query: &str, variables: Value) -> String {
    let response = match user {
        Some(user) => app.gql_as(user, query, variables).await,
        None => app.gql(query, variables).await,
    };
    let (code, message) = first_error(&response);
    assert_eq!(code, "BAD_USER_INPUT", "{query}: {response:#}");
    message
}

api_test!(a_nul_character_is_refused_wherever_it_is_sent, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "nul", "UTC", "09:00", "17:00").await;
    let before = app.statements();
    // In a literal of the document, as an escape.
    let message =
        refused(&app, None, r#"{ shops(search: "a\u0000") { totalCount } }"#, json!({})).await;
    assert!(message.contains("NUL"), "{message}");
    // In variables, anonymous and signed in, at any depth.
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    refused(&app, None, login, json!({ "e": "a\u{0}@example.com", "p": "x" })).await;
    refused(&app, None, login, json!({ "e": "a@example.com", "p": "pass\u{0}word" })).await;
    let register = "mutation($i: RegisterInput!) { register(input: $i) { token } }";
    let input = json!({ "i": { "email": "nul@example.com", "password": "fine and long", "name": "N\u{0}" } });
    refused(&app, None, register, input).await;
    let start = shop.at(shop.upcoming_weekday(), 10, 0);
    let booking = json!({ "input": { "barberId": shop.barber_id, "serviceId": shop.service_id,
        "startsAt": start.to_rfc3339(), "notes": "call me\u{0}" } });
    refused(&app, Some(&shop.owner), BOOK, booking).await;
    let time_off = "mutation($i: AddTimeOffInput!) { addTimeOff(input: $i) { id } }";
    let input = json!({ "i": { "barberId": shop.barber_id, "startsAt": start.to_rfc3339(),
        "endsAt": (start + Duration::hours(1)).to_rfc3339(), "reason": "\u{0}" } });
    refused(&app, Some(&shop.owner), time_off, input).await;
    // Two of them were signed in, as the owner whose token's identity is
    // kept since the shop was opened: nothing ran.
    assert_eq!(app.statements() - before, 0, "refused before any resolver ran");
    // In the variables of a document whose cost is known (it ran before),
    // which runs without the limits' extension.
    let search = "query($s: String) { shops(search: $s) { totalCount } }";
    app.data(search, json!({ "s": "a" })).await;
    let before = app.statements();
    let message = refused(&app, None, search, json!({ "s": "a\u{0}" })).await;
    assert!(message.contains("NUL"), "{message}");
    assert_eq!(app.statements() - before, 0, "refused before any resolver ran");
});

api_test!(every_mutation_takes_the_longest_text_it_allows_and_no_more, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "long", "UTC", "08:00", "20:00").await;
    let owner = &shop.owner;
    // register: name 200, email 254.
    let local = "l".repeat(64);
    let domain = format!("{}.{}.{}.example", "d".repeat(60), "e".repeat(60), "f".repeat(59));
    let email = format!("{local}@{domain}");
    assert_eq!(email.chars().count(), 254);
    let register = "mutation($i: RegisterInput!) { register(input: $i) { user { name email } } }";
    let data = app
        .data(
            register,
            json!({ "i": { "email": email, "password": "fine and long", "name": long(200) } }),
        )
        .await;
    assert_eq!(data["register"]["user"]["email"], json!(email));
    let message = refused(
        &app,
        None,
        register,
        json!({ "i": { "email": "x@long.test", "password": "fine and long", "name": long(201) } }),
    )
    .await;
    assert!(message.contains("200"), "{message}");

    // createShop / updateShop: name 200, slug 100, address 500.
    let create = "mutation($i: CreateShopInput!) { createShop(input: $i) { id name address } }";
    let slug = "s".repeat(100);
    let data = app
        .data_as(owner, create, json!({ "i": { "name": long(200), "slug": slug, "timezone": "UTC", "address": long(500) } }))
        .await;
    let shop_id = data["createShop"]["id"].clone();
    refused(
        &app,
        Some(owner),
        create,
        json!({ "i": { "name": "x", "slug": "t".repeat(101), "timezone": "UTC", "address": "x" } }),
    )
    .await;
    refused(
        &app,
        Some(owner),
        create,
        json!({ "i": { "name": "x", "slug": "shop-x", "timezone": "UTC", "address": long(501) } }),
    )
    .await;
    let update =
        "mutation($id: ID!, $i: UpdateShopInput!) { updateShop(id: $id, input: $i) { name } }";
    app.data_as(
        owner,
        update,
        json!({ "id": shop_id, "i": { "name": long(200), "address": long(500) } }),
    )
    .await;
    refused(&app, Some(owner), update, json!({ "id": shop_id, "i": { "name": long(201) } })).await;

    // addBarber / updateBarber: displayName 200, bio 1000, userEmail 254.
    let add = "mutation($i: AddBarberInput!) { addBarber(input: $i) { id displayName } }";
    let data = app
        .data_as(owner, add, json!({ "i": { "shopId": shop.shop_id, "displayName": long(200), "bio": long(1000), "userEmail": email } }))
        .await;
    let barber = data["addBarber"]["id"].clone();
    refused(
        &app,
        Some(owner),
        add,
        json!({ "i": { "shopId": shop.shop_id, "displayName": long(201) } }),
    )
    .await;
    refused(
        &app,
        Some(owner),
        add,
        json!({ "i": { "shopId": shop.shop_id, "displayName": "x", "bio": long(1001) } }),
    )
    .await;
    let update_barber =
        "mutation($id: ID!, $i: UpdateBarberInput!) { updateBarber(id: $id, input: $i) { bio } }";
    app.data_as(
        owner,
        update_barber,
        json!({ "id": barber, "i": { "displayName": long(200), "bio": long(1000) } }),
    )
    .await;
    refused(&app, Some(owner), update_barber, json!({ "id": barber, "i": { "bio": long(1001) } }))
        .await;

    // createService / updateService: name 200, description 1000.
    let service = "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }";
    let data = app
        .data_as(owner, service, json!({ "i": { "shopId": shop.shop_id, "name": long(200), "description": long(1000), "durationMinutes": 30, "priceCents": 100, "currency": "EUR", "barberIds": [shop.barber_id] } }))
        .await;
    let service_id = data["createService"]["id"].clone();
    refused(&app, Some(owner), service, json!({ "i": { "shopId": shop.shop_id, "name": "x", "description": long(1001), "durationMinutes": 30, "priceCents": 100, "currency": "EUR", "barberIds": [] } })).await;
    let update_service = "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { name } }";
    app.data_as(
        owner,
        update_service,
        json!({ "id": service_id, "i": { "name": long(200), "description": long(1000) } }),
    )
    .await;
    refused(
        &app,
        Some(owner),
        update_service,
        json!({ "id": service_id, "i": { "name": long(201) } }),
    )
    .await;

    // addTimeOff: reason 500 (the column is VARCHAR(500)).
    let time_off = "mutation($i: AddTimeOffInput!) { addTimeOff(input: $i) { reason } }";
    let day = shop.upcoming_weekday() + Duration::days(7);
    let window = |reason: String| {
        json!({ "i": { "barberId": shop.barber_id,
        "startsAt": shop.at(day, 8, 0).to_rfc3339(), "endsAt": shop.at(day, 9, 0).to_rfc3339(), "reason": reason } })
    };
    let data = app.data_as(owner, time_off, window(long(500))).await;
    assert_eq!(data["addTimeOff"]["reason"].as_str().unwrap().chars().count(), 500);
    let message = refused(&app, Some(owner), time_off, window(long(501))).await;
    assert!(message.contains("500"), "{message}");

    // createBooking notes 1000; cancelBooking reason 1000.
    let client = app.register("long-client@long.test", "fine and long", "Client").await;
    let start = shop.at(shop.upcoming_weekday(), 12, 0);
    let book = |notes: String| {
        json!({ "input": { "barberId": shop.barber_id, "serviceId": shop.service_id,
        "startsAt": start.to_rfc3339(), "notes": notes } })
    };
    refused(&app, Some(&client), BOOK, book(long(1001))).await;
    let data = app.data_as(&client, BOOK, book(long(1000))).await;
    let booking = data["createBooking"]["id"].clone();
    let cancel = "mutation($id: ID!, $r: String) { cancelBooking(id: $id, reason: $r) { status } }";
    refused(&app, Some(&client), cancel, json!({ "id": booking, "r": long(1001) })).await;
    let data = app.data_as(&client, cancel, json!({ "id": booking, "r": long(1000) })).await;
    assert_eq!(data["cancelBooking"]["status"], "CANCELLED");
});

api_test!(the_text_limits_are_the_columns, [sqlite, postgres], |app| {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    if app.backend != crate::helpers::Backend::Postgres {
        return; // SQLite does not enforce VARCHAR lengths; PostgreSQL does.
    }
    for (table, column, limit) in bookedbarber::domain::text::COLUMNS {
        let sql = format!(
            "SELECT character_maximum_length AS n FROM information_schema.columns \
             WHERE table_name = '{table}' AND column_name = '{column}'"
        );
        let row = app
            .state
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{table}.{column} does not exist"));
        let declared: i32 = row.try_get("", "n").unwrap();
        assert_eq!(usize::try_from(declared).unwrap(), *limit, "{table}.{column}");
    }
});

api_test!(dates_and_cursors_are_read_strictly, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "strict", "UTC", "09:00", "17:00").await;
    let analytics = "query($shop: ID!, $from: Date!, $to: Date!) { analytics(shopId: $shop, from: $from, to: $to) { bookingsCount } }";
    for odd in [" 2026-12-01", "2026-1-1", "2026-12-01T00:00:00Z", "2026-02-30"] {
        let response = app
            .gql_as(
                &shop.owner,
                analytics,
                json!({ "shop": shop.shop_id, "from": odd, "to": "2026-12-31" }),
            )
            .await;
        assert_eq!(first_error(&response).0, "BAD_USER_INPUT", "{odd:?}");
    }
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for odd in ["cursor:v1:-5", "cursor:v1:0", "cursor:v1:+1"] {
        let cursor = engine.encode(odd);
        let response = app
            .gql(
                "query($a: String) { shops(after: $a) { pageInfo { hasPreviousPage } } }",
                json!({ "a": cursor }),
            )
            .await;
        assert_eq!(first_error(&response).0, "BAD_USER_INPUT", "{odd}");
    }
});
