//! Bookings: reading them, filtered and paged.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{BookingStatus, booking, payment};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func},
};

use super::page::{Keyset, Page, PageRequest, Position};

/// Whose bookings a list is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Shop,
    Barber,
    Client,
}

impl Owner {
    fn column(self) -> booking::Column {
        match self {
            Owner::Shop => booking::Column::ShopId,
            Owner::Barber => booking::Column::BarberId,
            Owner::Client => booking::Column::ClientId,
        }
    }

    fn of(self, booking: &booking::Model) -> i64 {
        match self {
            Owner::Shop => booking.shop_id,
            Owner::Barber => booking.barber_id,
            Owner::Client => booking.client_id,
        }
    }
}

/// Which bookings to list. `from` is inclusive and `to` exclusive, both on
/// the booking's start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BookingFilter {
    pub shop_id: Option<i64>,
    pub barber_id: Option<i64>,
    pub client_id: Option<i64>,
    pub status: Option<BookingStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl BookingFilter {
    fn condition(&self) -> Condition {
        let mut condition = Condition::all();
        if let Some(shop) = self.shop_id {
            condition = condition.add(booking::Column::ShopId.eq(shop));
        }
        if let Some(barber) = self.barber_id {
            condition = condition.add(booking::Column::BarberId.eq(barber));
        }
        if let Some(client) = self.client_id {
            condition = condition.add(booking::Column::ClientId.eq(client));
        }
        if let Some(status) = self.status {
            condition = condition.add(booking::Column::Status.eq(status));
        }
        if let Some(from) = self.from {
            condition = condition.add(booking::Column::StartsAt.gte(from));
        }
        if let Some(to) = self.to {
            condition = condition.add(booking::Column::StartsAt.lt(to));
        }
        condition
    }
}

/// Bookings are listed by start time, then id.
fn keyset() -> Keyset<booking::Column> {
    Keyset::by_time(booking::Column::StartsAt, booking::Column::Id)
}

/// A booking's place in its list.
pub fn position(booking: &booking::Model) -> Position {
    Position::timed(booking.starts_at, booking.id)
}

/// Bookings by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, booking::Model>, DbErr> {
    let rows = booking::Entity::find()
        .filter(booking::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(super::index_by(rows, |b| b.id))
}

/// One page of the bookings `filter` selects.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &BookingFilter,
    page: &PageRequest,
) -> Result<Page<booking::Model>, DbErr> {
    let select = booking::Entity::find().filter(filter.condition());
    let rows = page.apply(select, keyset()).all(db).await?;
    Ok(Page::from_rows(rows, page))
}

/// How many bookings `filter` selects.
pub async fn count(db: &impl ConnectionTrait, filter: &BookingFilter) -> Result<u64, DbErr> {
    booking::Entity::find().filter(filter.condition()).count(db).await
}

/// The same page of bookings for each of `owners`, in one statement.
pub async fn pages_by(
    db: &impl ConnectionTrait,
    owner: Owner,
    ids: &[i64],
    filter: &BookingFilter,
    page: &PageRequest,
) -> Result<HashMap<i64, Page<booking::Model>>, DbErr> {
    page.load_per_parent::<booking::Entity>(
        db,
        owner.column(),
        keyset(),
        filter.condition(),
        ids,
        move |b| owner.of(b),
    )
    .await
}

#[derive(FromQueryResult)]
struct OwnerCount {
    owner: i64,
    count: i64,
}

/// How many bookings `filter` selects for each of `owners`.
pub async fn counts_by(
    db: &impl ConnectionTrait,
    owner: Owner,
    ids: &[i64],
    filter: &BookingFilter,
) -> Result<HashMap<i64, u64>, DbErr> {
    let rows = booking::Entity::find()
        .select_only()
        .column_as(owner.column(), "owner")
        .column_as(Expr::expr(Func::count(Expr::col(booking::Column::Id))), "count")
        .filter(owner.column().is_in(ids.iter().copied()))
        .filter(filter.condition())
        .group_by(owner.column())
        .into_model::<OwnerCount>()
        .all(db)
        .await?;
    let mut counts: HashMap<i64, u64> = ids.iter().map(|id| (*id, 0)).collect();
    for row in rows {
        counts.insert(row.owner, u64::try_from(row.count).unwrap_or(0));
    }
    Ok(counts)
}

/// Each booking's payments, oldest first.
pub async fn payments_by_bookings(
    db: &impl ConnectionTrait,
    booking_ids: &[i64],
) -> Result<HashMap<i64, Vec<payment::Model>>, DbErr> {
    let rows = payment::Entity::find()
        .filter(payment::Column::BookingId.is_in(booking_ids.iter().copied()))
        .order_by_asc(payment::Column::CreatedAt)
        .order_by_asc(payment::Column::Id)
        .all(db)
        .await?;
    Ok(super::group_by(rows, |p| p.booking_id))
}

/// How much of a booking's price is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Unpaid,
    PartiallyPaid,
    Paid,
}

/// The payment status of a booking of `price_cents` with `payments`.
pub fn payment_status(price_cents: i64, payments: &[payment::Model]) -> PaymentStatus {
    let paid: i64 = payments.iter().map(|p| p.amount_cents).sum();
    if paid <= 0 {
        PaymentStatus::Unpaid
    } else if paid < price_cents {
        PaymentStatus::PartiallyPaid
    } else {
        PaymentStatus::Paid
    }
}

/// One payment by id.
pub async fn payment_by_id(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<payment::Model>, DbErr> {
    payment::Entity::find_by_id(id).one(db).await
}
