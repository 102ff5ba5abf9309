//! Accounts: registering and signing in.

use chrono::Utc;
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, NotSet,
    QueryFilter, SqlErr,
};
use tokio::sync::OnceCell;

use crate::{
    auth::password,
    error::{AppError, AppResult},
};

/// A syntactically valid, normalised (trimmed, lower-case) email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(email))
        } else {
            Err(AppError::bad_input(format!(
                "`email` is not a valid email address: {raw:?}; use the form name@example.com"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password long enough to be worth hashing.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: String) -> AppResult<Self> {
        let chars = raw.chars().count();
        if (Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            Ok(Self(raw))
        } else {
            Err(AppError::bad_input(format!(
                "`password` must be {} to {} characters long, got {chars}",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )))
        }
    }
}

/// A person's display name: trimmed, 1 to 200 characters.
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let name = raw.trim();
        let chars = name.chars().count();
        if (1..=200).contains(&chars) {
            Ok(Self(name.to_owned()))
        } else {
            Err(AppError::bad_input("`name` must be 1 to 200 characters long"))
        }
    }
}

/// Everything needed to open an account, already valid.
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: PersonName,
}

/// Opens an account; an email already in use is `CONFLICT`.
#[tracing::instrument(skip_all)]
pub async fn register(db: &impl ConnectionTrait, account: NewAccount) -> AppResult<user::Model> {
    let hash = password::hash(account.password.0).await?;
    let now = Utc::now();
    let inserted = user::ActiveModel {
        id: NotSet,
        email: Set(account.email.0),
        password_hash: Set(hash),
        name: Set(account.name.0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(user) => Ok(user),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AppError::Conflict(
                "an account with this email already exists; sign in with `login`".to_owned(),
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// The same answer for an unknown email and a wrong password, so the API
/// does not tell which accounts exist.
fn wrong_credentials() -> AppError {
    AppError::Unauthenticated("wrong email or password".to_owned())
}

/// A hash to verify against when the email is unknown, so that both
/// failures take the same time.
async fn decoy_hash() -> AppResult<&'static str> {
    static DECOY: OnceCell<String> = OnceCell::const_new();
    Ok(DECOY
        .get_or_try_init(|| password::hash("not the password of anyone".to_owned()))
        .await?
        .as_str())
}

/// The user whose email and password these are, or `UNAUTHENTICATED`.
#[tracing::instrument(skip_all)]
pub async fn login(
    db: &impl ConnectionTrait,
    email: &str,
    password: String,
) -> AppResult<user::Model> {
    let Ok(email) = Email::parse(email) else {
        return Err(wrong_credentials());
    };
    let user = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(db).await?;
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => decoy_hash().await?.to_owned(),
    };
    let matches = password::verify(password, hash).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(wrong_credentials()),
    }
}

/// Users by id.
pub async fn users_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, user::Model>, sea_orm::DbErr> {
    let rows =
        user::Entity::find().filter(user::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(super::index_by(rows, |u| u.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in
            ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_a_length_range() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }
}
