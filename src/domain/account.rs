//! Accounts: registering and signing in.

use chrono::Utc;
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, NotSet,
    QueryFilter,
};
use tokio::sync::OnceCell;

use super::{
    change::{Change, Changed},
    invalid::Invalid,
};
use crate::{
    auth::password,
    db::{Violation, conflict_on},
    error::{AppError, AppResult},
};

/// A syntactically valid, normalised (trimmed, lower-case) email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        let valid = email.chars().count() <= super::text::EMAIL
            && !email.contains('\0')
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
            Err(Invalid(format!(
                "is not a valid email address: {raw:?}; use the form name@example.com"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password worth hashing: 8 to 128 characters, not one of the most
/// commonly breached passwords, not the account's email (or the part before
/// the `@`), and not one character repeated.
pub struct Password(String);

/// The 10,000 most common passwords of breach corpora (SecLists'
/// `10-million-password-list-top-10000.txt`, MIT; see `assets/`).
const COMMON_PASSWORDS: &str = include_str!("../../assets/common-passwords.txt");

fn is_common(password: &str) -> bool {
    static COMMON: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    COMMON
        .get_or_init(|| COMMON_PASSWORDS.lines().map(str::to_lowercase).collect())
        .contains(&password.to_lowercase())
}

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// `raw` as the password of the account `email`.
    pub fn parse(raw: String, email: &Email) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(Invalid(format!(
                "must be {} to {} characters long, got {chars}",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )));
        }
        let lower = raw.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default();
        if lower == email.as_str() || lower == local {
            return Err(Invalid::new(
                "must not be your email address or its name part; choose something only you know",
            ));
        }
        let mut characters = raw.chars();
        if let Some(first) = characters.next()
            && characters.all(|c| c == first)
        {
            return Err(Invalid::new(
                "must not be one character repeated; a short phrase of a few words is easy to remember and hard to guess",
            ));
        }
        if is_common(&raw) {
            return Err(Invalid::new(
                "is one of the most commonly used passwords, which attackers try first; choose another, such as a phrase of a few unrelated words",
            ));
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A person's display name: trimmed, 1 to 200 characters.
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        super::text::required(raw, super::text::PERSON_NAME).map(Self)
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
pub async fn register(
    db: &impl ConnectionTrait,
    account: NewAccount,
) -> AppResult<Changed<user::Model>> {
    let hash = password::hash(account.password.into_inner()).await?;
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
    let user = conflict_on(inserted, Violation::Unique, || {
        "an account with this email already exists; sign in with `login`".to_owned()
    })?;
    let change = Change::Account { user: user.id };
    Ok(Changed::new(user, change))
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

/// Whether `password` is `user`'s.
pub async fn verify_password(user: &user::Model, password: String) -> AppResult<bool> {
    Ok(password::verify(password, user.password_hash.clone()).await?)
}

/// Sets `user`'s password to `new`.
#[tracing::instrument(skip_all, fields(user.id = user.id))]
pub async fn set_password(
    db: &impl ConnectionTrait,
    user: &user::Model,
    new: Password,
) -> AppResult<Changed<()>> {
    let hash = password::hash(new.into_inner()).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, sea_orm::sea_query::Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(user.id))
        .exec(db)
        .await?;
    Ok(Changed::new((), Change::Account { user: user.id }))
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
    fn passwords_have_a_length_range_and_are_not_easily_guessed() {
        let email = Email::parse("ann.lee@example.com").unwrap();
        let parse =
            |raw: &str| Password::parse(raw.to_owned(), &email).map_err(|e| e.at("password"));
        assert!(parse("short").is_err());
        assert!(parse("plenty of words").is_ok());
        assert!(parse(&"xy".repeat(65)).is_err());
        for weak in ["password", "Password1", "12345678", "qwertyuiop", "iloveyou"] {
            let message = match parse(weak) {
                Err(AppError::BadUserInput(message)) => message,
                _ => panic!("{weak} was accepted"),
            };
            assert!(message.contains("commonly used"), "{weak}: {message}");
        }
        assert!(parse("ANN.LEE@example.com").is_err());
        assert!(parse("ann.lee1").is_ok());
        assert!(parse("ann.lee").is_err(), "too short anyway");
        assert!(
            Password::parse("annleeexample".into(), &Email::parse("annleeexample@x.io").unwrap())
                .is_err()
        );
        assert!(parse("aaaaaaaaaa").is_err());
        assert!(parse("ééééééééé").is_err());
    }
}
