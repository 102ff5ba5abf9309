//! Database migrations of BookedBarber, applied by `bookedbarber migrate` and
//! before `bookedbarber serve` listens.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_tables;
mod m20261128_000002_booking_overlap_guard;
mod m20261128_000003_booking_busy_index;
mod m20261129_000004_sessions_and_invites;
mod m20261129_000005_shop_analytics_mark;
mod m20261130_000006_events_and_webhooks;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_tables::Migration),
            Box::new(m20261128_000002_booking_overlap_guard::Migration),
            Box::new(m20261128_000003_booking_busy_index::Migration),
            Box::new(m20261129_000004_sessions_and_invites::Migration),
            Box::new(m20261129_000005_shop_analytics_mark::Migration),
            Box::new(m20261130_000006_events_and_webhooks::Migration),
        ]
    }
}
