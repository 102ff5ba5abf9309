//! Running a shop: the shop itself, its barbers, menu, hours and time off.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::policy,
    domain::{
        self,
        account::Email,
        barber::{BarberChanges, NewBarber, NewTimeOff},
        service::{NewService, ServiceChanges, parse_currency, parse_price},
        shop::{NewShop, ShopChanges, Slug, parse_range, parse_timezone},
        text,
        working_hours::parse_week,
    },
    error::{AppError, AppResult},
    graphql::{
        db,
        guard::{SignedIn, identity},
        id::{self, Kind},
        loader::{BarberByIdLoader, ServiceByIdLoader, ShopByIdLoader, WorkingHoursByBarberLoader},
        object::{Barber, Service, Shop, TimeOff, load_one, loader},
        publish,
    },
};

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
            name: text::required(&input.name, "name", text::SHOP_NAME)?,
            slug: Slug::parse(&input.slug)?,
            timezone: parse_timezone(&input.timezone)?,
            address: text::required(&input.address, "address", text::SHOP_ADDRESS)?,
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
            name: input.name.map(|n| text::required(&n, "name", text::SHOP_NAME)).transpose()?,
            address: input
                .address
                .map(|a| text::required(&a, "address", text::SHOP_ADDRESS))
                .transpose()?,
            timezone: input.timezone.map(|t| parse_timezone(&t)).transpose()?,
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
            reason: text::optional(input.reason, "reason", text::TIME_OFF_REASON)?,
        })
    }
}

fn decode_barbers(ids: &[ID]) -> AppResult<Vec<i64>> {
    ids.iter().map(|id| id::decode_as(id, Kind::Barber, "barberIds")).collect()
}

fn duration(minutes: i32) -> AppResult<i32> {
    parse_range(minutes, "durationMinutes", 5..=480)
}

#[derive(Default)]
pub struct ShopMutation;

#[Object]
impl ShopMutation {
    /// Opens a shop; you become its owner (sign in again, or use a new
    /// request, to act as owner).
    #[graphql(guard = "SignedIn")]
    async fn create_shop(
        &self,
        ctx: &Context<'_>,
        input: CreateShopInput,
    ) -> async_graphql::Result<Shop> {
        let viewer = policy::require_viewer(identity(ctx))?;
        let new = NewShop::try_from(input)?;
        let created = domain::shop::create(db(ctx)?, viewer.id(), new).await?;
        Ok(Shop(publish(ctx, created).await?))
    }

    /// Changes a shop's details and booking policy; for its owner.
    #[graphql(guard = "SignedIn")]
    async fn update_shop(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateShopInput,
    ) -> async_graphql::Result<Shop> {
        let shop_id = id::decode_as(&id, Kind::Shop, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, shop_id)?;
        let changes = ShopChanges::try_from(input)?;
        // The owner's memberships primed the loader: no query.
        let shop = load_one::<ShopByIdLoader, _>(ctx, shop_id)
            .await?
            .ok_or_else(|| AppError::not_found("no shop has this id"))?;
        let updated = publish(ctx, domain::shop::update(db(ctx)?, shop, changes).await?).await?;
        loader::<ShopByIdLoader>(ctx)?.feed_one(updated.id, updated.clone()).await;
        Ok(Shop(updated))
    }

    /// Adds a barber to a shop, optionally linked to an existing account;
    /// for the shop's owner.
    #[graphql(guard = "SignedIn")]
    async fn add_barber(
        &self,
        ctx: &Context<'_>,
        input: AddBarberInput,
    ) -> async_graphql::Result<Barber> {
        let shop_id = id::decode_as(&input.shop_id, Kind::Shop, "shopId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, shop_id)?;
        let display_name = text::required(&input.display_name, "displayName", text::BARBER_NAME)?;
        let bio = text::optional(input.bio, "bio", text::BARBER_BIO)?;
        // An invitation, answered alike whether the email has an account
        // or not: the owner learns nothing about who is registered.
        let invited_email = input
            .user_email
            .map(|email| {
                Email::parse(&email)
                    .map(|email| email.as_str().to_owned())
                    .map_err(|_| AppError::bad_input("`userEmail` is not a valid email address"))
            })
            .transpose()?;
        let new = NewBarber { shop_id, display_name, bio, invited_email };
        let added = domain::barber::add(db(ctx)?, new).await?;
        Ok(Barber(publish(ctx, added).await?))
    }

    /// Changes a barber: the shop's owner may change anything, the barber
    /// their own name and bio.
    #[graphql(guard = "SignedIn")]
    async fn update_barber(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateBarberInput,
    ) -> async_graphql::Result<Barber> {
        let barber_id = id::decode_as(&id, Kind::Barber, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let barber =
            id::found(domain::barber::get(db(ctx)?, barber_id).await?, Kind::Barber, "id")?;
        policy::check_owner_or_barber(viewer, &barber)?;
        if input.active.is_some() {
            policy::check_owner(viewer, barber.shop_id)?;
        }
        let changes = BarberChanges {
            display_name: input
                .display_name
                .map(|n| text::required(&n, "displayName", text::BARBER_NAME))
                .transpose()?,
            bio: match input.bio {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(bio) => {
                    Some(text::optional(Some(bio), "bio", text::BARBER_BIO)?)
                }
            },
            active: input.active,
        };
        let updated =
            publish(ctx, domain::barber::update(db(ctx)?, barber, changes).await?).await?;
        loader::<BarberByIdLoader>(ctx)?.feed_one(updated.id, updated.clone()).await;
        Ok(Barber(updated))
    }

    /// Adds a service to a shop's menu; for the shop's owner.
    #[graphql(guard = "SignedIn")]
    async fn create_service(
        &self,
        ctx: &Context<'_>,
        input: CreateServiceInput,
    ) -> async_graphql::Result<Service> {
        let shop_id = id::decode_as(&input.shop_id, Kind::Shop, "shopId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, shop_id)?;
        let new = NewService {
            shop_id,
            name: text::required(&input.name, "name", text::SERVICE_NAME)?,
            description: text::optional(
                input.description,
                "description",
                text::SERVICE_DESCRIPTION,
            )?,
            duration_minutes: duration(input.duration_minutes)?,
            price_cents: parse_price(input.price_cents)?,
            currency: input.currency.map(|c| parse_currency(&c)).transpose()?,
            barber_ids: decode_barbers(&input.barber_ids)?,
        };
        let created = domain::service::create(db(ctx)?, new).await?;
        Ok(Service(publish(ctx, created).await?))
    }

    /// Changes a service, and who offers it; for the shop's owner.
    #[graphql(guard = "SignedIn")]
    async fn update_service(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateServiceInput,
    ) -> async_graphql::Result<Service> {
        let service_id = id::decode_as(&id, Kind::Service, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let service =
            id::found(domain::service::get(db(ctx)?, service_id).await?, Kind::Service, "id")?;
        policy::check_owner(viewer, service.shop_id)?;
        let changes = ServiceChanges {
            name: input.name.map(|n| text::required(&n, "name", text::SERVICE_NAME)).transpose()?,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(description) => Some(text::optional(
                    Some(description),
                    "description",
                    text::SERVICE_DESCRIPTION,
                )?),
            },
            duration_minutes: input.duration_minutes.map(duration).transpose()?,
            price_cents: input.price_cents.map(parse_price).transpose()?,
            barber_ids: input.barber_ids.as_deref().map(decode_barbers).transpose()?,
        };
        let updated =
            publish(ctx, domain::service::update(db(ctx)?, service, changes).await?).await?;
        loader::<ServiceByIdLoader>(ctx)?.feed_one(updated.id, updated.clone()).await;
        Ok(Service(updated))
    }

    /// Replaces a barber's week (several intervals a day allowed, for
    /// breaks); for the shop's owner and the barber.
    #[graphql(guard = "SignedIn")]
    async fn set_working_hours(
        &self,
        ctx: &Context<'_>,
        barber_id: ID,
        hours: Vec<WorkingHoursInput>,
    ) -> async_graphql::Result<Barber> {
        let barber_id = id::decode_as(&barber_id, Kind::Barber, "barberId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let barber =
            id::found(domain::barber::get(db(ctx)?, barber_id).await?, Kind::Barber, "barberId")?;
        policy::check_owner_or_barber(viewer, &barber)?;
        let raw: Vec<_> = hours.into_iter().map(|h| (h.weekday, h.opens_at, h.closes_at)).collect();
        let week = parse_week(&raw)?;
        publish(ctx, domain::barber::set_working_hours(db(ctx)?, &barber, week).await?).await?;
        loader::<WorkingHoursByBarberLoader>(ctx)?.clear::<i64>();
        Ok(Barber(barber))
    }

    /// Records time off for a barber; for the shop's owner and the barber.
    /// Bookings already made in it stay; cancel them if needed.
    #[graphql(guard = "SignedIn")]
    async fn add_time_off(
        &self,
        ctx: &Context<'_>,
        input: AddTimeOffInput,
    ) -> async_graphql::Result<TimeOff> {
        let barber_id = id::decode_as(&input.barber_id, Kind::Barber, "barberId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let new = NewTimeOff::try_from(input)?;
        let barber =
            id::found(domain::barber::get(db(ctx)?, barber_id).await?, Kind::Barber, "barberId")?;
        policy::check_owner_or_barber(viewer, &barber)?;
        let added = domain::barber::add_time_off(db(ctx)?, &barber, new).await?;
        Ok(TimeOff(publish(ctx, added).await?))
    }
}
