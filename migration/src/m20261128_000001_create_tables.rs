//! The domain's tables: accounts, shops, staff, menu, schedules, bookings and
//! payments, with the foreign keys and the indexes the hot reads need.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string(Users::PasswordHash))
                    .col(string_len(Users::Name, 200))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Shops::Table)
                    .col(big_pk_auto(Shops::Id))
                    .col(big_integer(Shops::OwnerId))
                    .col(string_len(Shops::Name, 200))
                    .col(string_len_uniq(Shops::Slug, 100))
                    .col(string_len(Shops::Timezone, 64))
                    .col(string_len(Shops::Address, 500))
                    .col(integer(Shops::SlotStepMinutes).default(15))
                    .col(integer(Shops::MinNoticeMinutes).default(60))
                    .col(integer(Shops::MaxAdvanceDays).default(60))
                    .col(integer(Shops::CancellationCutoffMinutes).default(120))
                    .col(integer(Shops::BufferMinutes).default(0))
                    .col(timestamp_with_time_zone(Shops::CreatedAt))
                    .col(timestamp_with_time_zone(Shops::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Shops::Table, Shops::OwnerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Shops::Table, "idx_shops_owner", [Shops::OwnerId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Barbers::Table)
                    .col(big_pk_auto(Barbers::Id))
                    .col(big_integer(Barbers::ShopId))
                    .col(big_integer_null(Barbers::UserId))
                    .col(string_len(Barbers::DisplayName, 200))
                    .col(text_null(Barbers::Bio))
                    .col(boolean(Barbers::Active).default(true))
                    .col(timestamp_with_time_zone(Barbers::CreatedAt))
                    .col(timestamp_with_time_zone(Barbers::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Barbers::Table, Barbers::ShopId)
                            .to(Shops::Table, Shops::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Barbers::Table, Barbers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Barbers::Table, "idx_barbers_shop", [Barbers::ShopId, Barbers::Id]).await?;
        // One user is at most one barber of a given shop.
        manager
            .create_index(
                Index::create()
                    .name("uq_barbers_shop_user")
                    .table(Barbers::Table)
                    .col(Barbers::UserId)
                    .col(Barbers::ShopId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Services::Table)
                    .col(big_pk_auto(Services::Id))
                    .col(big_integer(Services::ShopId))
                    .col(string_len(Services::Name, 200))
                    .col(text_null(Services::Description))
                    .col(integer(Services::DurationMinutes))
                    .col(big_integer(Services::PriceCents))
                    .col(char_len(Services::Currency, 3))
                    .col(timestamp_with_time_zone(Services::CreatedAt))
                    .col(timestamp_with_time_zone(Services::UpdatedAt))
                    .check(Expr::col(Services::DurationMinutes).gt(0))
                    .check(Expr::col(Services::PriceCents).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Services::Table, Services::ShopId)
                            .to(Shops::Table, Shops::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Services::Table, "idx_services_shop", [Services::ShopId, Services::Id])
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BarberServices::Table)
                    .col(big_integer(BarberServices::BarberId))
                    .col(big_integer(BarberServices::ServiceId))
                    .primary_key(
                        Index::create()
                            .col(BarberServices::BarberId)
                            .col(BarberServices::ServiceId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BarberServices::Table, BarberServices::BarberId)
                            .to(Barbers::Table, Barbers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BarberServices::Table, BarberServices::ServiceId)
                            .to(Services::Table, Services::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            BarberServices::Table,
            "idx_barber_services_service",
            [BarberServices::ServiceId, BarberServices::BarberId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(WorkingHours::Table)
                    .col(big_pk_auto(WorkingHours::Id))
                    .col(big_integer(WorkingHours::BarberId))
                    .col(small_integer(WorkingHours::Weekday))
                    .col(integer(WorkingHours::OpensMinute))
                    .col(integer(WorkingHours::ClosesMinute))
                    .check(Expr::col(WorkingHours::Weekday).between(1, 7))
                    .check(Expr::col(WorkingHours::OpensMinute).gte(0))
                    .check(Expr::col(WorkingHours::ClosesMinute).lte(24 * 60))
                    .check(
                        Expr::col(WorkingHours::OpensMinute)
                            .lt(Expr::col(WorkingHours::ClosesMinute)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WorkingHours::Table, WorkingHours::BarberId)
                            .to(Barbers::Table, Barbers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            WorkingHours::Table,
            "idx_working_hours_barber",
            [WorkingHours::BarberId, WorkingHours::Weekday],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(TimeOff::Table)
                    .col(big_pk_auto(TimeOff::Id))
                    .col(big_integer(TimeOff::BarberId))
                    .col(timestamp_with_time_zone(TimeOff::StartsAt))
                    .col(timestamp_with_time_zone(TimeOff::EndsAt))
                    .col(string_len_null(TimeOff::Reason, 500))
                    .col(timestamp_with_time_zone(TimeOff::CreatedAt))
                    .check(Expr::col(TimeOff::StartsAt).lt(Expr::col(TimeOff::EndsAt)))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TimeOff::Table, TimeOff::BarberId)
                            .to(Barbers::Table, Barbers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            TimeOff::Table,
            "idx_time_off_barber_start",
            [TimeOff::BarberId, TimeOff::StartsAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(big_pk_auto(Bookings::Id))
                    .col(big_integer(Bookings::ShopId))
                    .col(big_integer(Bookings::BarberId))
                    .col(big_integer(Bookings::ClientId))
                    .col(big_integer(Bookings::ServiceId))
                    .col(timestamp_with_time_zone(Bookings::StartsAt))
                    .col(timestamp_with_time_zone(Bookings::EndsAt))
                    .col(string_len(Bookings::Status, 16))
                    .col(big_integer(Bookings::PriceCents))
                    .col(char_len(Bookings::Currency, 3))
                    .col(text_null(Bookings::Notes))
                    .col(text_null(Bookings::CancellationReason))
                    .col(timestamp_with_time_zone(Bookings::CreatedAt))
                    .col(timestamp_with_time_zone(Bookings::UpdatedAt))
                    .check(Expr::col(Bookings::StartsAt).lt(Expr::col(Bookings::EndsAt)))
                    .check(Expr::col(Bookings::Status).is_in([
                        "CONFIRMED",
                        "CANCELLED",
                        "COMPLETED",
                        "NO_SHOW",
                    ]))
                    .check(Expr::col(Bookings::PriceCents).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::ShopId)
                            .to(Shops::Table, Shops::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::BarberId)
                            .to(Barbers::Table, Barbers::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::ClientId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::ServiceId)
                            .to(Services::Table, Services::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Bookings::Table,
            "idx_bookings_barber_start",
            [Bookings::BarberId, Bookings::StartsAt],
        )
        .await?;
        index(
            manager,
            Bookings::Table,
            "idx_bookings_shop_start",
            [Bookings::ShopId, Bookings::StartsAt],
        )
        .await?;
        index(
            manager,
            Bookings::Table,
            "idx_bookings_client_start",
            [Bookings::ClientId, Bookings::StartsAt],
        )
        .await?;
        index(manager, Bookings::Table, "idx_bookings_service", [Bookings::ServiceId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(big_pk_auto(Payments::Id))
                    .col(big_integer(Payments::BookingId))
                    .col(big_integer(Payments::AmountCents))
                    .col(string_len(Payments::Method, 16))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .check(Expr::col(Payments::AmountCents).gt(0))
                    .check(Expr::col(Payments::Method).is_in(["CARD", "CASH", "OTHER"]))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::BookingId)
                            .to(Bookings::Table, Bookings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Payments::Table, "idx_payments_booking", [Payments::BookingId]).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Payments::Table.into_iden(),
            Bookings::Table.into_iden(),
            TimeOff::Table.into_iden(),
            WorkingHours::Table.into_iden(),
            BarberServices::Table.into_iden(),
            Services::Table.into_iden(),
            Barbers::Table.into_iden(),
            Shops::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Creates a plain (non-unique) index over `cols` in order.
async fn index<T, C, const N: usize>(
    manager: &SchemaManager<'_>,
    table: T,
    name: &str,
    cols: [C; N],
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(col);
    }
    manager.create_index(stmt.to_owned()).await
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Shops {
    Table,
    Id,
    OwnerId,
    Name,
    Slug,
    Timezone,
    Address,
    SlotStepMinutes,
    MinNoticeMinutes,
    MaxAdvanceDays,
    CancellationCutoffMinutes,
    BufferMinutes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Barbers {
    Table,
    Id,
    ShopId,
    UserId,
    DisplayName,
    Bio,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Id,
    ShopId,
    Name,
    Description,
    DurationMinutes,
    PriceCents,
    Currency,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BarberServices {
    Table,
    BarberId,
    ServiceId,
}

#[derive(DeriveIden)]
enum WorkingHours {
    Table,
    Id,
    BarberId,
    Weekday,
    OpensMinute,
    ClosesMinute,
}

#[derive(DeriveIden)]
enum TimeOff {
    Table,
    Id,
    BarberId,
    StartsAt,
    EndsAt,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    Id,
    ShopId,
    BarberId,
    ClientId,
    ServiceId,
    StartsAt,
    EndsAt,
    Status,
    PriceCents,
    Currency,
    Notes,
    CancellationReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    BookingId,
    AmountCents,
    Method,
    CreatedAt,
}
