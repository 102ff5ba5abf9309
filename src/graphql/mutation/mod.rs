//! The `Mutation` root, merged from one part per domain.

mod account;

use async_graphql::MergedObject;

/// Every write of the API.
#[derive(MergedObject, Default)]
pub struct Mutation(account::AccountMutation);
