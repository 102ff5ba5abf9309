//! Shop analytics over shop-local dates, computed with SQL aggregates.
//!
//! Bookings are counted by their start. Queries group in the database and
//! return aggregates only (counts per status, per barber, per service, per
//! 15-minute bucket of UTC time); no booking row is loaded into Rust. The
//! 15-minute buckets are turned into shop-local dates and hours here, which
//! works for every time zone (all offsets are multiples of 15 minutes) and
//! is the same query text on SQLite and PostgreSQL but for the epoch
//! function.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use entity::{barber, shop, working_hours};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, Statement, Value,
};
use serde::{Deserialize, Serialize};

use super::local_time::{self, boundary, day_bounds};
use crate::error::{AppError, AppResult};

/// Longest range, in days.
pub const MAX_DAYS: i64 = 366;

/// A valid range of shop-local dates, `from..=to`, and its UTC bounds.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub tz: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
}

impl Range {
    pub fn new(shop: &shop::Model, from: NaiveDate, to: NaiveDate) -> AppResult<Self> {
        if from > to {
            return Err(AppError::bad_input("`from` must not be after `to`"));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(AppError::bad_input(format!(
                "the range is {days} days; ask for at most {MAX_DAYS} days at a time"
            )));
        }
        let tz = local_time::zone(&shop.timezone);
        let out_of_range = || AppError::bad_input("the dates are out of range");
        let (starts, _) = day_bounds(tz, from).ok_or_else(out_of_range)?;
        let (_, ends) = day_bounds(tz, to).ok_or_else(out_of_range)?;
        Ok(Self { tz, from, to, starts, ends })
    }

    fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// Counts by status, revenue and booked minutes of a set of bookings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub bookings: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
    /// Prices of COMPLETED bookings.
    pub revenue_cents: i64,
    /// Minutes of CONFIRMED and COMPLETED bookings.
    pub booked_minutes: i64,
}

impl Tally {
    fn add(&mut self, row: &StatusRow) {
        self.bookings += row.bookings;
        match row.status.as_str() {
            "COMPLETED" => {
                self.completed += row.bookings;
                self.revenue_cents += row.revenue;
                self.booked_minutes += row.minutes;
            }
            "CONFIRMED" => self.booked_minutes += row.minutes,
            "CANCELLED" => self.cancelled += row.bookings,
            "NO_SHOW" => self.no_show += row.bookings,
            _ => {}
        }
    }

    pub fn no_show_rate(&self) -> f64 {
        rate(self.no_show, self.completed + self.no_show)
    }
}

/// The numbers of the summary section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub tally: Tally,
    /// Working minutes less time off, of every barber.
    pub available_minutes: i64,
    pub clients: i64,
    pub repeat_clients: i64,
    pub generated_at: DateTime<Utc>,
}

/// `numerator / denominator`, 0 when the denominator is.
pub fn rate(numerator: i64, denominator: i64) -> f64 {
    if denominator <= 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

impl Summary {
    /// Revenue per completed booking, rounded half away from zero.
    pub fn average_ticket_cents(&self) -> i64 {
        let t = &self.tally;
        if t.completed == 0 {
            0
        } else {
            (t.revenue_cents as f64 / t.completed as f64).round() as i64
        }
    }

    pub fn cancellation_rate(&self) -> f64 {
        rate(self.tally.cancelled, self.tally.bookings)
    }

    pub fn utilization(&self) -> f64 {
        rate(self.tally.booked_minutes, self.available_minutes)
    }

    pub fn repeat_client_rate(&self) -> f64 {
        rate(self.repeat_clients, self.clients)
    }
}

/// One shop-local day of the range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Day {
    pub date: NaiveDate,
    pub bookings: i64,
    pub revenue_cents: i64,
}

/// One barber's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BarberNumbers {
    pub barber_id: i64,
    #[serde(flatten)]
    pub tally: Tally,
    pub available_minutes: i64,
}

impl BarberNumbers {
    pub fn utilization(&self) -> f64 {
        rate(self.tally.booked_minutes, self.available_minutes)
    }
}

/// One service's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceNumbers {
    pub service_id: i64,
    pub bookings: i64,
    pub revenue_cents: i64,
}

/// Bookings starting in one shop-local weekday (1–7) and hour (0–23).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeakHour {
    pub weekday: u32,
    pub hour: u32,
    pub bookings: i64,
}

/// A section's rows and when they were computed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub generated_at: DateTime<Utc>,
}

/// Seconds since the epoch of a timestamp column, in the backend's dialect.
fn epoch(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT)"),
        _ => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
    }
}

/// A statement from `sql` with `$1`-style parameters, in the backend's
/// dialect (`?1` on SQLite).
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The shop and range parameters `$1..$3` of every query.
fn params(shop_id: i64, range: &Range) -> Vec<Value> {
    vec![shop_id.into(), range.starts.into(), range.ends.into()]
}

const IN_RANGE: &str = "shop_id = $1 AND starts_at >= $2 AND starts_at < $3";

#[derive(FromQueryResult)]
struct StatusRow {
    owner: i64,
    status: String,
    bookings: i64,
    revenue: i64,
    minutes: i64,
}

/// Counts, revenue and booked minutes per status, per `group` column
/// (`shop_id` or `barber_id`).
async fn by_status(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
    group: &str,
) -> Result<Vec<StatusRow>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {group} AS owner, status, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) AS revenue, \
                CAST(COALESCE(SUM({ends} - {starts}), 0) / 60 AS BIGINT) AS minutes \
         FROM bookings WHERE {IN_RANGE} GROUP BY {group}, status",
        ends = epoch(backend, "ends_at"),
        starts = epoch(backend, "starts_at"),
    );
    StatusRow::find_by_statement(statement(backend, &sql, params(shop_id, range))).all(db).await
}

/// Working minutes less time off, per barber of the shop.
async fn available_minutes(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<HashMap<i64, i64>, DbErr> {
    let barbers: Vec<i64> = barber::Entity::find()
        .filter(barber::Column::ShopId.eq(shop_id))
        .all(db)
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    let hours = working_hours::Entity::find()
        .filter(working_hours::Column::BarberId.is_in(barbers.iter().copied()))
        .all(db)
        .await?;
    let time_off = entity::time_off::Entity::find()
        .filter(entity::time_off::Column::BarberId.is_in(barbers.iter().copied()))
        .filter(entity::time_off::Column::StartsAt.lt(range.ends))
        .filter(entity::time_off::Column::EndsAt.gt(range.starts))
        .order_by_asc(entity::time_off::Column::StartsAt)
        .all(db)
        .await?;
    let mut minutes: HashMap<i64, i64> = barbers.iter().map(|b| (*b, 0)).collect();
    for date in range.dates() {
        let weekday = local_time::weekday(date);
        for interval in hours.iter().filter(|h| h.weekday == weekday) {
            let (Some(opens), Some(closes)) = (
                boundary(range.tz, date, interval.opens_minute, false),
                boundary(range.tz, date, interval.closes_minute, true),
            ) else {
                continue;
            };
            let mut free = (closes - opens).num_minutes();
            for off in time_off.iter().filter(|t| t.barber_id == interval.barber_id) {
                let overlap = off.ends_at.min(closes) - off.starts_at.max(opens);
                free -= overlap.num_minutes().max(0);
            }
            *minutes.entry(interval.barber_id).or_default() += free.max(0);
        }
    }
    Ok(minutes)
}

#[derive(FromQueryResult)]
struct Clients {
    clients: i64,
    repeaters: Option<i64>,
}

/// The summary section.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn summary(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Summary, DbErr> {
    let backend = db.get_database_backend();
    let mut summary = Summary { generated_at: Utc::now(), ..Summary::default() };
    for row in by_status(db, shop_id, range, "shop_id").await? {
        summary.tally.add(&row);
    }
    let sql = format!(
        "SELECT COUNT(*) AS clients, CAST(SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS BIGINT) AS repeaters \
         FROM (SELECT client_id, COUNT(*) AS n FROM bookings \
               WHERE {IN_RANGE} AND status <> 'CANCELLED' GROUP BY client_id) AS per_client"
    );
    if let Some(clients) =
        Clients::find_by_statement(statement(backend, &sql, params(shop_id, range))).one(db).await?
    {
        summary.clients = clients.clients;
        summary.repeat_clients = clients.repeaters.unwrap_or(0);
    }
    summary.available_minutes = available_minutes(db, shop_id, range).await?.values().sum();
    Ok(summary)
}

#[derive(FromQueryResult)]
struct Bucket {
    bucket: i64,
    bookings: i64,
    revenue: i64,
}

/// Bookings and completed revenue per 15-minute bucket of UTC time.
async fn buckets(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Vec<(DateTime<Utc>, i64, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {starts} / 900 AS bucket, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN price_cents ELSE 0 END), 0) AS BIGINT) AS revenue \
         FROM bookings WHERE {IN_RANGE} GROUP BY {starts} / 900",
        starts = epoch(backend, "starts_at"),
    );
    let rows =
        Bucket::find_by_statement(statement(backend, &sql, params(shop_id, range))).all(db).await?;
    Ok(rows
        .into_iter()
        .filter_map(|b| Some((DateTime::from_timestamp(b.bucket * 900, 0)?, b.bookings, b.revenue)))
        .collect())
}

/// Every day of the range, zeros included.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn by_day(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<Day>, DbErr> {
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = range.dates().map(|d| (d, (0, 0))).collect();
    for (start, bookings, revenue) in buckets(db, shop_id, range).await? {
        let date = start.with_timezone(&range.tz).date_naive();
        if let Some(day) = days.get_mut(&date) {
            day.0 += bookings;
            day.1 += revenue;
        }
    }
    Ok(Rows {
        rows: days
            .into_iter()
            .map(|(date, (bookings, revenue_cents))| Day { date, bookings, revenue_cents })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// Bookings per shop-local weekday and hour, non-zero ones only.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn peak_hours(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<PeakHour>, DbErr> {
    let mut hours: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    for (start, bookings, _) in buckets(db, shop_id, range).await? {
        let local = start.with_timezone(&range.tz);
        *hours.entry((local.weekday().number_from_monday(), local.hour())).or_default() += bookings;
    }
    Ok(Rows {
        rows: hours
            .into_iter()
            .filter(|(_, bookings)| *bookings > 0)
            .map(|((weekday, hour), bookings)| PeakHour { weekday, hour, bookings })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// Every barber of the shop, in id order.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn barbers(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<BarberNumbers>, DbErr> {
    let available = available_minutes(db, shop_id, range).await?;
    let mut rows: BTreeMap<i64, BarberNumbers> = available
        .iter()
        .map(|(barber_id, minutes)| {
            let numbers = BarberNumbers {
                barber_id: *barber_id,
                tally: Tally::default(),
                available_minutes: *minutes,
            };
            (*barber_id, numbers)
        })
        .collect();
    for row in by_status(db, shop_id, range, "barber_id").await? {
        if let Some(numbers) = rows.get_mut(&row.owner) {
            numbers.tally.add(&row);
        }
    }
    Ok(Rows { rows: rows.into_values().collect(), generated_at: Utc::now() })
}

#[derive(FromQueryResult)]
struct ServiceRow {
    service_id: i64,
    bookings: i64,
    revenue: i64,
}

/// Services with bookings in the range, highest revenue first.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn services(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<ServiceNumbers>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT service_id, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN price_cents ELSE 0 END), 0) AS BIGINT) AS revenue \
         FROM bookings WHERE {IN_RANGE} GROUP BY service_id ORDER BY revenue DESC, bookings DESC, service_id"
    );
    let rows = ServiceRow::find_by_statement(statement(backend, &sql, params(shop_id, range)))
        .all(db)
        .await?;
    Ok(Rows {
        rows: rows
            .into_iter()
            .map(|r| ServiceNumbers {
                service_id: r.service_id,
                bookings: r.bookings,
                revenue_cents: r.revenue,
            })
            .collect(),
        generated_at: Utc::now(),
    })
}
