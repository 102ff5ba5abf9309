//! The `Mutation` root, merged from one part per domain.

mod account;
mod booking;
mod shop;
mod staff;
mod webhook;

pub use webhook::PrivateWebhooks;

use async_graphql::MergedObject;

/// Every write of the API.
#[derive(MergedObject, Default)]
pub struct Mutation(
    account::AccountMutation,
    shop::ShopMutation,
    staff::StaffMutation,
    booking::BookingMutation,
    webhook::WebhookMutation,
);
