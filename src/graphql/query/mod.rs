//! The `Query` root, merged from one part per domain.

mod analytics;
mod availability;
mod barber;
mod booking;
mod node;
mod rate_limit;
mod service;
mod shop;
mod viewer;

use async_graphql::MergedObject;

/// Every read of the API.
#[derive(MergedObject, Default)]
pub struct Query(
    shop::ShopQuery,
    barber::BarberQuery,
    service::ServiceQuery,
    node::NodeQuery,
    viewer::ViewerQuery,
    booking::BookingQuery,
    availability::AvailabilityQuery,
    analytics::AnalyticsQuery,
    rate_limit::RateLimitQuery,
);
