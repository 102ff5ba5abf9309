//! A shop owner's webhooks.

use async_graphql::{Context, ID, InputObject, Object};

use crate::{
    auth::policy,
    domain::{
        self,
        webhook::{NewWebhook, check_url},
    },
    error::AppError,
    graphql::{
        db,
        guard::{SignedIn, identity},
        id::{self, Kind},
        object::{BookingEventKind, Webhook},
        publish,
    },
};

/// Whether webhooks may point at private addresses (schema data, from
/// `WEBHOOK_ALLOW_PRIVATE_ADDRESSES`).
#[derive(Clone, Copy, Debug)]
pub struct PrivateWebhooks(pub bool);

#[derive(InputObject)]
pub struct CreateWebhookInput {
    pub shop_id: ID,
    /// An `https://` URL of a public host.
    pub url: String,
    /// The kinds of booking event to receive (at least one).
    pub events: Vec<BookingEventKind>,
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Posts the shop's booking events of the chosen kinds to `url`,
    /// signed; for the shop's owner. The answer holds the signing
    /// `secret`, shown this once.
    #[graphql(guard = "SignedIn")]
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> async_graphql::Result<Webhook> {
        let shop_id = id::decode_as(&input.shop_id, Kind::Shop, "shopId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, shop_id)?;
        let allow_private = ctx.data_opt::<PrivateWebhooks>().is_some_and(|p| p.0);
        let url = check_url(&input.url, allow_private)?;
        let mut events: Vec<_> = input.events.into_iter().map(Into::into).collect();
        events.sort_by_key(|kind: &domain::event_log::EventKind| kind.as_str());
        events.dedup();
        if events.is_empty() {
            return Err(AppError::bad_input("`events` names no kind; name at least one").into());
        }
        let new = NewWebhook { shop_id, url, events };
        let created = domain::webhook::create(db(ctx)?, viewer.id(), new).await?;
        let model = publish(ctx, created).await?;
        let secret = Some(model.secret.clone());
        Ok(Webhook { model, secret })
    }

    /// Stops a webhook; deliveries still owed are given up. For the shop's
    /// owner; returns the webhook, inactive.
    #[graphql(guard = "SignedIn")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Webhook> {
        let webhook_id = id::decode_as(&id, Kind::Webhook, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let webhook = domain::webhook::get(db(ctx)?, webhook_id)
            .await
            .map_err(AppError::from)?
            .filter(|webhook| webhook.active && viewer.owns(webhook.shop_id))
            .ok_or_else(|| AppError::not_found("no webhook of a shop you own has this id"))?;
        let deleted = domain::webhook::delete(db(ctx)?, viewer.id(), webhook).await?;
        Ok(Webhook { model: publish(ctx, deleted).await?, secret: None })
    }
}
