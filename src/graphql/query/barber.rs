//! Reading barbers.

use async_graphql::{Context, ID, Object};

use crate::{
    error::AppError,
    graphql::{
        id::{self, Kind},
        loader::BarberByIdLoader,
        object::{Barber, load_one},
    },
};

#[derive(Default)]
pub struct BarberQuery;

#[Object]
impl BarberQuery {
    /// One barber by id.
    #[graphql(cache_control(max_age = 10))]
    async fn barber(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Barber>> {
        let barber_id = id::decode_as(&id, Kind::Barber, "id")?;
        load_one::<BarberByIdLoader, _>(ctx, barber_id)
            .await?
            .map(|b| Some(Barber(b)))
            .ok_or_else(|| {
                AppError::not_found(
                    "no barber has this id; find barbers through `shop { barbers }`",
                )
            })
            .map_err(Into::into)
    }
}
