//! `node(id)`: any object by its global id.

use async_graphql::{Context, ID, Object};

use crate::{
    error::AppError,
    graphql::{
        id::{self, Kind},
        loader::{BarberByIdLoader, ServiceByIdLoader, ShopByIdLoader},
        object::{Barber, Node, Service, Shop, load_one},
    },
};

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let node = match id::decode(&id, "id")? {
            (Kind::Shop, key) => load_one::<ShopByIdLoader, _>(ctx, key)
                .await?
                .map(|m| Node::Shop(Shop(m))),
            (Kind::Barber, key) => load_one::<BarberByIdLoader, _>(ctx, key)
                .await?
                .map(|m| Node::Barber(Barber(m))),
            (Kind::Service, key) => load_one::<ServiceByIdLoader, _>(ctx, key)
                .await?
                .map(|m| Node::Service(Service(m))),
            (Kind::User | Kind::Booking | Kind::Payment, _) => None,
        };
        node.map(Some)
            .ok_or_else(|| AppError::not_found("nothing has this id"))
            .map_err(Into::into)
    }
}
