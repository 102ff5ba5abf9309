//! Opening an account and signing in.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::token::TokenKeys,
    domain::account::{self, Email, NewAccount, Password, PersonName},
    error::{AppError, AppResult},
    graphql::{db, object::User},
    protect::{ClientIp, Limits},
};

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
}

impl TryFrom<RegisterInput> for NewAccount {
    type Error = AppError;

    fn try_from(input: RegisterInput) -> AppResult<Self> {
        Ok(NewAccount {
            email: Email::parse(&input.email)?,
            password: Password::parse(input.password)?,
            name: PersonName::parse(&input.name)?,
        })
    }
}

/// A signed-in session: send `token` as `Authorization: Bearer <token>`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    /// When the token stops working; sign in again after it.
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

fn payload(ctx: &Context<'_>, user: entity::user::Model) -> AppResult<AuthPayload> {
    let keys = ctx
        .data::<TokenKeys>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without token keys")))?;
    let issued = keys.issue(user.id)?;
    Ok(AuthPayload { token: issued.token, expires_at: issued.expires_at, user: User::own(user) })
}

/// Counts a sign-in attempt against the stricter limiter, by IP and email.
fn check_sign_in(ctx: &Context<'_>, email: &str) -> async_graphql::Result<()> {
    let Ok(limits) = ctx.data::<Arc<Limits>>() else { return Ok(()) };
    let ip = ctx.data_opt::<ClientIp>().map(|ip| ip.0);
    limits.sign_in_attempt(ip, email).map_err(|wait| {
        let seconds = wait.as_secs() + 1;
        async_graphql::Error::new(format!(
            "too many sign-in attempts from here or for this email; try again in {seconds} s"
        ))
        .extend_with(|_, e| {
            e.set("code", "RATE_LIMITED");
            e.set("retryAfter", seconds);
        })
    })
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
        check_sign_in(ctx, &input.email)?;
        let account = NewAccount::try_from(input)?;
        let user = account::register(db(ctx)?, account).await?;
        Ok(payload(ctx, user)?)
    }

    /// Signs in with email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        check_sign_in(ctx, &email)?;
        let user = account::login(db(ctx)?, &email, password).await?;
        Ok(payload(ctx, user)?)
    }
}
