//! Running a shop: the shop itself, its barbers, menu, hours and time off.

use async_graphql::{Context, ID, Object};

use crate::{
    auth::policy,
    domain::{
        self,
        barber::{BarberChanges, NewBarber, NewTimeOff},
        service::{NewService, ServiceChanges},
        shop::{NewShop, ShopChanges},
    },
    error::AppError,
    graphql::{
        db,
        guard::{SignedIn, identity},
        id::{self, Kind},
        input::{
            self, AddBarberInput, AddTimeOffInput, CreateServiceInput, CreateShopInput,
            UpdateBarberInput, UpdateServiceInput, UpdateShopInput, WorkingHoursInput,
        },
        loader::{BarberByIdLoader, ServiceByIdLoader, ShopByIdLoader, WorkingHoursByBarberLoader},
        object::{Barber, Service, Shop, TimeOff, load_one, loader},
        publish,
    },
};

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
        let shop = load_one::<ShopByIdLoader, _>(ctx, shop_id)
            .await?
            .ok_or_else(|| AppError::not_found("no shop has this id"))?;
        let updated =
            publish(ctx, domain::shop::update(db(ctx)?, viewer.id(), shop, changes).await?).await?;
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
        let new = NewBarber::try_from(input)?;
        let added = domain::barber::add(db(ctx)?, viewer.id(), new).await?;
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
        let changes = BarberChanges::try_from(input)?;
        let updated =
            publish(ctx, domain::barber::update(db(ctx)?, viewer.id(), barber, changes).await?)
                .await?;
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
        let new = NewService::try_from(input)?;
        let created = domain::service::create(db(ctx)?, viewer.id(), new).await?;
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
        let changes = ServiceChanges::try_from(input)?;
        let updated =
            publish(ctx, domain::service::update(db(ctx)?, viewer.id(), service, changes).await?)
                .await?;
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
        let week = input::week(hours)?;
        publish(
            ctx,
            domain::barber::set_working_hours(db(ctx)?, viewer.id(), &barber, week).await?,
        )
        .await?;
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
        let barber =
            id::found(domain::barber::get(db(ctx)?, barber_id).await?, Kind::Barber, "barberId")?;
        policy::check_owner_or_barber(viewer, &barber)?;
        let new = NewTimeOff::try_from(input)?;
        let added = domain::barber::add_time_off(db(ctx)?, viewer.id(), &barber, new).await?;
        Ok(TimeOff(publish(ctx, added).await?))
    }
}
