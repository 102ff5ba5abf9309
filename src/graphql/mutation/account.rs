//! Opening an account and signing in.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::token::TokenKeys,
    domain::account::{self, Email, NewAccount, Password, PersonName},
    error::{AppError, AppResult},
    graphql::{db, object::User},
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
        let user = account::login(db(ctx)?, &email, password).await?;
        Ok(payload(ctx, user)?)
    }
}
