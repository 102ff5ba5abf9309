//! `viewer`: who is signed in.

use async_graphql::{Context, Object};

use crate::graphql::{guard::identity, object::User};

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The signed-in user; null for an anonymous request.
    #[graphql(cache_control(private))]
    async fn viewer(&self, ctx: &Context<'_>) -> Option<User> {
        identity(ctx).viewer().map(|viewer| User::own(viewer.user.clone()))
    }
}
