//! The `Query` root, merged from one part per domain.

mod barber;
mod node;
mod service;
mod shop;

use async_graphql::MergedObject;

/// Every read of the API.
#[derive(MergedObject, Default)]
pub struct Query(
    shop::ShopQuery,
    barber::BarberQuery,
    service::ServiceQuery,
    node::NodeQuery,
);
