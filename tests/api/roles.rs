//! The role matrix: every private field against every kind of caller.
//!
//! Seeded world: shop A (`sharp-co-london`, owner@demo.test) with barbers
//! barber@demo.test and barber3@demo.test; shop B (owner2@demo.test) with
//! barber2 and barber4; clients client@demo.test … client10@demo.test.

use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error, row_id, scalar},
};

struct World {
    owner: TestUser,
    barber: TestUser,
    colleague: TestUser,
    client: TestUser,
    other_owner: TestUser,
    stranger: TestUser,
    shop_a: String,
    barber_id: String,
    colleague_id: String,
}

async fn world(app: &TestApp) -> World {
    app.seed(2, 4, 10, 400).await;
    let owner = app.login_seeded("owner@demo.test").await;
    let barber = app.login_seeded("barber@demo.test").await;
    let colleague = app.login_seeded("barber3@demo.test").await;
    let client = app.login_seeded("client@demo.test").await;
    let other_owner = app.login_seeded("owner2@demo.test").await;
    let stranger = app.register("stranger@example.com", "correct horse battery", "Stranger").await;
    let membership = "{ viewer { memberships { role shop { id slug } barber { id } } } }";
    let mine = app.data_as(&barber, membership, json!({})).await;
    let shop_a = mine["viewer"]["memberships"][0]["shop"]["id"].as_str().unwrap().to_owned();
    assert_eq!(mine["viewer"]["memberships"][0]["shop"]["slug"], "sharp-co-london");
    let barber_id = mine["viewer"]["memberships"][0]["barber"]["id"].as_str().unwrap().to_owned();
    let theirs = app.data_as(&colleague, membership, json!({})).await;
    assert_eq!(theirs["viewer"]["memberships"][0]["shop"]["id"], shop_a.as_str());
    let colleague_id =
        theirs["viewer"]["memberships"][0]["barber"]["id"].as_str().unwrap().to_owned();
    World {
        owner,
        barber,
        colleague,
        client,
        other_owner,
        stranger,
        shop_a,
        barber_id,
        colleague_id,
    }
}

/// Runs `query` as `user` (or anonymously) and returns the first error's
/// code, or `"OK"`.
async fn outcome(app: &TestApp, user: Option<&TestUser>, query: &str, variables: Value) -> String {
    let response = match user {
        Some(user) => app.gql_as(user, query, variables).await,
        None => app.gql(query, variables).await,
    };
    if response.get("errors").is_some() { first_error(&response).0 } else { "OK".to_owned() }
}

const BOOKING: &str =
    "query($id: ID!) { booking(id: $id) { id shop { id } barber { id } client { email } } }";

api_test!(booking_by_id, [sqlite, postgres], |app| {
    let w = world(&app).await;
    // A booking in the barber's schedule whose client is not client@demo.test.
    let schedule = app
        .data_as(
            &w.owner,
            "query($shop: ID!, $barber: ID!) { bookings(shopId: $shop, barberId: $barber, first: 100) { nodes { id client { email } } } }",
            json!({ "shop": w.shop_a, "barber": w.barber_id }),
        )
        .await;
    let in_schedule = schedule["bookings"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["client"]["email"] != "client@demo.test")
        .expect("a booking of another client")["id"]
        .clone();
    // One of client@demo.test's bookings at shop B.
    let own = app
        .data_as(&w.client, "{ bookings(first: 100) { nodes { id shop { id } } } }", json!({}))
        .await;
    let at_b = own["bookings"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["shop"]["id"] != w.shop_a.as_str())
        .expect("a booking at shop B")["id"]
        .clone();

    let vars = json!({ "id": in_schedule });
    for (user, expected) in [
        (Some(&w.owner), "OK"),
        (Some(&w.barber), "OK"),
        (Some(&w.colleague), "FORBIDDEN"),
        (Some(&w.client), "FORBIDDEN"),
        (Some(&w.other_owner), "FORBIDDEN"),
        (Some(&w.stranger), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ] {
        assert_eq!(
            outcome(&app, user, BOOKING, vars.clone()).await,
            expected,
            "{:?}",
            user.map(|u| &u.email)
        );
    }
    let vars = json!({ "id": at_b });
    for (user, expected) in [
        (Some(&w.client), "OK"),
        (Some(&w.other_owner), "OK"),
        (Some(&w.owner), "FORBIDDEN"),
        (Some(&w.barber), "FORBIDDEN"),
        (Some(&w.stranger), "FORBIDDEN"),
    ] {
        assert_eq!(
            outcome(&app, user, BOOKING, vars.clone()).await,
            expected,
            "{:?}",
            user.map(|u| &u.email)
        );
    }
    // Forbidden answers carry no data.
    let response = app.gql_as(&w.stranger, BOOKING, json!({ "id": at_b })).await;
    assert!(response["data"]["booking"].is_null());
    // The same rules through node().
    let node = "query($id: ID!) { node(id: $id) { id } }";
    assert_eq!(outcome(&app, Some(&w.client), node, json!({ "id": at_b })).await, "OK");
    assert_eq!(outcome(&app, Some(&w.owner), node, json!({ "id": at_b })).await, "FORBIDDEN");
    // An id that does not exist.
    use base64::Engine;
    let missing = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("Booking:99999999");
    assert_eq!(outcome(&app, Some(&w.owner), BOOKING, json!({ "id": missing })).await, "NOT_FOUND");
});

const SHOP_BOOKINGS: &str = "query($shop: ID!, $barber: ID) { bookings(shopId: $shop, barberId: $barber, first: 100) { totalCount nodes { barber { id } shop { id } } } }";
const SHOP_FIELD: &str = "query($shop: ID!, $barber: ID) { node(id: $shop) { ... on Shop { bookings(barberId: $barber, first: 100) { totalCount nodes { barber { id } shop { id } } } } } }";

api_test!(a_shops_bookings, [sqlite, postgres], |app| {
    let w = world(&app).await;
    let shop_row = row_id(&w.shop_a);
    let barber_row = row_id(&w.barber_id);
    let all =
        scalar(&app, &format!("SELECT COUNT(*) AS n FROM bookings WHERE shop_id = {shop_row}"))
            .await;
    let mine =
        scalar(&app, &format!("SELECT COUNT(*) AS n FROM bookings WHERE barber_id = {barber_row}"))
            .await;
    assert!(mine > 0 && mine < all);

    for (query, path) in [(SHOP_BOOKINGS, "/bookings"), (SHOP_FIELD, "/node/bookings")] {
        // The owner sees every booking of the shop, or one barber's.
        let data = app.data_as(&w.owner, query, json!({ "shop": w.shop_a })).await;
        let list = data.pointer(path).unwrap();
        assert_eq!(list["totalCount"], all);
        assert!(
            list["nodes"].as_array().unwrap().iter().all(|b| b["shop"]["id"] == w.shop_a.as_str())
        );
        let data =
            app.data_as(&w.owner, query, json!({ "shop": w.shop_a, "barber": w.barber_id })).await;
        assert_eq!(data.pointer(path).unwrap()["totalCount"], mine);

        // A barber sees their own schedule only, asked for or not.
        for barber in [Value::Null, json!(w.barber_id)] {
            let data =
                app.data_as(&w.barber, query, json!({ "shop": w.shop_a, "barber": barber })).await;
            let list = data.pointer(path).unwrap();
            assert_eq!(list["totalCount"], mine);
            let nodes = list["nodes"].as_array().unwrap();
            assert!(!nodes.is_empty());
            assert!(nodes.iter().all(|b| b["barber"]["id"] == w.barber_id.as_str()));
        }
        let colleague = json!({ "shop": w.shop_a, "barber": w.colleague_id });
        assert_eq!(outcome(&app, Some(&w.barber), query, colleague).await, "FORBIDDEN");

        for user in [&w.client, &w.other_owner, &w.stranger] {
            assert_eq!(
                outcome(&app, Some(user), query, json!({ "shop": w.shop_a })).await,
                "FORBIDDEN"
            );
        }
        assert_eq!(
            outcome(&app, None, query, json!({ "shop": w.shop_a })).await,
            "UNAUTHENTICATED"
        );
    }
});

api_test!(a_barbers_bookings, [sqlite, postgres], |app| {
    let w = world(&app).await;
    let mine = scalar(
        &app,
        &format!("SELECT COUNT(*) AS n FROM bookings WHERE barber_id = {}", row_id(&w.barber_id)),
    )
    .await;
    let top = "query($barber: ID!) { bookings(barberId: $barber) { totalCount } }";
    let field = "query($barber: ID!) { barber(id: $barber) { bookings { totalCount } } }";
    for (query, path) in [(top, "/bookings/totalCount"), (field, "/barber/bookings/totalCount")] {
        for user in [&w.owner, &w.barber] {
            let data = app.data_as(user, query, json!({ "barber": w.barber_id })).await;
            assert_eq!(data.pointer(path).unwrap(), mine);
        }
        for user in [&w.colleague, &w.client, &w.other_owner, &w.stranger] {
            assert_eq!(
                outcome(&app, Some(user), query, json!({ "barber": w.barber_id })).await,
                "FORBIDDEN"
            );
        }
        assert_eq!(
            outcome(&app, None, query, json!({ "barber": w.barber_id })).await,
            "UNAUTHENTICATED"
        );
    }
});

api_test!(own_bookings_and_account, [sqlite, postgres], |app| {
    let w = world(&app).await;
    let client_row =
        scalar(&app, "SELECT id AS n FROM users WHERE email = 'client@demo.test'").await;
    let count =
        scalar(&app, &format!("SELECT COUNT(*) AS n FROM bookings WHERE client_id = {client_row}"))
            .await;
    assert!(count > 0);
    let data = app
        .data_as(
            &w.client,
            "{ bookings(first: 100) { totalCount nodes { client { email } } } viewer { email bookings { totalCount } memberships { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["bookings"]["totalCount"], count);
    assert!(
        data["bookings"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["client"]["email"] == "client@demo.test")
    );
    assert_eq!(data["viewer"]["bookings"]["totalCount"], count);
    assert_eq!(data["viewer"]["memberships"], json!([]));

    let data = app
        .data_as(
            &w.stranger,
            "{ bookings { totalCount } viewer { bookings { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["bookings"]["totalCount"], 0);
    assert_eq!(data["viewer"]["bookings"]["totalCount"], 0);

    assert_eq!(
        outcome(&app, None, "{ bookings { totalCount } }", json!({})).await,
        "UNAUTHENTICATED"
    );
    let data =
        app.data_as(&w.owner, "{ viewer { memberships { role shop { id } } } }", json!({})).await;
    assert_eq!(
        data["viewer"]["memberships"],
        json!([{ "role": "OWNER", "shop": { "id": w.shop_a } }])
    );
    let data = app
        .data_as(&w.barber, "{ viewer { memberships { role barber { id } } } }", json!({}))
        .await;
    assert_eq!(
        data["viewer"]["memberships"],
        json!([{ "role": "BARBER", "barber": { "id": w.barber_id } }])
    );
});

api_test!(client_details_are_for_the_client_and_the_shops_staff, [sqlite, postgres], |app| {
    let w = world(&app).await;
    let query =
        "query($shop: ID!) { bookings(shopId: $shop, first: 5) { nodes { client { id email } } } }";
    let data = app.data_as(&w.owner, query, json!({ "shop": w.shop_a })).await;
    let client = data["bookings"]["nodes"][0]["client"].clone();
    assert!(client["email"].as_str().unwrap().ends_with("@demo.test"));
    let data = app.data_as(&w.barber, query, json!({ "shop": w.shop_a })).await;
    assert!(data["bookings"]["nodes"][0]["client"]["email"].is_string());

    // A client's account details beyond their email are theirs alone.
    let deeper = "query($shop: ID!) { bookings(shopId: $shop, first: 1) { nodes { client { bookings { totalCount } } } } }";
    assert_eq!(
        outcome(&app, Some(&w.owner), deeper, json!({ "shop": w.shop_a })).await,
        "FORBIDDEN"
    );
    let node = "query($id: ID!) { node(id: $id) { ... on User { email } } }";
    assert_eq!(
        outcome(&app, Some(&w.owner), node, json!({ "id": client["id"] })).await,
        "FORBIDDEN"
    );
    assert_eq!(outcome(&app, None, node, json!({ "id": client["id"] })).await, "UNAUTHENTICATED");
    let me = app.data_as(&w.client, "{ viewer { id } }", json!({})).await;
    let data = app.data_as(&w.client, node, json!({ "id": me["viewer"]["id"] })).await;
    assert_eq!(data["node"]["email"], "client@demo.test");
});
