//! Reading services.

use async_graphql::{Context, ID, Object};

use crate::{
    error::AppError,
    graphql::{
        id::{self, Kind},
        loader::ServiceByIdLoader,
        object::{Service, load_one},
    },
};

#[derive(Default)]
pub struct ServiceQuery;

#[Object]
impl ServiceQuery {
    /// One service by id.
    #[graphql(cache_control(max_age = 10))]
    async fn service(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Service>> {
        let service_id = id::decode_as(&id, Kind::Service, "id")?;
        load_one::<ServiceByIdLoader, _>(ctx, service_id)
            .await?
            .map(|s| Some(Service(s)))
            .ok_or_else(|| {
                AppError::not_found(
                    "no service has this id; find services through `shop { services }`",
                )
            })
            .map_err(Into::into)
    }
}
