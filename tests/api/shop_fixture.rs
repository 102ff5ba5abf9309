//! A shop built through the API, for the booking engine's tests.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser};

/// An owner, a shop, one barber (with an account) and a 30-minute service.
pub struct ShopFixture {
    pub owner: TestUser,
    pub barber_user: TestUser,
    pub shop_id: String,
    pub barber_id: String,
    pub service_id: String,
    pub tz: Tz,
}

const CREATE_SHOP: &str = "mutation($input: CreateShopInput!) { createShop(input: $input) { id } }";
const ADD_BARBER: &str = "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }";
pub const ACCEPT_INVITE: &str = "mutation($id: ID!) { acceptBarberInvite(id: $id) { id } }";
const CREATE_SERVICE: &str =
    "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }";
pub const SET_HOURS: &str = "mutation($barber: ID!, $hours: [WorkingHoursInput!]!) { setWorkingHours(barberId: $barber, hours: $hours) { workingHours { weekday opensAt closesAt } } }";
pub const SLOTS: &str = "query($barber: ID!, $service: ID!, $date: Date!) { availableSlots(barberId: $barber, serviceId: $service, date: $date) { startsAt endsAt } }";
pub const BOOK: &str = "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id status startsAt endsAt priceCents notes client { email } } }";

impl ShopFixture {
    /// Opens a shop in `timezone` whose barber works every day, `opens` to
    /// `closes` local time.
    pub async fn open(
        app: &TestApp,
        slug: &str,
        timezone: &str,
        opens: &str,
        closes: &str,
    ) -> Self {
        let owner =
            app.register(&format!("owner@{slug}.test"), "correct horse battery", "Owner").await;
        let data = app
            .data_as(
                &owner,
                CREATE_SHOP,
                json!({ "input": { "name": format!("Shop {slug}"), "slug": slug, "timezone": timezone, "address": "1 Main St" } }),
            )
            .await;
        let shop_id = data["createShop"]["id"].as_str().unwrap().to_owned();
        let barber_user =
            app.register(&format!("barber@{slug}.test"), "correct horse battery", "Barber").await;
        let data = app
            .data_as(
                &owner,
                ADD_BARBER,
                json!({ "input": { "shopId": shop_id, "displayName": "Sam", "userEmail": barber_user.email } }),
            )
            .await;
        let barber_id = data["addBarber"]["id"].as_str().unwrap().to_owned();
        app.data_as(&barber_user, ACCEPT_INVITE, json!({ "id": barber_id })).await;
        let data = app
            .data_as(
                &owner,
                CREATE_SERVICE,
                json!({ "input": { "shopId": shop_id, "name": "Cut", "durationMinutes": 30, "priceCents": 2500, "currency": "EUR", "barberIds": [barber_id] } }),
            )
            .await;
        let service_id = data["createService"]["id"].as_str().unwrap().to_owned();
        let fixture = Self {
            owner,
            barber_user,
            shop_id,
            barber_id,
            service_id,
            tz: timezone.parse().unwrap(),
        };
        fixture.set_hours(app, (1..=7).map(|d| (d, opens, closes)).collect()).await;
        fixture
    }

    /// Replaces the barber's week.
    pub async fn set_hours(&self, app: &TestApp, hours: Vec<(u32, &str, &str)>) {
        let hours: Vec<Value> = hours
            .into_iter()
            .map(|(weekday, opens, closes)| json!({ "weekday": weekday, "opensAt": opens, "closesAt": closes }))
            .collect();
        app.data_as(&self.owner, SET_HOURS, json!({ "barber": self.barber_id, "hours": hours }))
            .await;
    }

    /// Changes the shop's booking policy.
    pub async fn policy(&self, app: &TestApp, input: Value) {
        app.data_as(
            &self.owner,
            "mutation($id: ID!, $input: UpdateShopInput!) { updateShop(id: $id, input: $input) { id } }",
            json!({ "id": self.shop_id, "input": input }),
        )
        .await;
    }

    /// The free slots on a shop-local date, as the anonymous public sees them.
    pub async fn slots(&self, app: &TestApp, date: NaiveDate) -> Vec<DateTime<Utc>> {
        let data = app
            .data(SLOTS, json!({ "barber": self.barber_id, "service": self.service_id, "date": date.to_string() }))
            .await;
        data["availableSlots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["startsAt"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// The UTC instant of a local time on a local date.
    pub fn at(&self, date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        self.tz
            .from_local_datetime(&date.and_hms_opt(hour, minute, 0).unwrap())
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A shop-local date a few days ahead, on a weekday (not the weekend).
    pub fn upcoming_weekday(&self) -> NaiveDate {
        let mut date = Utc::now().with_timezone(&self.tz).date_naive() + Duration::days(3);
        while matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            date += Duration::days(1);
        }
        date
    }

    /// Books `start` as `client`; returns the whole response.
    pub async fn book(&self, app: &TestApp, client: &TestUser, start: DateTime<Utc>) -> Value {
        app.gql_as(
            client,
            BOOK,
            json!({ "input": { "barberId": self.barber_id, "serviceId": self.service_id, "startsAt": start.to_rfc3339() } }),
        )
        .await
    }
}
