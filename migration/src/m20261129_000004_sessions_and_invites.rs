//! Sessions that can end, and barber invitations a user accepts.
//!
//! A session is one sign-in's family of refresh tokens: only its current
//! token's hash is stored, with the generation it was issued at, so a token
//! of an older generation is known to be a reuse. Revoking a session ends its
//! access tokens too (they carry its public id). A barber added with an email
//! is an invitation until that user accepts it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    PublicId,
    UserId,
    Generation,
    RefreshHash,
    CreatedAt,
    RefreshedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Barbers {
    Table,
    InvitedEmail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(big_pk_auto(Sessions::Id))
                    .col(string_len_uniq(Sessions::PublicId, 36))
                    .col(big_integer(Sessions::UserId))
                    .col(big_integer(Sessions::Generation).default(0))
                    .col(string_len(Sessions::RefreshHash, 64))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::RefreshedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Barbers::Table)
                    .add_column(string_len_null(Barbers::InvitedEmail, 254))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_barbers_invited_email")
                    .table(Barbers::Table)
                    .col(Barbers::InvitedEmail)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("idx_barbers_invited_email").table(Barbers::Table).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Barbers::Table).drop_column(Barbers::InvitedEmail).to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(Sessions::Table).to_owned()).await
    }
}
