//! Shop analytics over shop-local dates, computed with SQL aggregates.
//!
//! Bookings are counted by their start. Queries group in the database and
//! return aggregates only (counts per status, per barber, per service, per
//! 15-minute bucket of UTC time); no booking row is loaded into Rust. The
//! 15-minute buckets are turned into shop-local dates and hours here, which
//! works for every time zone (all offsets are multiples of 15 minutes) and
//! is the same query text on SQLite and PostgreSQL but for the epoch
//! function.
//!
//! Each section comes two ways: over a whole range at once ([`summary`],
//! [`by_day`], …: the definition, used when the cache is unavailable), and
//! as one part per shop-local day ([`day_parts`]), which the dashboard caches
//! and [`combine`]s, so that a write recomputes only the days it touched.
//! Every part adds up exactly: counts and sums are summed, rates and the
//! average ticket are divided only at the end, and distinct clients are
//! kept per day as client ids with their booking counts, merged over the
//! range.

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

    /// Every date of the range, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }

    /// The dates `from..=to` of this range's shop, with their bounds.
    pub fn part(&self, from: NaiveDate, to: NaiveDate) -> Option<Range> {
        let (starts, _) = day_bounds(self.tz, from)?;
        let (_, ends) = day_bounds(self.tz, to)?;
        Some(Self { tz: self.tz, from, to, starts, ends })
    }

    /// The shop-local date of a 15-minute UTC bucket's start.
    fn date_of_bucket(&self, bucket: i64) -> Option<NaiveDate> {
        Some(DateTime::from_timestamp(bucket * 900, 0)?.with_timezone(&self.tz).date_naive())
    }
}

/// A part of the dashboard computed and cached as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Summary,
    ByDay,
    Barbers,
    Services,
    PeakHours,
}

impl Section {
    pub const ALL: [Section; 5] =
        [Section::Summary, Section::ByDay, Section::Barbers, Section::Services, Section::PeakHours];

    /// Its name in cache keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::ByDay => "by_day",
            Section::Barbers => "barbers",
            Section::Services => "services",
            Section::PeakHours => "peak_hours",
        }
    }

    /// Its place in [`Section::ALL`].
    pub fn index(self) -> usize {
        self as usize
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

    /// Adds `other`'s counts and sums to these.
    fn merge(&mut self, other: &Tally) {
        self.bookings += other.bookings;
        self.completed += other.completed;
        self.cancelled += other.cancelled;
        self.no_show += other.no_show;
        self.revenue_cents += other.revenue_cents;
        self.booked_minutes += other.booked_minutes;
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
    let dates: Vec<NaiveDate> = range.dates().collect();
    let mut minutes: HashMap<i64, i64> = HashMap::new();
    for day in available_by_day(db, shop_id, range, &dates).await? {
        for (barber, free) in day {
            *minutes.entry(barber).or_default() += free;
        }
    }
    Ok(minutes)
}

/// Working minutes less time off of every barber of the shop (zeros
/// included), on each of `dates` (within `range`), in their order.
async fn available_by_day(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
    dates: &[NaiveDate],
) -> Result<Vec<BTreeMap<i64, i64>>, DbErr> {
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
    Ok(dates
        .iter()
        .map(|&date| {
            let mut minutes: BTreeMap<i64, i64> = barbers.iter().map(|b| (*b, 0)).collect();
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
            minutes
        })
        .collect())
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

/// A section's numbers over a range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Numbers {
    Summary(Summary),
    ByDay(Rows<Day>),
    Barbers(Rows<BarberNumbers>),
    Services(Rows<ServiceNumbers>),
    PeakHours(Rows<PeakHour>),
}

/// `section` over `range`, computed from the bookings at once: the
/// definition the cached parts must add up to.
pub async fn from_scratch(
    db: &impl ConnectionTrait,
    shop_id: i64,
    section: Section,
    range: &Range,
) -> Result<Numbers, DbErr> {
    Ok(match section {
        Section::Summary => Numbers::Summary(summary(db, shop_id, range).await?),
        Section::ByDay => Numbers::ByDay(by_day(db, shop_id, range).await?),
        Section::Barbers => Numbers::Barbers(barbers(db, shop_id, range).await?),
        Section::Services => Numbers::Services(services(db, shop_id, range).await?),
        Section::PeakHours => Numbers::PeakHours(peak_hours(db, shop_id, range).await?),
    })
}

/// One shop-local day's share of the summary.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SummaryDay {
    pub tally: Tally,
    pub available_minutes: i64,
    /// `(client, non-cancelled bookings)` of the day's clients.
    pub clients: Vec<(i64, i64)>,
}

/// One shop-local day's share of a section, as cached.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DayPart {
    Summary(SummaryDay),
    ByDay {
        bookings: i64,
        revenue_cents: i64,
    },
    /// Every barber of the shop.
    Barbers(Vec<BarberNumbers>),
    Services(Vec<ServiceNumbers>),
    /// `(local hour, bookings)`, non-zero hours only.
    PeakHours(Vec<(u32, i64)>),
}

#[derive(FromQueryResult)]
struct BucketRow {
    bucket: i64,
    owner: i64,
    status: String,
    bookings: i64,
    revenue: i64,
    minutes: i64,
}

impl BucketRow {
    fn status_row(&self) -> StatusRow {
        StatusRow {
            owner: self.owner,
            status: self.status.clone(),
            bookings: self.bookings,
            revenue: self.revenue,
            minutes: self.minutes,
        }
    }
}

/// Runs `sql` (its `$1..$3` the shop and range) and hands each row to
/// `add` with its shop-local date, when that date is one of `dates`.
async fn per_date<R: FromQueryResult>(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
    dates: &[NaiveDate],
    sql: &str,
    bucket: impl Fn(&R) -> i64,
    mut add: impl FnMut(usize, R),
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let index: HashMap<NaiveDate, usize> = dates.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    for row in R::find_by_statement(statement(backend, sql, params(shop_id, range))).all(db).await?
    {
        if let Some(i) = range.date_of_bucket(bucket(&row)).and_then(|d| index.get(&d)) {
            add(*i, row);
        }
    }
    Ok(())
}

/// Counts, revenue and booked minutes per 15-minute bucket, `group` column
/// and status.
fn status_buckets_sql(backend: DbBackend, group: &str) -> String {
    let starts = epoch(backend, "starts_at");
    format!(
        "SELECT {starts} / 900 AS bucket, {group} AS owner, status, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) AS revenue, \
                CAST(COALESCE(SUM({ends} - {starts}), 0) / 60 AS BIGINT) AS minutes \
         FROM bookings WHERE {IN_RANGE} GROUP BY {starts} / 900, {group}, status",
        ends = epoch(backend, "ends_at"),
    )
}

#[derive(FromQueryResult)]
struct ClientRow {
    bucket: i64,
    client_id: i64,
    bookings: i64,
}

#[derive(FromQueryResult)]
struct ServiceBucketRow {
    bucket: i64,
    service_id: i64,
    bookings: i64,
    revenue: i64,
}

/// `section`'s part of each of `dates` (sorted, within `range`), in their
/// order: one statement for all of them (the summary and barbers also read
/// the shop's hours and time off).
#[tracing::instrument(skip_all, fields(shop.id = shop_id, section = section.name(), days = dates.len()))]
pub async fn day_parts(
    db: &impl ConnectionTrait,
    shop_id: i64,
    section: Section,
    range: &Range,
    dates: &[NaiveDate],
) -> Result<Vec<DayPart>, DbErr> {
    let backend = db.get_database_backend();
    let starts = epoch(backend, "starts_at");
    match section {
        Section::Summary => {
            let mut days: Vec<SummaryDay> = vec![SummaryDay::default(); dates.len()];
            let sql = status_buckets_sql(backend, "shop_id");
            per_date(
                db,
                shop_id,
                range,
                dates,
                &sql,
                |r: &BucketRow| r.bucket,
                |i, row| {
                    days[i].tally.add(&row.status_row());
                },
            )
            .await?;
            let sql = format!(
                "SELECT {starts} / 900 AS bucket, client_id, COUNT(*) AS bookings FROM bookings \
                 WHERE {IN_RANGE} AND status <> 'CANCELLED' GROUP BY {starts} / 900, client_id"
            );
            let mut clients: Vec<BTreeMap<i64, i64>> = vec![BTreeMap::new(); dates.len()];
            per_date(
                db,
                shop_id,
                range,
                dates,
                &sql,
                |r: &ClientRow| r.bucket,
                |i, row| {
                    *clients[i].entry(row.client_id).or_default() += row.bookings;
                },
            )
            .await?;
            let available = available_by_day(db, shop_id, range, dates).await?;
            Ok(days
                .into_iter()
                .zip(clients)
                .zip(available)
                .map(|((mut day, clients), available)| {
                    day.clients = clients.into_iter().collect();
                    day.available_minutes = available.values().sum();
                    DayPart::Summary(day)
                })
                .collect())
        }
        Section::Barbers => {
            let available = available_by_day(db, shop_id, range, dates).await?;
            let mut days: Vec<BTreeMap<i64, BarberNumbers>> = available
                .into_iter()
                .map(|minutes| {
                    minutes
                        .into_iter()
                        .map(|(barber_id, available_minutes)| {
                            let numbers = BarberNumbers {
                                barber_id,
                                tally: Tally::default(),
                                available_minutes,
                            };
                            (barber_id, numbers)
                        })
                        .collect()
                })
                .collect();
            let sql = status_buckets_sql(backend, "barber_id");
            per_date(
                db,
                shop_id,
                range,
                dates,
                &sql,
                |r: &BucketRow| r.bucket,
                |i, row| {
                    if let Some(numbers) = days[i].get_mut(&row.owner) {
                        numbers.tally.add(&row.status_row());
                    }
                },
            )
            .await?;
            Ok(days.into_iter().map(|day| DayPart::Barbers(day.into_values().collect())).collect())
        }
        Section::Services => {
            let sql = format!(
                "SELECT {starts} / 900 AS bucket, service_id, COUNT(*) AS bookings, \
                        CAST(COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN price_cents ELSE 0 END), 0) AS BIGINT) AS revenue \
                 FROM bookings WHERE {IN_RANGE} GROUP BY {starts} / 900, service_id"
            );
            let mut days: Vec<BTreeMap<i64, (i64, i64)>> = vec![BTreeMap::new(); dates.len()];
            per_date(
                db,
                shop_id,
                range,
                dates,
                &sql,
                |r: &ServiceBucketRow| r.bucket,
                |i, row| {
                    let sums = days[i].entry(row.service_id).or_default();
                    sums.0 += row.bookings;
                    sums.1 += row.revenue;
                },
            )
            .await?;
            Ok(days
                .into_iter()
                .map(|day| {
                    DayPart::Services(
                        day.into_iter()
                            .map(|(service_id, (bookings, revenue_cents))| ServiceNumbers {
                                service_id,
                                bookings,
                                revenue_cents,
                            })
                            .collect(),
                    )
                })
                .collect())
        }
        Section::ByDay | Section::PeakHours => {
            let index: HashMap<NaiveDate, usize> =
                dates.iter().enumerate().map(|(i, d)| (*d, i)).collect();
            let mut totals = vec![(0, 0); dates.len()];
            let mut hours: Vec<BTreeMap<u32, i64>> = vec![BTreeMap::new(); dates.len()];
            for (start, bookings, revenue) in buckets(db, shop_id, range).await? {
                let local = start.with_timezone(&range.tz);
                if let Some(&i) = index.get(&local.date_naive()) {
                    totals[i].0 += bookings;
                    totals[i].1 += revenue;
                    *hours[i].entry(local.hour()).or_default() += bookings;
                }
            }
            Ok(match section {
                Section::ByDay => totals
                    .into_iter()
                    .map(|(bookings, revenue_cents)| DayPart::ByDay { bookings, revenue_cents })
                    .collect(),
                _ => hours
                    .into_iter()
                    .map(|hours| {
                        DayPart::PeakHours(hours.into_iter().filter(|(_, n)| *n > 0).collect())
                    })
                    .collect(),
            })
        }
    }
}

/// `section` over a range from the parts of each of its dates, in order;
/// `None` when a part is of another section.
pub fn combine(
    section: Section,
    parts: &[(NaiveDate, &DayPart)],
    generated_at: DateTime<Utc>,
) -> Option<Numbers> {
    Some(match section {
        Section::Summary => {
            let mut summary = Summary { generated_at, ..Summary::default() };
            let mut clients: HashMap<i64, i64> = HashMap::new();
            for (_, part) in parts {
                let DayPart::Summary(day) = part else { return None };
                summary.tally.merge(&day.tally);
                summary.available_minutes += day.available_minutes;
                for (client, bookings) in &day.clients {
                    *clients.entry(*client).or_default() += bookings;
                }
            }
            summary.clients = i64::try_from(clients.len()).unwrap_or(i64::MAX);
            summary.repeat_clients =
                i64::try_from(clients.values().filter(|n| **n >= 2).count()).unwrap_or(i64::MAX);
            Numbers::Summary(summary)
        }
        Section::ByDay => {
            let mut rows = Vec::with_capacity(parts.len());
            for (date, part) in parts {
                let DayPart::ByDay { bookings, revenue_cents } = part else { return None };
                rows.push(Day { date: *date, bookings: *bookings, revenue_cents: *revenue_cents });
            }
            Numbers::ByDay(Rows { rows, generated_at })
        }
        Section::Barbers => {
            let mut barbers: BTreeMap<i64, BarberNumbers> = BTreeMap::new();
            for (_, part) in parts {
                let DayPart::Barbers(day) = part else { return None };
                for numbers in day {
                    let total = barbers.entry(numbers.barber_id).or_insert_with(|| BarberNumbers {
                        barber_id: numbers.barber_id,
                        tally: Tally::default(),
                        available_minutes: 0,
                    });
                    total.tally.merge(&numbers.tally);
                    total.available_minutes += numbers.available_minutes;
                }
            }
            Numbers::Barbers(Rows { rows: barbers.into_values().collect(), generated_at })
        }
        Section::Services => {
            let mut services: HashMap<i64, (i64, i64)> = HashMap::new();
            for (_, part) in parts {
                let DayPart::Services(day) = part else { return None };
                for numbers in day {
                    let sums = services.entry(numbers.service_id).or_default();
                    sums.0 += numbers.bookings;
                    sums.1 += numbers.revenue_cents;
                }
            }
            let mut rows: Vec<ServiceNumbers> = services
                .into_iter()
                .map(|(service_id, (bookings, revenue_cents))| ServiceNumbers {
                    service_id,
                    bookings,
                    revenue_cents,
                })
                .collect();
            // As `services` orders them.
            rows.sort_by(|a, b| {
                (b.revenue_cents, b.bookings, a.service_id).cmp(&(
                    a.revenue_cents,
                    a.bookings,
                    b.service_id,
                ))
            });
            Numbers::Services(Rows { rows, generated_at })
        }
        Section::PeakHours => {
            let mut hours: BTreeMap<(u32, u32), i64> = BTreeMap::new();
            for (date, part) in parts {
                let DayPart::PeakHours(day) = part else { return None };
                let weekday = date.weekday().number_from_monday();
                for (hour, bookings) in day {
                    *hours.entry((weekday, *hour)).or_default() += bookings;
                }
            }
            let rows = hours
                .into_iter()
                .filter(|(_, bookings)| *bookings > 0)
                .map(|((weekday, hour), bookings)| PeakHour { weekday, hour, bookings })
                .collect();
            Numbers::PeakHours(Rows { rows, generated_at })
        }
    })
}
