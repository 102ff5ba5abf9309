//! A shop's analytics mark: raised when a write to the shop could not make
//! its cached analytics stale in Redis (Redis was unreachable). Every
//! dashboard reads the shop row anyway, and the mark is part of its cache
//! keys, so after an outage no replica reads an entry made before the write.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Shops {
    Table,
    AnalyticsMark,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Shops::Table)
                    .add_column(
                        ColumnDef::new(Shops::AnalyticsMark).big_integer().not_null().default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Shops::Table).drop_column(Shops::AnalyticsMark).to_owned(),
            )
            .await
    }
}
