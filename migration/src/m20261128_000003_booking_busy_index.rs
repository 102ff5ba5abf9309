//! An index for "which of this barber's bookings are still busy after T":
//! the overlap guard and availability ask it on every booking, and without
//! it they would read the barber's whole history.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bookings {
    Table,
    BarberId,
    BlocksUntil,
}

const NAME: &str = "idx_bookings_barber_blocks_until";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Bookings::Table)
                    .col(Bookings::BarberId)
                    .col(Bookings::BlocksUntil)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Bookings::Table).to_owned()).await
    }
}
