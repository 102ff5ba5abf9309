//! Field guards: the declarative face of `auth::policy`.

use async_graphql::{Context, Guard, Result};

use crate::{
    auth::{Identity, policy},
    error::AppError,
    graphql::public::Touched,
};

static ANONYMOUS: Identity = Identity::Anonymous;

/// Who a request runs as, in its data. Nothing but [`identity`] can read
/// it, and that notes that the answer depends on who asked: an answer
/// computed without asking is everyone's, and may serve anyone (see
/// `public`). (What else differs by sender, the rate limit's budget, is
/// `no_cache` and never kept.)
pub struct Asking(Identity);

impl Asking {
    pub fn new(identity: Identity) -> Self {
        Self(identity)
    }
}

/// Who the request runs as; anonymous when the request carries no identity.
pub fn identity<'a>(ctx: &'a Context<'_>) -> &'a Identity {
    if let Some(touched) = ctx.data_opt::<Touched>() {
        touched.asked();
    }
    ctx.data_opt::<Asking>().map_or(&ANONYMOUS, |asking| &asking.0)
}

/// The field needs a signed-in viewer.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        policy::require_viewer(identity(ctx))?;
        Ok(())
    }
}

/// The field is only for the account's owner; the flag says whether the
/// object is the viewer's own account.
pub struct OwnAccount(pub bool);

impl Guard for OwnAccount {
    async fn check(&self, _ctx: &Context<'_>) -> Result<()> {
        if self.0 {
            Ok(())
        } else {
            Err(AppError::Forbidden("only the account's owner may see this".to_owned()).into())
        }
    }
}

/// The field is for the staff of a shop: its owner and its barbers.
pub struct ShopStaff(pub i64);

impl Guard for ShopStaff {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::shop_bookings_scope(viewer, self.0, None)?;
        Ok(())
    }
}
