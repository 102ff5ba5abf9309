//! The shop's event log, and the webhooks it is delivered to.
//!
//! `booking_events` holds one row per change to a shop's bookings, staff
//! and policy, written in the transaction of the change: a rolled-back
//! change leaves no event and a committed one always has its event. Its
//! id only grows, so a subscriber that saw event N asks for what came
//! after N. A webhook's deliveries are rows too, written with the event
//! (an outbox), so no event is lost between the commit and its delivery.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BookingEvents {
    Table,
    Id,
    ShopId,
    Kind,
    BookingId,
    BarberId,
    ClientId,
    ActorId,
    At,
    Changes,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    ShopId,
    Url,
    Events,
    Secret,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    NextAttemptAt,
    ClaimedUntil,
    DeliveredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Shops {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BookingEvents::Table)
                    .col(big_pk_auto(BookingEvents::Id))
                    .col(big_integer(BookingEvents::ShopId))
                    .col(string_len(BookingEvents::Kind, 32))
                    .col(big_integer_null(BookingEvents::BookingId))
                    .col(big_integer_null(BookingEvents::BarberId))
                    .col(big_integer_null(BookingEvents::ClientId))
                    .col(big_integer_null(BookingEvents::ActorId))
                    .col(timestamp_with_time_zone(BookingEvents::At))
                    .col(text(BookingEvents::Changes))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BookingEvents::Table, BookingEvents::ShopId)
                            .to(Shops::Table, Shops::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BookingEvents::Table, BookingEvents::ActorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The audit log and a shop's replay read newest or after an id;
        // a client's replay reads their own.
        for (name, column) in [
            ("idx_booking_events_shop", BookingEvents::ShopId),
            ("idx_booking_events_client", BookingEvents::ClientId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(BookingEvents::Table)
                        .col(column)
                        .col(BookingEvents::Id)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(big_pk_auto(Webhooks::Id))
                    .col(big_integer(Webhooks::ShopId))
                    .col(string_len(Webhooks::Url, 2048))
                    .col(string_len(Webhooks::Events, 256))
                    .col(string_len(Webhooks::Secret, 80))
                    .col(boolean(Webhooks::Active).default(true))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhooks::Table, Webhooks::ShopId)
                            .to(Shops::Table, Shops::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhooks_shop")
                    .table(Webhooks::Table)
                    .col(Webhooks::ShopId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    .col(big_integer(WebhookDeliveries::WebhookId))
                    .col(big_integer(WebhookDeliveries::EventId))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(string_len_null(WebhookDeliveries::LastError, 512))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(WebhookDeliveries::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(WebhookDeliveries::DeliveredAt))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                            .to(BookingEvents::Table, BookingEvents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's claim reads what is due; a webhook lists its own.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_webhook")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Webhooks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(BookingEvents::Table).to_owned()).await
    }
}
