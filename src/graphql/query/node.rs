//! `node(id)`: any object by its global id.

use async_graphql::{Context, ID, Object};

use crate::{
    auth::policy,
    domain,
    error::AppError,
    graphql::{
        db,
        guard::identity,
        id::{self, Kind},
        loader::{BarberByIdLoader, ServiceByIdLoader, ShopByIdLoader, UserByIdLoader},
        object::{Barber, Node, Payment, Service, Shop, User, load_one},
    },
};

use super::booking::load_readable_booking;

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id, with the same access rules as its own
    /// query.
    #[graphql(cache_control(max_age = 10))]
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let node = match id::decode(&id, "id")? {
            (Kind::Shop, key) => {
                load_one::<ShopByIdLoader, _>(ctx, key).await?.map(|m| Node::Shop(Shop(m)))
            }
            (Kind::Barber, key) => {
                load_one::<BarberByIdLoader, _>(ctx, key).await?.map(|m| Node::Barber(Barber(m)))
            }
            (Kind::Service, key) => {
                load_one::<ServiceByIdLoader, _>(ctx, key).await?.map(|m| Node::Service(Service(m)))
            }
            (Kind::User, key) => {
                policy::check_self(identity(ctx), key)?;
                load_one::<UserByIdLoader, _>(ctx, key).await?.map(|m| Node::User(User::own(m)))
            }
            (Kind::Booking, key) => Some(Node::Booking(load_readable_booking(ctx, key).await?)),
            (Kind::Payment, key) => {
                policy::require_viewer(identity(ctx))?;
                match domain::booking::payment_by_id(db(ctx)?, key).await.map_err(AppError::from)? {
                    Some(payment) => {
                        load_readable_booking(ctx, payment.booking_id).await?;
                        Some(Node::Payment(Payment(payment)))
                    }
                    None => None,
                }
            }
            (Kind::TimeOff, _) => {
                return Err(AppError::bad_input("time off is read through `Barber.timeOff`").into());
            }
            (Kind::Event, _) => {
                return Err(AppError::bad_input("events are read through `Shop.auditLog`").into());
            }
            (Kind::Webhook | Kind::WebhookDelivery, _) => {
                return Err(AppError::bad_input(
                    "webhooks are read through `Shop.webhooks` and their `deliveries`",
                )
                .into());
            }
        };
        node.map(Some).ok_or_else(|| AppError::not_found("nothing has this id").into())
    }
}
