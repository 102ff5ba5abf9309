//! The database itself refuses overlapping active bookings of a barber.
//!
//! Each booking keeps the barber busy until `blocks_until` (its end plus the
//! shop's buffer at booking time). PostgreSQL enforces the rule with an
//! exclusion constraint over that range; SQLite, which has none, with
//! triggers, which run under its single-writer lock. Either way two clients
//! racing for one slot cannot both win, whatever the application checked
//! before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bookings {
    Table,
    BlocksUntil,
}

const SQLITE_TRIGGERS: [&str; 2] = [
    "CREATE TRIGGER bookings_no_overlap_insert BEFORE INSERT ON bookings
     WHEN NEW.status <> 'CANCELLED'
     BEGIN
       SELECT RAISE(ABORT, 'bookings_no_overlap') WHERE EXISTS (
         SELECT 1 FROM bookings b
         WHERE b.barber_id = NEW.barber_id AND b.status <> 'CANCELLED'
           AND b.starts_at < NEW.blocks_until AND NEW.starts_at < b.blocks_until);
     END",
    "CREATE TRIGGER bookings_no_overlap_update BEFORE UPDATE OF starts_at, blocks_until, status, barber_id ON bookings
     WHEN NEW.status <> 'CANCELLED'
     BEGIN
       SELECT RAISE(ABORT, 'bookings_no_overlap') WHERE EXISTS (
         SELECT 1 FROM bookings b
         WHERE b.id <> NEW.id AND b.barber_id = NEW.barber_id AND b.status <> 'CANCELLED'
           AND b.starts_at < NEW.blocks_until AND NEW.starts_at < b.blocks_until);
     END",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Bookings::Table)
                    .add_column(
                        ColumnDef::new(Bookings::BlocksUntil).timestamp_with_time_zone().null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE bookings SET blocks_until = ends_at").await?;
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE bookings ALTER COLUMN blocks_until SET NOT NULL",
                )
                .await?;
                db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist").await?;
                db.execute_unprepared(
                    "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist \
                     (barber_id WITH =, tstzrange(starts_at, blocks_until) WITH &&) \
                     WHERE (status <> 'CANCELLED')",
                )
                .await?;
            }
            _ => {
                for trigger in SQLITE_TRIGGERS {
                    db.execute_unprepared(trigger).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared("ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER bookings_no_overlap_insert").await?;
                db.execute_unprepared("DROP TRIGGER bookings_no_overlap_update").await?;
            }
        }
        manager
            .alter_table(
                Table::alter().table(Bookings::Table).drop_column(Bookings::BlocksUntil).to_owned(),
            )
            .await
    }
}
