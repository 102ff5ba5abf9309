//! Running a shop: creating it, staffing it, its menu and its hours.

use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{first_error, scalar},
    shop_fixture::{ACCEPT_INVITE, SET_HOURS, ShopFixture},
};

const CREATE_SHOP: &str = "mutation($input: CreateShopInput!) { createShop(input: $input) { id slug timezone slotStepMinutes minNoticeMinutes maxAdvanceDays cancellationCutoffMinutes bufferMinutes } }";
const UPDATE_SHOP: &str = "mutation($id: ID!, $input: UpdateShopInput!) { updateShop(id: $id, input: $input) { name timezone slotStepMinutes bufferMinutes } }";
const ADD_BARBER: &str =
    "mutation($input: AddBarberInput!) { addBarber(input: $input) { id displayName } }";
const CREATE_SERVICE: &str = "mutation($input: CreateServiceInput!) { createService(input: $input) { id currency barbers { id } } }";

fn failure(response: &Value) -> (String, String) {
    first_error(response)
}

api_test!(creating_and_changing_a_shop, [sqlite, postgres], |app| {
    let owner = app.register("owner@new.test", "correct horse battery", "Owner").await;
    let input = |slug: &str, tz: &str| json!({ "input": { "name": "New Cuts", "slug": slug, "timezone": tz, "address": "2 High St" } });
    assert_eq!(
        failure(&app.gql(CREATE_SHOP, input("new-cuts", "Europe/Paris")).await).0,
        "UNAUTHENTICATED"
    );
    let (code, message) =
        failure(&app.gql_as(&owner, CREATE_SHOP, input("new-cuts", "Mars/Olympus")).await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("timezone"), "{message}");
    let (code, message) =
        failure(&app.gql_as(&owner, CREATE_SHOP, input("New Cuts!", "Europe/Paris")).await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("slug"), "{message}");

    let data = app.data_as(&owner, CREATE_SHOP, input("new-cuts", "Europe/Paris")).await;
    let shop = &data["createShop"];
    assert_eq!(shop["timezone"], "Europe/Paris");
    // The default booking policy.
    assert_eq!(
        [
            &shop["slotStepMinutes"],
            &shop["minNoticeMinutes"],
            &shop["maxAdvanceDays"],
            &shop["cancellationCutoffMinutes"],
            &shop["bufferMinutes"]
        ],
        [&json!(15), &json!(60), &json!(60), &json!(120), &json!(0)]
    );
    let memberships =
        app.data_as(&owner, "{ viewer { memberships { role shop { slug } } } }", json!({})).await;
    assert_eq!(
        memberships["viewer"]["memberships"],
        json!([{ "role": "OWNER", "shop": { "slug": "new-cuts" } }])
    );

    let (code, message) =
        failure(&app.gql_as(&owner, CREATE_SHOP, input("new-cuts", "Europe/Paris")).await);
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("slug"), "{message}");

    let id = shop["id"].clone();
    let update = |input: Value| json!({ "id": id, "input": input });
    let data = app
        .data_as(
            &owner,
            UPDATE_SHOP,
            update(json!({ "name": "Newer Cuts", "slotStepMinutes": 30, "bufferMinutes": 10 })),
        )
        .await;
    assert_eq!(
        data["updateShop"],
        json!({ "name": "Newer Cuts", "timezone": "Europe/Paris", "slotStepMinutes": 30, "bufferMinutes": 10 })
    );
    for (bad, field) in [
        (json!({ "slotStepMinutes": 7 }), "slotStepMinutes"),
        (json!({ "bufferMinutes": -1 }), "bufferMinutes"),
        (json!({ "maxAdvanceDays": 0 }), "maxAdvanceDays"),
        (json!({ "timezone": "Nowhere" }), "timezone"),
        (json!({ "name": "" }), "name"),
    ] {
        let (code, message) = failure(&app.gql_as(&owner, UPDATE_SHOP, update(bad)).await);
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains(field), "{field}: {message}");
    }
    let stranger = app.register("stranger@new.test", "correct horse battery", "Stranger").await;
    assert_eq!(
        failure(&app.gql_as(&stranger, UPDATE_SHOP, update(json!({ "name": "Mine" }))).await).0,
        "FORBIDDEN"
    );
    let name = app.data("query($id: ID!) { shop(id: $id) { name } }", json!({ "id": id })).await;
    assert_eq!(name["shop"]["name"], "Newer Cuts");
});

api_test!(staffing_a_shop, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "staff", "UTC", "09:00", "17:00").await;
    let add = |email: Option<&str>| json!({ "input": { "shopId": shop.shop_id, "displayName": "Kim", "userEmail": email } });
    // An invitation: the same answer whether the email has an account or
    // not, and nobody is linked until they accept.
    let unknown = app.data_as(&shop.owner, ADD_BARBER, add(Some("nobody@staff.test"))).await;
    let kim = app.register("kim@staff.test", "correct horse battery", "Kim").await;
    let known = app.data_as(&shop.owner, ADD_BARBER, add(Some(&kim.email))).await;
    assert_eq!(unknown["addBarber"]["displayName"], known["addBarber"]["displayName"]);
    let invite = known["addBarber"]["id"].as_str().unwrap().to_owned();
    let memberships = "{ viewer { memberships { role } barberInvites { id displayName } } }";
    let before = app.data_as(&kim, memberships, json!({})).await;
    assert_eq!(before["viewer"]["memberships"], json!([]), "not linked before accepting");
    assert_eq!(before["viewer"]["barberInvites"], json!([{ "id": invite, "displayName": "Kim" }]));
    // Nobody else can accept it, and it reads as if it did not exist.
    let (code, _) =
        failure(&app.gql_as(&shop.barber_user, ACCEPT_INVITE, json!({ "id": invite })).await);
    assert_eq!(code, "NOT_FOUND");
    app.data_as(&kim, ACCEPT_INVITE, json!({ "id": invite })).await;
    let after = app.data_as(&kim, memberships, json!({})).await;
    assert_eq!(after["viewer"]["memberships"], json!([{ "role": "BARBER" }]));
    assert_eq!(after["viewer"]["barberInvites"], json!([]));
    // The fixture's barber already works here: inviting again is fine, but
    // accepting a second barber record of the same shop is a conflict.
    let again = app.data_as(&shop.owner, ADD_BARBER, add(Some(&shop.barber_user.email))).await;
    let again = again["addBarber"]["id"].as_str().unwrap();
    let (code, _) =
        failure(&app.gql_as(&shop.barber_user, ACCEPT_INVITE, json!({ "id": again })).await);
    assert_eq!(code, "CONFLICT");
    assert_eq!(failure(&app.gql_as(&shop.barber_user, ADD_BARBER, add(None)).await).0, "FORBIDDEN");
    let data = app.data_as(&shop.owner, ADD_BARBER, add(None)).await;
    assert_eq!(data["addBarber"]["displayName"], "Kim");

    // A barber edits their own name and bio, not whether they are active.
    let update = "mutation($id: ID!, $input: UpdateBarberInput!) { updateBarber(id: $id, input: $input) { displayName bio active } }";
    let data = app
        .data_as(
            &shop.barber_user,
            update,
            json!({ "id": shop.barber_id, "input": { "displayName": "Sammy", "bio": "Fades" } }),
        )
        .await;
    assert_eq!(
        data["updateBarber"],
        json!({ "displayName": "Sammy", "bio": "Fades", "active": true })
    );
    let data = app
        .data_as(
            &shop.barber_user,
            update,
            json!({ "id": shop.barber_id, "input": { "bio": null } }),
        )
        .await;
    assert!(data["updateBarber"]["bio"].is_null());
    let response = app
        .gql_as(
            &shop.barber_user,
            update,
            json!({ "id": shop.barber_id, "input": { "active": false } }),
        )
        .await;
    assert_eq!(failure(&response).0, "FORBIDDEN");
});

api_test!(working_hours_are_replaced_whole_or_not_at_all, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "hours", "UTC", "09:00", "17:00").await;
    let set = |hours: Value| json!({ "barber": shop.barber_id, "hours": hours });
    let data = app
        .data_as(
            &shop.barber_user,
            SET_HOURS,
            set(json!([
                { "weekday": 1, "opensAt": "09:00", "closesAt": "12:00" },
                { "weekday": 1, "opensAt": "13:00", "closesAt": "18:00" },
                { "weekday": 6, "opensAt": "10:00", "closesAt": "14:00" }
            ])),
        )
        .await;
    assert_eq!(data["setWorkingHours"]["workingHours"].as_array().unwrap().len(), 3);
    let before = scalar(&app, "SELECT COUNT(*) AS n FROM working_hours").await;
    for (hours, word) in [
        (
            json!([{ "weekday": 1, "opensAt": "09:00", "closesAt": "12:00" }, { "weekday": 1, "opensAt": "11:00", "closesAt": "15:00" }]),
            "overlap",
        ),
        (json!([{ "weekday": 8, "opensAt": "09:00", "closesAt": "12:00" }]), "weekday"),
        (json!([{ "weekday": 2, "opensAt": "25:00", "closesAt": "26:00" }]), "opensAt"),
        (json!([{ "weekday": 2, "opensAt": "9am", "closesAt": "12:00" }]), "opensAt"),
        (json!([{ "weekday": 2, "opensAt": "12:00", "closesAt": "09:00" }]), "before"),
    ] {
        let (code, message) = failure(&app.gql_as(&shop.owner, SET_HOURS, set(hours)).await);
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains(word), "{word}: {message}");
    }
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM working_hours").await,
        before,
        "nothing changed"
    );
    let stranger = app.register("stranger@hours.test", "correct horse battery", "Stranger").await;
    assert_eq!(failure(&app.gql_as(&stranger, SET_HOURS, set(json!([]))).await).0, "FORBIDDEN");
});

api_test!(a_menu_only_lists_the_shops_own_barbers, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "menu", "UTC", "09:00", "17:00").await;
    let other = ShopFixture::open(&app, "elsewhere", "UTC", "09:00", "17:00").await;
    let services = scalar(&app, "SELECT COUNT(*) AS n FROM services").await;
    let input = |barbers: Vec<&String>| json!({ "input": { "shopId": shop.shop_id, "name": "Beard", "durationMinutes": 20, "priceCents": 1500, "barberIds": barbers } });
    let (code, message) =
        failure(&app.gql_as(&shop.owner, CREATE_SERVICE, input(vec![&other.barber_id])).await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("barberIds"), "{message}");
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM services").await,
        services,
        "nothing written"
    );
    for (field, value) in
        [("durationMinutes", json!(0)), ("priceCents", json!(-1)), ("name", json!(" "))]
    {
        let mut bad = input(vec![]);
        bad["input"][field] = value;
        let (code, message) = failure(&app.gql_as(&shop.owner, CREATE_SERVICE, bad).await);
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains(field), "{field}: {message}");
    }
    assert_eq!(
        failure(&app.gql_as(&other.owner, CREATE_SERVICE, input(vec![])).await).0,
        "FORBIDDEN"
    );
    // Without a currency, the shop's other services tell it.
    let data = app.data_as(&shop.owner, CREATE_SERVICE, input(vec![&shop.barber_id])).await;
    assert_eq!(data["createService"]["currency"], "EUR");
    assert_eq!(data["createService"]["barbers"], json!([{ "id": shop.barber_id }]));
    let service = data["createService"]["id"].clone();
    let update = "mutation($id: ID!, $input: UpdateServiceInput!) { updateService(id: $id, input: $input) { name priceCents barbers { id } } }";
    let data = app
        .data_as(
            &shop.owner,
            update,
            json!({ "id": service, "input": { "barberIds": [], "priceCents": 1800 } }),
        )
        .await;
    assert_eq!(
        data["updateService"],
        json!({ "name": "Beard", "priceCents": 1800, "barbers": [] })
    );
});
