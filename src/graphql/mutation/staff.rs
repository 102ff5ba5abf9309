//! Joining a shop's staff: a barber added with an email is an invitation,
//! which that person accepts once signed in.

use async_graphql::{Context, ID, Object};

use crate::{
    auth::policy,
    domain,
    graphql::{
        db,
        guard::identity,
        id::{self, Kind},
        object::Barber,
        publish,
    },
};

#[derive(Default)]
pub struct StaffMutation;

#[Object]
impl StaffMutation {
    /// Accepts the invitation to sign in as barber `id` (listed in
    /// `viewer { barberInvites }`); from then on the barber's schedule is
    /// yours to run.
    async fn accept_barber_invite(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Barber> {
        let barber_id = id::decode_as(&id, Kind::Barber, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let accepted = domain::barber::accept_invite(db(ctx)?, barber_id, &viewer.user).await?;
        Ok(Barber(publish(ctx, accepted).await?))
    }
}
