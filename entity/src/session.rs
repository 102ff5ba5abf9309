//! One sign-in: a family of refresh tokens, of which only the current one
//! is valid, and the access tokens issued from it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Random, carried in tokens (`sid`); unique.
    #[sea_orm(unique)]
    pub public_id: String,
    pub user_id: i64,
    /// How often the refresh token was rotated; a token of an older
    /// generation presented again is a reuse.
    pub generation: i64,
    /// SHA-256 (hex) of the current refresh token.
    pub refresh_hash: String,
    pub created_at: DateTimeUtc,
    pub refreshed_at: DateTimeUtc,
    /// The current refresh token stops working then.
    pub expires_at: DateTimeUtc,
    /// Set when the session ended (logout, password change, reuse).
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
