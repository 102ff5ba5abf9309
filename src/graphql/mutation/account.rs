//! Accounts and sessions: registering, signing in and out, refreshing an
//! access token, changing the password.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, TransactionTrait};

use crate::{
    auth::{policy, token::TokenKeys},
    domain::{
        account::{self, Email, NewAccount, Password},
        invalid::At,
        session,
    },
    error::{AppError, AppResult},
    graphql::{db, guard::identity, input::RegisterInput, object::User, publish},
    protect::{ClientIp, Limits},
};

/// A signed-in session: send `token` as `Authorization: Bearer <token>`;
/// before it expires, trade `refreshToken` for a new pair with
/// `refreshToken`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The access token: short-lived.
    pub token: String,
    /// When the access token stops working.
    pub expires_at: DateTime<Utc>,
    /// Trades for a new pair once, with `refreshToken`; keep it secret.
    pub refresh_token: String,
    /// When the refresh token stops working; sign in again after it.
    pub refresh_expires_at: DateTime<Utc>,
    pub user: User,
}

fn keys<'a>(ctx: &'a Context<'_>) -> AppResult<&'a TokenKeys> {
    ctx.data::<TokenKeys>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without token keys")))
}

/// The access token of `issued`'s session, with its refresh token.
fn payload(
    keys: &TokenKeys,
    user: entity::user::Model,
    issued: session::Issued,
) -> AppResult<AuthPayload> {
    let access = keys.issue(user.id, &issued.session.public_id)?;
    Ok(AuthPayload {
        token: access.token,
        expires_at: access.expires_at,
        refresh_token: issued.refresh_token,
        refresh_expires_at: issued.session.expires_at,
        user: User::own(user),
    })
}

/// Opens a session for `user`.
async fn signed_in(ctx: &Context<'_>, user: entity::user::Model) -> AppResult<AuthPayload> {
    let keys = keys(ctx)?;
    let issued = publish(ctx, session::open(db(ctx)?, user.id, keys.refresh_ttl).await?).await?;
    payload(keys, user, issued)
}

/// `RATE_LIMITED` with `retryAfter`, for the sign-in limiter.
fn too_many(wait: std::time::Duration, what: &str) -> async_graphql::Error {
    let seconds = wait.as_secs() + 1;
    AppError::RateLimited {
        message: format!("{what}; try again in {seconds} s"),
        retry_after: seconds,
    }
    .extend()
}

/// Charges a sign-in attempt to the client's address.
async fn check_address(ctx: &Context<'_>) -> async_graphql::Result<()> {
    let (Ok(limits), Some(ClientIp(ip))) = (ctx.data::<Arc<Limits>>(), ctx.data_opt::<ClientIp>())
    else {
        return Ok(());
    };
    limits
        .sign_in_from(*ip)
        .await
        .map_err(|wait| too_many(wait, "too many sign-in attempts from here"))
}

/// Answers a failed sign-in for `email`: as itself, or as a rate limit once
/// the email's failures are spent.
async fn failed_for(ctx: &Context<'_>, email: &str, error: AppError) -> async_graphql::Error {
    let Ok(limits) = ctx.data::<Arc<Limits>>() else {
        return error.extend();
    };
    match limits.sign_in_failed(email).await {
        Err(wait) => too_many(wait, "too many failed sign-ins for this email"),
        Ok(()) => error.extend(),
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Opens an account and signs in to it.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> async_graphql::Result<AuthPayload> {
        check_address(ctx).await?;
        let account = NewAccount::try_from(input)?;
        let user = publish(ctx, account::register(db(ctx)?, account).await?).await?;
        Ok(signed_in(ctx, user).await?)
    }

    /// Signs in with email and password. Wrong passwords for one email are
    /// limited; the right one is let through even then.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        check_address(ctx).await?;
        let user = match account::login(db(ctx)?, &email, password).await {
            Ok(user) => user,
            Err(error @ AppError::Unauthenticated(_)) => {
                return Err(failed_for(ctx, &email, error).await);
            }
            Err(error) => return Err(error.into()),
        };
        Ok(signed_in(ctx, user).await?)
    }

    /// Trades a refresh token for a new access token and a new refresh
    /// token; the one traded stops working. Using it again ends the session.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let keys = keys(ctx)?;
        let refreshed = session::refresh(db(ctx)?, &refresh_token, keys.refresh_ttl).await?;
        let issued = publish(ctx, refreshed).await??;
        let user = entity::user::Entity::find_by_id(issued.session.user_id)
            .one(db(ctx)?)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::Unauthenticated("this account no longer exists".to_owned()))?;
        Ok(payload(keys, user, issued)?)
    }

    /// Ends this session: its access and refresh tokens stop working.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let viewer = policy::require_viewer(identity(ctx))?;
        if let Some(public_id) = &viewer.session {
            publish(ctx, session::revoke(db(ctx)?, viewer.id(), public_id).await?).await?;
        }
        Ok(true)
    }

    /// Ends every session of this account, this one included.
    async fn logout_everywhere(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let viewer = policy::require_viewer(identity(ctx))?;
        publish(ctx, session::revoke_all(db(ctx)?, viewer.id(), None).await?).await?;
        Ok(true)
    }

    /// Changes the password, and ends every other session of the account.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current: String,
        #[graphql(name = "new")] new_password: String,
    ) -> async_graphql::Result<bool> {
        let viewer = policy::require_viewer(identity(ctx))?;
        check_address(ctx).await?;
        let email = Email::parse(&viewer.user.email).at("email")?;
        if !account::verify_password(&viewer.user, current).await? {
            let wrong = AppError::bad_input("`current` is not your password");
            return Err(failed_for(ctx, email.as_str(), wrong).await);
        }
        let new = Password::parse(new_password, &email).at("new")?;
        let txn = db(ctx)?.begin().await.map_err(AppError::from)?;
        let password = account::set_password(&txn, &viewer.user, new).await?;
        let sessions = session::revoke_all(&txn, viewer.id(), viewer.session.as_deref()).await?;
        txn.commit().await.map_err(AppError::from)?;
        publish(ctx, password).await?;
        publish(ctx, sessions).await?;
        Ok(true)
    }
}
