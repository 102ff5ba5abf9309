//! Every mutation's input, and its conversion into the domain's types.
//!
//! Each input becomes a domain value through `TryFrom`, here and nowhere
//! else, by the same rules: text within its column's length
//! ([`text`]), ids of the right kind, numbers in their range, and updates
//! whose omitted fields stay as they are (`Option`) and whose nullable
//! ones can also be cleared (`MaybeUndefined`). Errors name the GraphQL
//! argument, which is why this lives at the GraphQL edge and the domain
//! types it produces know nothing of GraphQL.

use async_graphql::{ID, InputObject, MaybeUndefined};
use chrono::{DateTime, Utc};

use crate::{
    domain::{
        account::{Email, NewAccount, Password, PersonName},
        barber::{BarberChanges, NewBarber, NewTimeOff},
        invalid::At,
        lifecycle::{NewBooking, NewPayment},
        service::{NewService, ServiceChanges, parse_currency, parse_price},
        shop::{NewShop, ShopChanges, Slug, parse_timezone},
        text,
        working_hours::{self, Interval},
    },
    error::{AppError, AppResult},
    graphql::{
        id::{self, Kind},
        object::PaymentMethod,
    },
};

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 128 characters; not a commonly used password, not the email.
    pub password: String,
    pub name: String,
}

impl TryFrom<RegisterInput> for NewAccount {
    type Error = AppError;

    fn try_from(input: RegisterInput) -> AppResult<Self> {
        let email = Email::parse(&input.email).at("email")?;
        Ok(NewAccount {
            password: Password::parse(input.password, &email).at("password")?,
            email,
            name: PersonName::parse(&input.name).at("name")?,
        })
    }
}

/// A new shop; you become its owner.
#[derive(InputObject)]
pub struct CreateShopInput {
    pub name: String,
    /// Unique URL name: lower-case letters, digits and dashes.
    pub slug: String,
    /// IANA time zone, like `Europe/London`.
    pub timezone: String,
    pub address: String,
}

impl TryFrom<CreateShopInput> for NewShop {
    type Error = AppError;

    fn try_from(input: CreateShopInput) -> AppResult<Self> {
        Ok(NewShop {
            name: text::required(&input.name, text::SHOP_NAME).at("name")?,
            slug: Slug::parse(&input.slug).at("slug")?,
            timezone: parse_timezone(&input.timezone).at("timezone")?,
            address: text::required(&input.address, text::SHOP_ADDRESS).at("address")?,
        })
    }
}

/// Changes to a shop; omitted fields stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateShopInput {
    pub name: Option<String>,
    pub address: Option<String>,
    pub timezone: Option<String>,
    /// 5 to 240, a divisor of 1440 (a day).
    pub slot_step_minutes: Option<i32>,
    /// 0 to 10080 (a week).
    pub min_notice_minutes: Option<i32>,
    /// 1 to 365.
    pub max_advance_days: Option<i32>,
    /// 0 to 10080.
    pub cancellation_cutoff_minutes: Option<i32>,
    /// 0 to 240.
    pub buffer_minutes: Option<i32>,
}

impl TryFrom<UpdateShopInput> for ShopChanges {
    type Error = AppError;

    fn try_from(input: UpdateShopInput) -> AppResult<Self> {
        let step = input
            .slot_step_minutes
            .map(|step| {
                let step = parse_range(step, "slotStepMinutes", 5..=240)?;
                if 1440 % step == 0 {
                    Ok(step)
                } else {
                    Err(AppError::bad_input(
                        "`slotStepMinutes` must divide a day evenly (5, 10, 15, 20, 30, 60, …)",
                    ))
                }
            })
            .transpose()?;
        Ok(ShopChanges {
            name: input.name.map(|n| text::required(&n, text::SHOP_NAME).at("name")).transpose()?,
            address: input
                .address
                .map(|a| text::required(&a, text::SHOP_ADDRESS).at("address"))
                .transpose()?,
            timezone: input.timezone.map(|t| parse_timezone(&t).at("timezone")).transpose()?,
            slot_step_minutes: step,
            min_notice_minutes: input
                .min_notice_minutes
                .map(|v| parse_range(v, "minNoticeMinutes", 0..=10_080))
                .transpose()?,
            max_advance_days: input
                .max_advance_days
                .map(|v| parse_range(v, "maxAdvanceDays", 1..=365))
                .transpose()?,
            cancellation_cutoff_minutes: input
                .cancellation_cutoff_minutes
                .map(|v| parse_range(v, "cancellationCutoffMinutes", 0..=10_080))
                .transpose()?,
            buffer_minutes: input
                .buffer_minutes
                .map(|v| parse_range(v, "bufferMinutes", 0..=240))
                .transpose()?,
        })
    }
}

/// A new barber at a shop.
#[derive(InputObject)]
pub struct AddBarberInput {
    pub shop_id: ID,
    pub display_name: String,
    pub bio: Option<String>,
    /// Invites this email to sign in as the barber: once they have an
    /// account, they accept with `acceptBarberInvite`.
    pub user_email: Option<String>,
}

/// Changes to a barber; omitted fields stay as they are, a null `bio`
/// clears it.
#[derive(InputObject, Default)]
pub struct UpdateBarberInput {
    pub display_name: Option<String>,
    pub bio: MaybeUndefined<String>,
    /// Inactive barbers take no new bookings; for the shop's owner.
    pub active: Option<bool>,
}

/// A new item on a shop's menu.
#[derive(InputObject)]
pub struct CreateServiceInput {
    pub shop_id: ID,
    pub name: String,
    pub description: Option<String>,
    /// 5 to 480.
    pub duration_minutes: i32,
    pub price_cents: i64,
    /// ISO 4217 code; by default the currency of the shop's other services.
    pub currency: Option<String>,
    /// The barbers who offer it.
    #[graphql(default)]
    pub barber_ids: Vec<ID>,
}

/// Changes to a service; omitted fields stay as they are. `barberIds`
/// replaces who offers it.
#[derive(InputObject, Default)]
pub struct UpdateServiceInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub duration_minutes: Option<i32>,
    pub price_cents: Option<i64>,
    pub barber_ids: Option<Vec<ID>>,
}

/// One working interval: weekday 1 (Monday) to 7, local `"HH:MM"` times.
#[derive(InputObject)]
pub struct WorkingHoursInput {
    pub weekday: i32,
    pub opens_at: String,
    pub closes_at: String,
}

/// A period in which a barber takes no bookings.
#[derive(InputObject)]
pub struct AddTimeOffInput {
    pub barber_id: ID,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl TryFrom<AddTimeOffInput> for NewTimeOff {
    type Error = AppError;

    fn try_from(input: AddTimeOffInput) -> AppResult<Self> {
        if input.starts_at >= input.ends_at {
            return Err(AppError::bad_input("`startsAt` must be before `endsAt`"));
        }
        Ok(NewTimeOff {
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            reason: text::optional(input.reason, text::TIME_OFF_REASON).at("reason")?,
        })
    }
}

fn decode_barbers(ids: &[ID]) -> AppResult<Vec<i64>> {
    ids.iter().map(|id| id::decode_as(id, Kind::Barber, "barberIds")).collect()
}

fn duration(minutes: i32) -> AppResult<i32> {
    parse_range(minutes, "durationMinutes", 5..=480)
}

/// A booking request.
#[derive(InputObject)]
pub struct CreateBookingInput {
    pub barber_id: ID,
    pub service_id: ID,
    /// One of the `startsAt` of `availableSlots`.
    pub starts_at: DateTime<Utc>,
    /// For the barber; at most 1000 characters.
    pub notes: Option<String>,
}

impl TryFrom<CreateBookingInput> for NewBooking {
    type Error = AppError;

    fn try_from(input: CreateBookingInput) -> AppResult<Self> {
        Ok(NewBooking {
            barber_id: id::decode_as(&input.barber_id, Kind::Barber, "barberId")?,
            service_id: id::decode_as(&input.service_id, Kind::Service, "serviceId")?,
            starts_at: input.starts_at,
            notes: text::optional(input.notes, text::BOOKING_NOTES).at("notes")?,
        })
    }
}

/// Money received for a booking.
#[derive(InputObject)]
pub struct RecordPaymentInput {
    pub booking_id: ID,
    /// Positive, and at most what is still owed.
    pub amount_cents: i64,
    pub method: PaymentMethod,
}

impl From<PaymentMethod> for entity::PaymentMethod {
    fn from(method: PaymentMethod) -> Self {
        match method {
            PaymentMethod::Card => Self::Card,
            PaymentMethod::Cash => Self::Cash,
            PaymentMethod::Other => Self::Other,
        }
    }
}

impl TryFrom<RecordPaymentInput> for NewPayment {
    type Error = AppError;

    fn try_from(input: RecordPaymentInput) -> AppResult<Self> {
        if input.amount_cents <= 0 {
            return Err(AppError::bad_input("`amountCents` must be positive"));
        }
        Ok(NewPayment {
            booking_id: id::decode_as(&input.booking_id, Kind::Booking, "bookingId")?,
            amount_cents: input.amount_cents,
            method: input.method.into(),
        })
    }
}

impl TryFrom<AddBarberInput> for NewBarber {
    type Error = AppError;

    fn try_from(input: AddBarberInput) -> AppResult<Self> {
        Ok(NewBarber {
            shop_id: id::decode_as(&input.shop_id, Kind::Shop, "shopId")?,
            display_name: text::required(&input.display_name, text::BARBER_NAME)
                .at("displayName")?,
            bio: text::optional(input.bio, text::BARBER_BIO).at("bio")?,
            // An invitation, answered alike whether the email has an
            // account or not: the owner learns nothing about who is
            // registered.
            invited_email: input
                .user_email
                .map(|email| {
                    Email::parse(&email).map(|email| email.as_str().to_owned()).map_err(|_| {
                        AppError::bad_input("`userEmail` is not a valid email address")
                    })
                })
                .transpose()?,
        })
    }
}

impl TryFrom<UpdateBarberInput> for BarberChanges {
    type Error = AppError;

    fn try_from(input: UpdateBarberInput) -> AppResult<Self> {
        Ok(BarberChanges {
            display_name: input
                .display_name
                .map(|n| text::required(&n, text::BARBER_NAME).at("displayName"))
                .transpose()?,
            bio: clearable(input.bio, "bio", text::BARBER_BIO)?,
            active: input.active,
        })
    }
}

impl TryFrom<CreateServiceInput> for NewService {
    type Error = AppError;

    fn try_from(input: CreateServiceInput) -> AppResult<Self> {
        Ok(NewService {
            shop_id: id::decode_as(&input.shop_id, Kind::Shop, "shopId")?,
            name: text::required(&input.name, text::SERVICE_NAME).at("name")?,
            description: text::optional(input.description, text::SERVICE_DESCRIPTION)
                .at("description")?,
            duration_minutes: duration(input.duration_minutes)?,
            price_cents: parse_price(input.price_cents).at("priceCents")?,
            currency: input.currency.map(|c| parse_currency(&c).at("currency")).transpose()?,
            barber_ids: decode_barbers(&input.barber_ids)?,
        })
    }
}

impl TryFrom<UpdateServiceInput> for ServiceChanges {
    type Error = AppError;

    fn try_from(input: UpdateServiceInput) -> AppResult<Self> {
        Ok(ServiceChanges {
            name: input
                .name
                .map(|n| text::required(&n, text::SERVICE_NAME).at("name"))
                .transpose()?,
            description: clearable(input.description, "description", text::SERVICE_DESCRIPTION)?,
            duration_minutes: input.duration_minutes.map(duration).transpose()?,
            price_cents: input.price_cents.map(|p| parse_price(p).at("priceCents")).transpose()?,
            barber_ids: input.barber_ids.as_deref().map(decode_barbers).transpose()?,
        })
    }
}

/// A text that an update may leave as it is (omitted), clear (`null`) or
/// set, checked against its limit.
fn clearable(
    value: MaybeUndefined<String>,
    field: &str,
    max: usize,
) -> AppResult<Option<Option<String>>> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(text) => Ok(Some(text::optional(Some(text), max).at(field)?)),
    }
}

/// A barber's week, from the intervals of the argument `hours`.
pub fn week(hours: Vec<WorkingHoursInput>) -> AppResult<Vec<Interval>> {
    let mut intervals = Vec::with_capacity(hours.len());
    for (index, hours) in hours.into_iter().enumerate() {
        let field = |name: &str| format!("hours[{index}].{name}");
        let weekday = working_hours::parse_weekday(hours.weekday).at(&field("weekday"))?;
        let opens = working_hours::parse_minute(&hours.opens_at).at(&field("opensAt"))?;
        let closes = working_hours::parse_minute(&hours.closes_at).at(&field("closesAt"))?;
        let interval = working_hours::interval(weekday, opens, closes).ok_or_else(|| {
            AppError::bad_input(format!(
                "`{}` must be before `{}`",
                field("opensAt"),
                field("closesAt")
            ))
        })?;
        intervals.push(interval);
    }
    working_hours::week(intervals).at("hours")
}

/// A whole number in `range`, named `field` in the error.
fn parse_range(value: i32, field: &str, range: std::ops::RangeInclusive<i32>) -> AppResult<i32> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(format!(
            "`{field}` must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}
