//! `User`: a person with an account, and their roles at shops.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::user;

use super::{Barber, BookingArgs, BookingConnection, Role, Shop, load_one};
use crate::{
    auth::{
        self,
        identity::{Loaded, load_viewer},
    },
    domain::booking::Owner,
    error::AppError,
    graphql::{
        db,
        guard::{OwnAccount, identity},
        id::{self, Kind},
        loader::{BarberByIdLoader, ShopByIdLoader},
    },
};

/// A person with an account. Their email is seen by themselves and by the
/// staff of shops they booked at; their bookings and roles by themselves.
pub struct User {
    pub model: user::Model,
    /// Whether this is the viewer's own account (or the account a
    /// `login`/`register` just signed in to).
    pub own: bool,
    /// Whether the viewer may see the email (decided where the user was
    /// reached: themselves, or the client of a booking at the viewer's shop).
    pub email_visible: bool,
}

impl User {
    /// The user as seen by themselves.
    pub fn own(model: user::Model) -> Self {
        Self { model, own: true, email_visible: true }
    }
}

#[Object]
impl User {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::User, self.model.id)
    }

    async fn name(&self) -> &str {
        &self.model.name
    }

    /// Seen by the user and by the staff of shops where they booked.
    async fn email(&self) -> async_graphql::Result<&str> {
        if self.email_visible {
            Ok(&self.model.email)
        } else {
            Err(AppError::Forbidden("you may not see this person's email".to_owned()).into())
        }
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// The user's own bookings as a client, by start time.
    #[graphql(
        guard = "OwnAccount(self.own)",
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        status: Option<super::BookingStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<BookingConnection> {
        let args = BookingArgs { status, from, to, first, after, last, before };
        Ok(args.load_for(ctx, Owner::Client, self.model.id, None).await?)
    }

    /// Shops that invited the user to work there as a barber; accept with
    /// `acceptBarberInvite`. (Never kept: an invitation follows the email,
    /// which no scope of the user's answers covers.)
    #[graphql(guard = "OwnAccount(self.own)", cache_control(no_cache))]
    async fn barber_invites(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Barber>> {
        let invites = crate::domain::barber::invites_for(db(ctx)?, &self.model.email).await?;
        Ok(invites.into_iter().map(Barber).collect())
    }

    /// The shops where the user is owner or barber.
    #[graphql(guard = "OwnAccount(self.own)")]
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Membership>> {
        let memberships = match identity(ctx).viewer() {
            Some(viewer) if viewer.id() == self.model.id => viewer.memberships.clone(),
            // Just signed in: the request itself is still anonymous.
            _ => match load_viewer(db(ctx)?, self.model.id, None).await.map_err(AppError::from)? {
                Loaded::Viewer(viewer) => viewer.memberships,
                Loaded::NoAccount | Loaded::SessionEnded => Vec::new(),
            },
        };
        Ok(memberships.into_iter().map(Membership).collect())
    }
}

/// A role the user holds at one shop.
pub struct Membership(pub auth::Membership);

#[Object]
impl Membership {
    async fn shop(&self, ctx: &Context<'_>) -> async_graphql::Result<Shop> {
        load_one::<ShopByIdLoader, _>(ctx, self.0.shop_id).await?.map(Shop).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("a membership's shop is gone")).into()
        })
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The user's barber record at this shop, for the `BARBER` role.
    async fn barber(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Barber>> {
        let Some(barber_id) = self.0.barber_id else {
            return Ok(None);
        };
        Ok(load_one::<BarberByIdLoader, _>(ctx, barber_id).await?.map(Barber))
    }
}
